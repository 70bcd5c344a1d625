package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/ipv4"
)

// DefaultWorkers is the number of packets a Server handles at once when
// Server.Workers is zero. It is generous because workers mostly wait on
// Leases.Commit, and a store that batches commits needs many in flight.
const DefaultWorkers = 64

// packetTimeout bounds the store calls made for one packet: clients
// retransmit after about 4 s, so a later answer would be for nobody.
const packetTimeout = 10 * time.Second

// maxPacket is the receive buffer; DHCP messages fit in one Ethernet frame.
const maxPacket = 4096

// Server answers DHCP requests. Set its fields before Serve; they must not
// change while it runs (the Plan behind the interface may).
type Server struct {
	// Iface names the interface the sockets are bound to, for logs only.
	Iface string
	// ServerIP is the server's IPv4 address on the provisioning network:
	// the server identifier (option 54), siaddr and the TFTP server
	// (option 66). Clients and relays must reach it. Required.
	ServerIP netip.Addr
	// BootURL is the base URL of the machine-facing HTTP server (package
	// pxe), e.g. "http://10.0.0.1:8080". iPXE gets BootURL+"/boot.ipxe",
	// UEFI HTTP boot BootURL+"/firmware/<binary>". Empty: they get no file.
	BootURL string
	// EFIBinary is the TFTP file for x86-64 UEFI, "ipxe.efi" when empty;
	// "snponly.efi" drives the NIC through the firmware instead.
	EFIBinary string
	// Plan gives subnets and reservations. Required.
	Plan Plan
	// Leases hands out and persists addresses. Nil: unknown machines get no
	// address and nothing is persisted (known machines still get theirs).
	Leases Leases
	// Recorder receives boot events; nil discards them.
	Recorder Recorder
	// Metrics counts packets by kind and outcome; nil counts nothing.
	Metrics Metrics
	// Log receives decisions at Info and ignored packets at Debug; nil
	// discards.
	Log *slog.Logger
	// Workers is how many packets are handled at once; zero means
	// DefaultWorkers.
	Workers int
	// Now is the clock for lease expiry and events; nil means time.Now.
	Now func() time.Time
}

// Serve answers the requests arriving on conn, a UDP socket from Listen, on
// port 67 or on port 4011 (ProxyPort: proxyDHCP REQUESTs only). Call it once
// per socket; it returns nil when ctx ends, having closed conn, or the error
// that made the socket unusable.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	defer conn.Close()
	if err := s.check(); err != nil {
		return err
	}
	port := 0
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		port = ua.Port
	}
	pc := ipv4.NewPacketConn(conn)
	// The receiving interface is needed to broadcast the reply on it when
	// the socket is not bound to one device.
	if err := pc.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		return fmt.Errorf("dhcp: enable IP_PKTINFO on udp port %d: %w", port, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	n := s.Workers
	if n <= 0 {
		n = DefaultWorkers
	}
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range n {
		wg.Go(func() {
			if err := s.worker(ctx, pc, port); err != nil {
				// One failed read means the socket is gone: stop all.
				once.Do(func() {
					first = err
					conn.Close()
				})
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return first
}

func (s *Server) check() error {
	var missing []string
	if !s.ServerIP.Is4() {
		missing = append(missing, "ServerIP (an IPv4 address)")
	}
	if s.Plan == nil {
		missing = append(missing, "Plan")
	}
	if len(missing) > 0 {
		return fmt.Errorf("dhcp: server not configured: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// worker reads and answers packets until the socket fails or is closed.
// Workers share the socket: no goroutine or channel per packet, and a
// worker blocked on the store leaves the others reading.
func (s *Server) worker(ctx context.Context, pc *ipv4.PacketConn, port int) error {
	buf := make([]byte, maxPacket)
	for {
		n, cm, src, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("dhcp: read udp port %d: %w", port, err)
		}
		s.serveOne(ctx, pc, buf[:n], cm, src, port)
	}
}

func (s *Server) serveOne(ctx context.Context, pc *ipv4.PacketConn, b []byte, cm *ipv4.ControlMessage, src net.Addr, port int) {
	kind, outcome := KindOther, OutcomeMalformed
	defer func() {
		// A bug in a decoder or an adapter must cost one packet, not
		// the server.
		if r := recover(); r != nil {
			s.logger().Error("dhcp: panic while handling a packet", "panic", fmt.Sprint(r), "iface", s.Iface)
			outcome = OutcomeError
		}
		if s.Metrics != nil {
			s.Metrics.Packet(kind, outcome)
		}
	}()
	var peer netip.AddrPort
	if ua, ok := src.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		s.logger().Debug("dhcp: dropped malformed packet", "peer", peer.String(), "iface", s.Iface, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, packetTimeout)
	defer cancel()
	var out *outbound
	out, kind, outcome = s.handle(ctx, inbound{req: req, peer: peer, port: port})
	if out == nil {
		return
	}
	var wcm *ipv4.ControlMessage
	if out.broadcast && cm != nil && cm.IfIndex > 0 {
		wcm = &ipv4.ControlMessage{IfIndex: cm.IfIndex}
	}
	if _, err := pc.WriteTo(out.reply.ToBytes(), wcm, net.UDPAddrFromAddrPort(out.dst)); err != nil {
		if !errors.Is(err, net.ErrClosed) {
			s.logger().Warn("dhcp: send reply failed", "mac", req.ClientHWAddr.String(), "xid", req.TransactionID.String(),
				"iface", s.Iface, "ip", out.dst.String(), "err", err)
		}
		outcome = OutcomeError
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Server) bootConfig() bootConfig {
	return bootConfig{bootURL: strings.TrimRight(s.BootURL, "/"), efiBinary: s.EFIBinary}
}
