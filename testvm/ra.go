package testvm

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ICMPv6 types of RFC 4861 neighbour discovery.
const (
	icmpRouterSolicitation  = 133
	icmpRouterAdvertisement = 134
)

// raInterval is how often an unsolicited advertisement goes out, in case a
// solicitation was missed; solicitations are answered at once.
const raInterval = time.Second

// routerAdvert answers IPv6 router solicitations on the lab bridge.
//
// iPXE configures IPv6 next to DHCPv4 and, when no router advertisement comes,
// waits about 13 s for one before it boots anything. Any advertisement without
// the M and O flags ends that wait at once (iPXE ipv6conf_rx_router_advertisement),
// so this one carries no prefix and a router lifetime of 0: nobody routes or
// addresses anything because of it. It runs in the lab, independent of the DHCP
// server under test, which therefore need not send RAs itself.
type routerAdvert struct {
	fd      int
	ifindex int
	packet  []byte
	log     *slog.Logger
	stop    chan struct{}
	wg      sync.WaitGroup
}

// startRouterAdvert opens a raw ICMPv6 socket on the bridge inside the
// namespace and starts answering.
func startRouterAdvert(netns, bridge string, log *slog.Logger) (*routerAdvert, error) {
	ra := &routerAdvert{fd: -1, log: log, stop: make(chan struct{})}
	err := InNetns(netns, func() error {
		ifi, err := net.InterfaceByName(bridge)
		if err != nil {
			return err
		}
		ra.ifindex = ifi.Index
		ra.packet = routerAdvertisement(ifi.HardwareAddr)
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		ra.fd = fd
		return ra.configure(bridge)
	})
	if err != nil {
		if ra.fd >= 0 {
			_ = unix.Close(ra.fd)
		}
		return nil, fmt.Errorf("router advertisements on %s: %w", bridge, err)
	}
	ra.wg.Add(1)
	go ra.run()
	return ra, nil
}

// configure sets what RFC 4861 requires of an RA sender (hop limit 255) and
// subscribes to solicitations only.
func (ra *routerAdvert) configure(bridge string) error {
	opts := []struct{ level, opt, val int }{
		{unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255},
		{unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255},
		{unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0},
		{unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ra.ifindex},
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(ra.fd, o.level, o.opt, o.val); err != nil {
			return fmt.Errorf("setsockopt %d: %w", o.opt, err)
		}
	}
	if err := unix.SetsockoptString(ra.fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, bridge); err != nil {
		return fmt.Errorf("bind to %s: %w", bridge, err)
	}
	var filter unix.ICMPv6Filter // a set bit blocks that type
	for i := range filter.Data {
		filter.Data[i] = 0xffffffff
	}
	filter.Data[icmpRouterSolicitation>>5] &^= 1 << (icmpRouterSolicitation & 31)
	if err := unix.SetsockoptICMPv6Filter(ra.fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &filter); err != nil {
		return fmt.Errorf("icmpv6 filter: %w", err)
	}
	mreq := &unix.IPv6Mreq{Interface: uint32(ra.ifindex)}
	copy(mreq.Multiaddr[:], net.ParseIP("ff02::2").To16()) // all-routers, where solicitations go
	if err := unix.SetsockoptIPv6Mreq(ra.fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq); err != nil {
		return fmt.Errorf("join ff02::2: %w", err)
	}
	tv := unix.NsecToTimeval((250 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(ra.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("receive timeout: %w", err)
	}
	return nil
}

// routerAdvertisement builds the RA: no flags, router lifetime 0, no prefix,
// only the source link-layer address option. The kernel fills the checksum
// of raw ICMPv6 sockets.
func routerAdvertisement(mac net.HardwareAddr) []byte {
	p := []byte{
		icmpRouterAdvertisement, 0, 0, 0, // type, code, checksum
		64, 0, 0, 0, // current hop limit, flags (no M, no O), router lifetime 0
		0, 0, 0, 0, // reachable time
		0, 0, 0, 0, // retransmission timer
	}
	if len(mac) == 6 {
		p = append(p, 1, 1) // source link-layer address option, 8 bytes
		p = append(p, mac...)
	}
	return p
}

// run answers solicitations and advertises every raInterval until Close.
func (ra *routerAdvert) run() {
	defer ra.wg.Done()
	buf := make([]byte, 1500)
	var last time.Time
	for {
		select {
		case <-ra.stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(ra.fd, buf, 0)
		solicited := err == nil && n > 0 && buf[0] == icmpRouterSolicitation
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			ra.log.Debug("router solicitation receive", "err", err)
			time.Sleep(100 * time.Millisecond)
		}
		if solicited || time.Since(last) >= raInterval {
			ra.send()
			last = time.Now()
		}
	}
}

// send multicasts the RA to all nodes on the bridge. Errors are expected only
// in the instant before the bridge's link-local address exists.
func (ra *routerAdvert) send() {
	dst := &unix.SockaddrInet6{ZoneId: uint32(ra.ifindex)}
	copy(dst.Addr[:], net.ParseIP("ff02::1").To16())
	if err := unix.Sendto(ra.fd, ra.packet, 0, dst); err != nil {
		ra.log.Debug("router advertisement", "err", err)
	}
}

// Close stops the sender and closes its socket.
func (ra *routerAdvert) Close() error {
	close(ra.stop)
	ra.wg.Wait()
	return unix.Close(ra.fd)
}
