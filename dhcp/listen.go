package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Listen opens the UDP socket Serve reads: port 67 (ServerPort), or 4011
// (ProxyPort) for proxyDHCP. main calls it before starting anything, so that
// a bind error shows at once. It needs root (or CAP_NET_BIND_SERVICE and
// CAP_NET_RAW).
//
// The socket is bound to 0.0.0.0 and, when iface is not empty, to that
// device (SO_BINDTODEVICE): it then hears only that segment, and broadcasts
// go out of it. It is opened WITHOUT SO_REUSEADDR and SO_REUSEPORT, so that
// a second DHCP server on the same segment makes Listen fail instead of
// silently sharing the port (Linux would spread packets between the two).
// Linux treats device-bound sockets as follows: two sockets on the same
// port conflict unless both are bound to different devices; a socket bound
// to no device conflicts with every other. So Listen("eth0") coexists with
// a dnsmasq bound to eth1 (another segment) but fails next to a dnsmasq
// listening on all interfaces or on eth0. A server that only uses raw
// sockets (ISC dhcpd, Kea with dhcp-socket-type raw) is not detected.
// A device-bound socket also hears relayed requests only if they arrive by
// that device; use "" when relays reach the server by another interface
// (broadcast replies still leave by the interface the request came in on).
// Note that in proxy mode the network's DHCP server must run on another
// host, since both need port 67.
// rcvBuf is the receive buffer Listen asks for.
const rcvBuf = 4 << 20

func Listen(iface string, port int) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// A bring-up (hundreds of machines powered on at once) arrives
			// in bursts; the kernel's default buffer (~200 KiB) overflows
			// while the workers wait for a lease commit. Best effort: the
			// kernel caps it at net.core.rmem_max.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
			if iface != "" {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface)
			}
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("bind to device %s: %w", iface, serr)
		}
		return nil
	}}
	// Go sets SO_BROADCAST on datagram sockets and SO_REUSEADDR only on
	// multicast ones, so this socket shares its port with nobody.
	conn, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err == nil {
		return conn, nil
	}
	where := "all interfaces"
	if iface != "" {
		where = iface
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		who := "another DHCP server (dnsmasq, kea, another undercloud?): stop it or use proxy mode"
		if port == ProxyPort {
			who = "another PXE or proxyDHCP server (pixiecore, smee, dnsmasq, another undercloud?): stop it"
		}
		return nil, fmt.Errorf("udp port %d on %s is already in use by %s: %w", port, where, who, err)
	}
	return nil, fmt.Errorf("dhcp: listen on udp port %d on %s: %w", port, where, err)
}

// InterfaceAddr returns the interface's IPv4 address inside subnet, else its
// first IPv4 address; invalid when it has none (or no such interface).
func InterfaceAddr(name string, subnet netip.Prefix) netip.Addr {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}
	}
	addrs, _ := ifi.Addrs()
	var first netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || !p.Addr().Is4() {
			continue
		}
		if subnet.Contains(p.Addr()) {
			return p.Addr()
		}
		if !first.IsValid() {
			first = p.Addr()
		}
	}
	return first
}
