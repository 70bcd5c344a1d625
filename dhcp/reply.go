package dhcp

import (
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// The UDP ports of DHCP (RFC 2131) and of PXE boot server requests.
const (
	ServerPort = 67
	ClientPort = 68
	// ProxyPort is where PXE clients send their proxyDHCP REQUEST (PXE 2.1).
	ProxyPort = 4011
)

// answer is what the server decided to send; reply turns it into a packet.
type answer struct {
	kind dhcpv4.MessageType
	// yiaddr is the address given; invalid for proxy, INFORM and NAK replies.
	yiaddr netip.Addr
	// subnet gives the network options; nil for proxy replies and NAKs.
	subnet *Subnet
	// lease adds options 51, 58 and 59 when non-zero.
	lease    time.Duration
	hostname string
	boot     Boot
	// proxy marks a proxyDHCP reply: option 60 is always sent, so that iPXE
	// and PXE ROMs recognise it as one.
	proxy bool
	// message is a NAK's reason (option 56).
	message string
}

// pxeVendorOptions is option 43 with PXE_DISCOVERY_CONTROL (suboption 6)
// = 8: skip boot server discovery and boot the file named in the offer
// (PXE 2.1 section 2.4.6). Without it some ROMs wait for a boot menu.
const pxeVendorOptions = "\x06\x01\x08\xff"

// ipxeNoProxyWait is option 175 (iPXE's encapsulated options) with
// suboption 176 (no-pxedhcp) = 1: iPXE then does not wait ~3 s for
// proxyDHCP offers after our offer.
const ipxeNoProxyWait = "\xb0\x01\x01"

// optionIPXE is iPXE's encapsulated options (175).
const optionIPXE = dhcpv4.GenericOptionCode(175)

// reply builds the reply to req. It is pure: everything it needs is in a
// and in the server's boot configuration.
func reply(req *dhcpv4.DHCPv4, a answer, serverIP netip.Addr, c bootConfig) *dhcpv4.DHCPv4 {
	r := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: ipOrZero(req.GatewayIPAddr),
		ClientHWAddr:  req.ClientHWAddr,
		Options:       dhcpv4.Options{},
	}
	r.UpdateOption(dhcpv4.OptMessageType(a.kind))
	r.UpdateOption(dhcpv4.OptServerIdentifier(serverIP.AsSlice()))
	// RFC 6842: echo the client identifier; RFC 3046: echo the relay
	// agent information, the relay needs it to forward the reply.
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionClientIdentifier, dhcpv4.OptionRelayAgentInformation} {
		if v := req.GetOneOption(code); v != nil {
			r.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
	}

	if a.kind == dhcpv4.MessageTypeNak {
		// RFC 2131 4.3.2: a NAK that goes through a relay has the
		// broadcast bit set so that the relay broadcasts it.
		if !isZero(req.GatewayIPAddr) {
			r.SetBroadcast()
		}
		if a.message != "" {
			r.UpdateOption(dhcpv4.OptMessage(a.message))
		}
		return r
	}

	// ACKs (to a REQUEST in RENEWING state, to INFORM, to a proxy
	// REQUEST) keep the client's own address.
	if a.kind == dhcpv4.MessageTypeAck {
		r.ClientIPAddr = ipOrZero(req.ClientIPAddr)
	}
	if a.yiaddr.IsValid() {
		r.YourIPAddr = a.yiaddr.AsSlice()
	}
	if sn := a.subnet; sn != nil {
		networkOptions(r, sn, a.hostname)
	}
	if a.lease > 0 {
		r.UpdateOption(dhcpv4.OptIPAddressLeaseTime(a.lease))
		// RFC 2131 4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease.
		r.UpdateOption(dhcpv4.OptRenewTimeValue(a.lease / 2))
		r.UpdateOption(dhcpv4.OptRebindingTimeValue(a.lease * 7 / 8))
	}
	bootOptions(r, req, a, serverIP, c)
	return r
}

func networkOptions(r *dhcpv4.DHCPv4, sn *Subnet, hostname string) {
	if sn.Prefix.IsValid() {
		r.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(sn.Prefix.Bits(), 32)))
	}
	if sn.Router.IsValid() {
		r.UpdateOption(dhcpv4.OptRouter(sn.Router.AsSlice()))
	}
	if len(sn.DNS) > 0 {
		ips := make([]net.IP, 0, len(sn.DNS))
		for _, a := range sn.DNS {
			ips = append(ips, a.AsSlice())
		}
		r.UpdateOption(dhcpv4.OptDNS(ips...))
	}
	if sn.Domain != "" {
		r.UpdateOption(dhcpv4.OptDomainName(sn.Domain))
	}
	if hostname != "" {
		r.UpdateOption(dhcpv4.OptHostName(hostname))
	}
}

// bootOptions adds the next step of the boot for a network boot client.
func bootOptions(r, req *dhcpv4.DHCPv4, a answer, serverIP netip.Addr, c bootConfig) {
	f := a.boot.Firmware
	file := bootFile(f, c)
	if file == "" {
		return
	}
	r.BootFileName = file
	if req.ParameterRequestList().Has(dhcpv4.OptionBootfileName) || len(file) > 127 {
		// The BOOTP file field holds 127 bytes; a longer URL only fits
		// in option 67.
		r.UpdateOption(dhcpv4.OptBootFileName(file))
	}
	r.ServerIPAddr = serverIP.AsSlice()
	// PXE clients echo-check the machine identifier (PXE 2.1, 2.4.5).
	if v := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); v != nil {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, v))
	}
	switch {
	case f.tftp():
		r.UpdateOption(dhcpv4.OptTFTPServerName(serverIP.String()))
		r.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, []byte(pxeVendorOptions)))
		if a.proxy {
			// Some UEFI PXE stacks take the TFTP server from sname in
			// a proxy offer.
			r.ServerHostName = serverIP.String()
		}
	case f == FirmwareHTTP || f == FirmwareHTTPARM64:
		// UEFI HTTP boot ignores offers without this vendor class.
		r.UpdateOption(dhcpv4.OptClassIdentifier("HTTPClient"))
	case f == FirmwareIPXE:
		r.UpdateOption(dhcpv4.OptGeneric(optionIPXE, []byte(ipxeNoProxyWait)))
		if a.proxy {
			r.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		}
	}
}

// destination returns where the reply to req goes (RFC 2131 4.1), and
// whether it is a broadcast on the interface the request came in on. peer
// is the request's source and port the local port it came to.
func destination(req, rep *dhcpv4.DHCPv4, peer netip.AddrPort, port int) (dst netip.AddrPort, broadcast bool) {
	if port == ProxyPort {
		// PXE clients send proxy REQUESTs from their own address.
		return peer, false
	}
	if gi := addr(req.GatewayIPAddr); gi.IsValid() {
		return netip.AddrPortFrom(gi, ServerPort), false
	}
	if rep.MessageType() == dhcpv4.MessageTypeNak {
		return limitedBroadcast(), true
	}
	if ci := addr(req.ClientIPAddr); ci.IsValid() {
		return netip.AddrPortFrom(ci, ClientPort), false
	}
	// A client without an address cannot answer ARP for yiaddr, so the
	// reply is broadcast (RFC 2131 allows it for every client).
	return limitedBroadcast(), true
}

func limitedBroadcast() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), ClientPort)
}

// addr converts a header address; invalid for nil or 0.0.0.0.
func addr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

func isZero(ip net.IP) bool { return !addr(ip).IsValid() }

func ipOrZero(ip net.IP) net.IP {
	if a := addr(ip); a.IsValid() {
		return a.AsSlice()
	}
	return net.IPv4zero
}
