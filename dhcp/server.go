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
const DefaultWorkers = 256

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
	// IPXEScript, when set, is what iPXE gets instead of
	// BootURL+"/boot.ipxe": the TFTP URL of the script that chains to it and
	// tries again every 5 s when it fails (pxe.TFTP.BootURL), e.g.
	// "tftp://10.0.0.1/boot.ipxe". A first HTTP fetch that fails (the
	// server restarting) would make iPXE give up with no one at the console.
	IPXEScript string
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
	// discards. Lines carry the packet's MAC and xid; the caller adds what
	// names the listener (serve adds iface).
	Log *slog.Logger
	// Workers is how many packets are handled at once; zero means
	// DefaultWorkers.
	Workers int
	// Now is the clock for lease expiry and events; nil means time.Now.
	Now func() time.Time
}

// Serve answers the requests arriving on conn, a UDP socket from Listen, on
// port 67 or on port 4011 (ProxyPort: proxyDHCP REQUESTs only). Call it once
// per socket; it returns nil when ctx ends, having closed the socket, or the
// error that made the socket unusable. Serve takes conn over: it closes conn
// at once and works on a duplicate of its socket that Go's netpoller does
// not watch (see batchConn), so only ctx stops it.
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
	bc, err := newBatchConn(conn)
	if err != nil {
		return fmt.Errorf("dhcp: udp port %d: %w", port, err)
	}
	defer bc.close() // after the loops below, which use it, have ended
	stop := context.AfterFunc(ctx, bc.shutdown)
	defer stop()

	// One goroutine reads, in batches (recvmmsg): many goroutines reading
	// one socket contend for it on every packet. It answers what it can
	// from memory itself and sends those replies in one sendmmsg: a
	// machine asking again for its lease, or any packet of a known
	// machine, costs no hand-off between goroutines. A packet that needs
	// the lease store goes to a worker, which may wait for a group commit
	// while the others go on; their replies leave through one writer, in
	// batches too -- a group commit releases hundreds of ACKs at once.
	n := s.Workers
	if n <= 0 {
		n = DefaultWorkers
	}
	jobs := make(chan datagram, queueLen)
	replies := make(chan sending, queueLen)
	var workers sync.WaitGroup
	for range n {
		workers.Go(func() {
			for j := range jobs {
				if r, _ := s.serveOne(ctx, j, port, false); r != nil {
					replies <- *r
				}
			}
		})
	}
	written := make(chan struct{})
	go func() {
		s.writeLoop(bc, replies)
		close(written)
	}()
	err = s.readLoop(ctx, bc, jobs, port)
	close(jobs)
	workers.Wait()
	close(replies)
	<-written
	if ctx.Err() != nil {
		return nil
	}
	return err
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

// queueLen bounds the packets waiting for a worker and the replies waiting
// to be sent; beyond it the reader waits and the socket buffer takes the
// burst.
const queueLen = 4096

// batchLen is how many packets one recvmmsg or sendmmsg moves at most.
const batchLen = 64

// readPause is how long the reader waits, after it has drained the socket,
// before it reads again: the software form of a NIC's interrupt
// moderation. Without it, under load every packet is a wake-up of its own
// (the reader sleeps, the kernel wakes it for one packet, it sleeps again),
// and those wake-ups cost about as much as answering; with it, the packets
// of one millisecond are read and answered in one batch. A DHCP client
// waits seconds for an answer, so a millisecond is nothing to it, and an
// idle server still answers the first packet at once: the pause only
// follows a read.
const readPause = time.Millisecond

// sending is one answer on its way out (the datagram's ifIndex: broadcast
// on this interface when non-zero), with what metrics count of it.
type sending struct {
	datagram
	kind    Kind
	outcome Outcome // reply or nak, counted once it is sent
	mac     net.HardwareAddr
}

// readLoop reads packets in batches until the socket closes. It answers
// from memory what it can, sending those replies once the batch is done,
// and hands the other packets to the workers.
func (s *Server) readLoop(ctx context.Context, bc *batchConn, jobs chan<- datagram, port int) error {
	rb := newReadBatch(batchLen, maxPacket)
	ds := make([]datagram, 0, batchLen)
	out := newSender(s, bc)
	for {
		var err error
		ds, err = bc.read(rb, ds[:0])
		if err != nil {
			return fmt.Errorf("dhcp: read udp port %d: %w", port, err)
		}
		for _, d := range ds {
			// A copy: the next read reuses the buffer, and what is parsed
			// from the packet (the MAC, options) may point into it.
			d.b = append([]byte(nil), d.b...)
			r, done := s.serveOne(ctx, d, port, true)
			switch {
			case r != nil:
				out.add(*r)
			case !done:
				jobs <- d
			}
		}
		out.flush()
		if len(ds) < batchLen {
			// The socket is drained: let packets gather before the next
			// read (see readPause).
			time.Sleep(readPause)
		}
	}
}

