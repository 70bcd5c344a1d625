package dhcp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// discover builds a DISCOVER from mac with the given options.
func discover(t testing.TB, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	return packet(t, dhcpv4.MessageTypeDiscover, mac, mods...)
}

func packet(t testing.TB, typ dhcpv4.MessageType, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	base := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithHwAddr(hw),
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}),
	}
	p, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func arch(a iana.Arch) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClientArch(a)) }

func vendor(v string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClassIdentifier(v)) }

func ipxeClass() dhcpv4.Modifier { return dhcpv4.WithUserClass("iPXE", false) }

// The test plan: the server's own segment, a relayed segment, a relayed
// segment without dynamic range, and a proxy segment.
const (
	knownMAC   = "02:00:00:99:00:10"
	knownIP    = "10.99.0.10"
	remoteMAC  = "02:00:00:99:00:11" // known, reserved on the relayed segment
	unknownMAC = "02:00:00:99:00:99"
	otherMAC   = "02:00:00:99:00:98"
)

var (
	serverIP = netip.MustParseAddr("10.99.0.1")
	testNow  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func testPlan() *memPlan {
	return &memPlan{
		subnets: []Subnet{
			{
				Site: "lab", Prefix: netip.MustParsePrefix("10.99.0.0/24"),
				Router: serverIP, DNS: []netip.Addr{serverIP}, Domain: "lab.example",
				Range:     &Range{First: netip.MustParseAddr("10.99.0.100"), Last: netip.MustParseAddr("10.99.0.199")},
				LeaseTime: time.Hour,
			},
			{
				Site: "lab", Prefix: netip.MustParsePrefix("10.99.4.0/22"),
				Router:    netip.MustParseAddr("10.99.4.1"),
				Range:     &Range{First: netip.MustParseAddr("10.99.4.10"), Last: netip.MustParseAddr("10.99.7.250")},
				LeaseTime: 10 * time.Minute,
			},
			{Site: "closed", Prefix: netip.MustParsePrefix("10.99.8.0/24"), Router: netip.MustParseAddr("10.99.8.1")},
			{Site: "proxied", Prefix: netip.MustParsePrefix("10.99.9.0/24"), Proxy: true},
		},
		res: map[string]Reservation{
			knownMAC:  {Site: "lab", Hostname: "node-a", IP: netip.MustParseAddr(knownIP)},
			remoteMAC: {Site: "lab", Hostname: "node-b", IP: netip.MustParseAddr("10.99.4.20")},
		},
	}
}

func testServer(leases *memLeases, rec *memRecorder) *Server {
	return &Server{
		Iface: "test0", ServerIP: serverIP, BootURL: "http://10.99.0.1:8080/",
		Plan: testPlan(), Leases: leases, Recorder: rec,
		Now: func() time.Time { return testNow },
	}
}

// view is the part of a reply the tests compare.
type view struct {
	Dst       string
	Broadcast bool
	YIAddr    string
	CIAddr    string
	SIAddr    string
	GIAddr    string
	Flags     uint16
	File      string
	SName     string
	Options   map[uint8]string
}

func viewOf(out *outbound) *view {
	if out == nil {
		return nil
	}
	r := out.reply
	v := &view{
		Dst: out.dst.String(), Broadcast: out.broadcast,
		YIAddr: r.YourIPAddr.String(), CIAddr: r.ClientIPAddr.String(), SIAddr: r.ServerIPAddr.String(), GIAddr: r.GatewayIPAddr.String(),
		Flags: r.Flags, File: r.BootFileName, SName: r.ServerHostName, Options: map[uint8]string{},
	}
	for code, val := range r.Options {
		v.Options[code] = optionString(code, val)
	}
	return v
}

// optionString renders an option value readably for the options we send.
func optionString(code uint8, v []byte) string {
	switch code {
	case 1, 3, 6, 54:
		s := ""
		for i := 0; i+4 <= len(v); i += 4 {
			if s != "" {
				s += ","
			}
			s += net.IP(v[i : i+4]).String()
		}
		return s
	case 12, 15, 56, 60, 66, 67:
		return string(v)
	case 51, 58, 59:
		return fmt.Sprint(binary.BigEndian.Uint32(v))
	case 53:
		return dhcpv4.MessageType(v[0]).String()
	}
	return fmt.Sprintf("%x", v)
}

// Options every address reply on the server's segment carries.
func labOptions(typ string, extra map[uint8]string) map[uint8]string {
	m := map[uint8]string{
		53: typ, 54: "10.99.0.1", 1: "255.255.255.0", 3: "10.99.0.1", 6: "10.99.0.1", 15: "lab.example",
		51: "3600", 58: "1800", 59: "3150",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

var pxeBIOS = map[uint8]string{60: "PXEClient", 43: "060108ff", 66: "10.99.0.1"}

func merge(ms ...map[uint8]string) map[uint8]string {
	out := map[uint8]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func requested(ip string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(ip)))
}

func serverID(ip string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(ip)))
}

func relayed(giaddr string) dhcpv4.Modifier { return dhcpv4.WithGatewayIP(net.ParseIP(giaddr)) }

func ciaddr(ip string) dhcpv4.Modifier { return dhcpv4.WithClientIP(net.ParseIP(ip)) }

func commit(m *memLeases, mac, ip string) {
	hw, _ := net.ParseMAC(mac)
	if _, err := m.Commit(context.Background(), Lease{MAC: hw, IP: netip.MustParseAddr(ip), Expires: testNow.Add(time.Hour)}); err != nil {
		panic(err) // test setup only
	}
}