// writeLoop sends the workers' replies, as many at once as are waiting,
// until replies is closed.
func (s *Server) writeLoop(bc *batchConn, replies <-chan sending) {
	out := newSender(s, bc)
	for r := range replies {
		out.add(r)
	more:
		for len(out.batch) < batchLen {
			select {
			case r, ok := <-replies:
				if !ok {
					break more
				}
				out.add(r)
			default:
				break more
			}
		}
		out.flush()
	}
}

// sender sends replies in batches (sendmmsg) and counts them once sent.
// Each goroutine that sends has its own.
type sender struct {
	s     *Server
	bc    *batchConn
	wb    *writeBatch
	batch []sending
	ds    []datagram
}

func newSender(s *Server, bc *batchConn) *sender {
	return &sender{s: s, bc: bc, wb: newWriteBatch(batchLen), batch: make([]sending, 0, batchLen), ds: make([]datagram, 0, batchLen)}
}

// add queues r, sending the batch first when it is full.
func (o *sender) add(r sending) {
	if len(o.batch) == batchLen {
		o.flush()
	}
	o.batch = append(o.batch, r)
}

// flush sends the queued replies.
func (o *sender) flush() {
	if len(o.batch) == 0 {
		return
	}
	o.ds = o.ds[:0]
	for _, r := range o.batch {
		o.ds = append(o.ds, r.datagram)
	}
	sent := 0
	for sent < len(o.ds) {
		n, err := o.bc.write(o.wb, o.ds[sent:])
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r := o.batch[sent]
				o.s.logger().Warn("dhcp: send reply failed", "mac", r.mac.String(), "ip", r.peer.String(), "err", err)
			}
			n = max(n, 1) // skip the reply that failed
			for _, r := range o.batch[sent : sent+n] {
				o.s.count(r.kind, OutcomeError)
			}
		} else {
			for _, r := range o.batch[sent : sent+n] {
				o.s.count(r.kind, r.outcome)
			}
		}
		sent += n
	}
	clear(o.batch) // drop the reply buffers
	o.batch = o.batch[:0]
	clear(o.ds)
}

func (s *Server) count(kind Kind, outcome Outcome) {
	if s.Metrics != nil {
		s.Metrics.Packet(kind, outcome)
	}
}

// serveOne decides the answer to one packet. It returns the reply to send,
// which the sender counts once sent, or nil, having counted the packet.
// fromMemory asks for an answer only if the lease store can give it at
// once: done is false when it cannot, and the packet, neither answered
// nor counted, is for a worker.
func (s *Server) serveOne(ctx context.Context, j datagram, port int, fromMemory bool) (r *sending, done bool) {
	kind, outcome := KindOther, OutcomeMalformed
	defer func() {
		// A bug in a decoder or an adapter must cost one packet, not
		// the server.
		if p := recover(); p != nil {
			s.logger().Error("dhcp: panic while handling a packet", "panic", fmt.Sprint(p))
			r, done, outcome = nil, true, OutcomeError
		}
		if r == nil && done {
			s.count(kind, outcome)
		}
	}()
	peer := j.peer
	req, err := dhcpv4.FromBytes(j.b)
	if err != nil {
		s.logger().Debug("dhcp: dropped malformed packet", "peer", peer.String(), "err", err)
		return nil, true
	}
	if !fromMemory {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, packetTimeout)
		defer cancel()
	}
	var out *outbound
	out, kind, outcome = s.handle(ctx, inbound{req: req, peer: peer, port: port, fromMemory: fromMemory})
	if outcome == outcomeDeferred {
		return nil, false
	}
	if out == nil {
		return nil, true
	}
	r = &sending{datagram: datagram{b: out.reply.ToBytes(), peer: out.dst}, kind: kind, outcome: outcome, mac: req.ClientHWAddr}
	if out.broadcast {
		r.ifIndex = j.ifIndex
	}
	return r, true
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
	return bootConfig{bootURL: strings.TrimRight(s.BootURL, "/"), efiBinary: s.EFIBinary, ipxeScript: s.IPXEScript}
}
