package pxe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/netlimit"
)

// TFTP serves the iPXE binaries of Firmware over TFTP (RFC 1350, with the
// blksize and tsize options of RFC 2348 and 2349), read-only. It is the first
// thing a PXE ROM fetches, so it records every transfer and every refusal.
type TFTP struct {
	Firmware Firmware
	Leases   Leases       // optional: names the machine of a transfer by its IP
	Recorder Recorder     // optional: receives a tftp event per request
	Metrics  Metrics      // optional
	Log      *slog.Logger // nil means discard
	// Timeout is how long to wait for each acknowledgement before resending
	// (DefaultTFTPTimeout if 0), Retries how many times to resend
	// (DefaultTFTPRetries if 0). Together they bound how long a client that
	// never acknowledges holds its transfer: about Timeout × (Retries+1).
	Timeout time.Duration
	Retries int
	// MaxTransfers bounds the transfers under way at once, MaxPerClient
	// those of one client address (DefaultTFTPMaxTransfers,
	// DefaultTFTPMaxPerClient if 0). A read request beyond either is
	// refused at once with an ERROR packet, counted as a failed transfer
	// and logged at Debug only: a flood must not fill the log or the
	// inventory.
	MaxTransfers int
	MaxPerClient int
	// BootPort, when non-zero, makes TFTP serve BootScriptName too: the
	// first script iPXE runs (docs/boot-flow.md), which chains to
	// http://ADDR:BootPort/boot.ipxe, ADDR being the address the request
	// came to (the DHCP answer's server), and tries again every 5 s when
	// that fails. It is rendered per request, in memory.
	BootPort int
}

// BootScriptName is the name under which TFTP serves the first iPXE script
// (TFTP.BootPort); the DHCP answer to iPXE names it.
const BootScriptName = "boot.ipxe"

// TFTPBootURL is the URL of the first iPXE script (BootScriptName) on the
// TFTP server at server and port, for the DHCP answer to iPXE:
// tftp://10.0.0.1/boot.ipxe, with the port only when it is not 69.
func TFTPBootURL(server netip.Addr, port int) string {
	host := server.String()
	if port != 0 && port != 69 {
		return "tftp://" + netip.AddrPortFrom(server, uint16(port)).String() + "/" + BootScriptName
	}
	if server.Is6() {
		host = "[" + host + "]"
	}
	return "tftp://" + host + "/" + BootScriptName
}

// Defaults of TFTP's bounds. pin/tftp's own (5 s, five resends, a random
// backoff of up to 1 s) kept a client that never acknowledges for about
// 33 s per request, so a flood of 2,000 read requests held 2,000 sockets.
// A PXE ROM on the LAN acknowledges in milliseconds and fetches one file
// at a time.
const (
	DefaultTFTPTimeout      = time.Second
	DefaultTFTPRetries      = 3
	DefaultTFTPMaxTransfers = 64
	DefaultTFTPMaxPerClient = 4
)

// The messages a client sees in the TFTP ERROR packet: fixed, so that nothing
// of the server's file system leaks.
var (
	errTFTPNotFound = errors.New("file not found")
	errTFTPReadOnly = errors.New("read-only server: write refused")
	errTFTPBusy     = errors.New("server busy: try again")
)

// Serve answers TFTP requests on conn until ctx ends, then closes conn, waits
// for transfers under way to finish (or time out) and returns nil.
//
// SetAnticipate is left off on purpose: pin/tftp's anticipating sender stalls
// on large blocks. pin/tftp sends each transfer from its own ephemeral port,
// as RFC 1350 asks.
func (s *TFTP) Serve(ctx context.Context, conn net.PacketConn) error {
	slots := &netlimit.Slots{Max: cmp.Or(s.MaxTransfers, DefaultTFTPMaxTransfers), PerClient: cmp.Or(s.MaxPerClient, DefaultTFTPMaxPerClient)}
	var sc *Scripts
	if s.BootPort != 0 {
		var err error
		if sc, err = ParseScripts(); err != nil {
			conn.Close()
			return fmt.Errorf("tftp: %w", err)
		}
	}
	srv := tftp.NewServer(
		func(name string, rf io.ReaderFrom) error { return s.admit(ctx, slots, sc, name, rf) },
		func(name string, wt io.WriterTo) error { return s.write(ctx, name, wt) },
	)
	srv.SetTimeout(cmp.Or(s.Timeout, DefaultTFTPTimeout))
	srv.SetRetries(cmp.Or(s.Retries, DefaultTFTPRetries))
	// A short, fixed pause before each resend rather than pin/tftp's random
	// one of up to a second.
	srv.SetBackoff(func(int) time.Duration { return 50 * time.Millisecond })
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(conn) }()
	select {
	case <-ctx.Done():
		srv.Shutdown()
		conn.Close()
		<-errc
		return nil
	case err := <-errc:
		conn.Close()
		if err != nil {
			return fmt.Errorf("tftp serve on %s: %w", conn.LocalAddr(), err)
		}
		return nil
	}
}

// admit runs a read request in a transfer slot, or refuses it when none is
// free.
func (s *TFTP) admit(ctx context.Context, sl *netlimit.Slots, sc *Scripts, raw string, rf io.ReaderFrom) error {
	ip := remoteAddr(rf)
	if reason := sl.Take(ip); reason != "" {
		logger(s.Log).Debug("tftp read refused", "ip", ip.String(), "reason", "transfer "+reason)
		if s.Metrics != nil {
			s.Metrics.TFTPTransfer("", 0, false)
		}
		return errTFTPBusy
	}
	defer sl.Give(ip)
	if sc != nil && raw == BootScriptName {
		return s.bootScript(ctx, sc, rf)
	}
	return s.read(ctx, raw, rf)
}

// bootScript sends the first iPXE script (see BootPort), made for the
// address the request came to.
func (s *TFTP) bootScript(ctx context.Context, sc *Scripts, rf io.ReaderFrom) error {
	ev := s.event(ctx, rf)
	ev.File = BootScriptName
	log := logger(s.Log).With("ip", ev.IP.String(), "mac", ev.MAC)
	var local netip.Addr
	if pi, ok := rf.(tftp.RequestPacketInfo); ok {
		local, _ = netip.AddrFromSlice(pi.LocalIP())
	}
	local = local.Unmap()
	if !local.IsValid() || local.IsUnspecified() {
		// Without the packet's destination (no IP_PKTINFO), the script
		// cannot name the server as the machine reaches it.
		ev.Error = "no local address"
		log.Warn("tftp boot script: the request's destination address is unknown")
		s.done(ev, false)
		return errTFTPNotFound
	}
	text, err := sc.TFTPBoot("http://" + netip.AddrPortFrom(local, uint16(s.BootPort)).String())
	if err != nil {
		ev.Error = "cannot render"
		log.Warn("tftp boot script", "err", err)
		s.done(ev, false)
		return errTFTPNotFound
	}
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(int64(len(text)))
	}
	n, err := rf.ReadFrom(strings.NewReader(text))
	ev.Bytes = n
	if err != nil {
		ev.Error = "transfer failed"
		log.Warn("tftp transfer failed", "file", ev.File, "bytes", n, "err", err)
		s.done(ev, false)
		return nil
	}
	log.Info("tftp transfer", "file", ev.File, "bytes", n)
	s.done(ev, true)
	return nil
}

// read is the read-request handler: decide, open, send, record.
func (s *TFTP) read(ctx context.Context, raw string, rf io.ReaderFrom) error {
	ev := s.event(ctx, rf)
	log := logger(s.Log).With("ip", ev.IP.String(), "mac", ev.MAC)
	f, name, err := s.Firmware.Open(raw)
	if err != nil {
		ev.File = printable(raw)
		ev.Error = refusal(err)
		if errors.Is(err, ErrBadName) || errors.Is(err, ErrNotAllowed) {
			log.Info("tftp read refused", "file", ev.File, "err", err)
		} else {
			log.Warn("tftp read failed", "file", ev.File, "err", err)
		}
		s.done(ev, false)
		return errTFTPNotFound
	}
	defer f.Close()
	ev.File = name
	// tsize (RFC 2349): iPXE and most ROMs ask for it to size their buffer.
	if st, err := f.Stat(); err == nil {
		if ot, ok := rf.(tftp.OutgoingTransfer); ok {
			ot.SetSize(st.Size())
		}
	}
	n, err := rf.ReadFrom(f)
	ev.Bytes = n
	if err != nil {
		// pin/tftp has already sent the client its ERROR packet.
		ev.Error = "transfer failed"
		log.Warn("tftp transfer failed", "file", name, "bytes", n, "err", err)
		s.done(ev, false)
		return nil
	}
	log.Info("tftp transfer", "file", name, "bytes", n)
	s.done(ev, true)
	return nil
}

// write refuses every write request: the server is read-only.
func (s *TFTP) write(ctx context.Context, raw string, wt io.WriterTo) error {
	ev := s.event(ctx, wt)
	ev.File = printable(raw)
	ev.Error = "write refused"
	logger(s.Log).Info("tftp write refused", "ip", ev.IP.String(), "mac", ev.MAC, "file", ev.File)
	s.done(ev, false)
	return errTFTPReadOnly
}

// event starts the tftp event of a request, naming the client by address and,
// when the lease table knows it, by MAC.
func (s *TFTP) event(ctx context.Context, t any) Event {
	ev := Event{Time: time.Now(), Kind: event.TFTP, IP: remoteAddr(t)}
	if s.Leases != nil && ev.IP.IsValid() {
		if mac, ok := s.Leases.MACByIP(ctx, ev.IP); ok {
			ev.MAC = mac
		}
	}
	return ev
}

// remoteAddr is the client address of a pin/tftp transfer.
func remoteAddr(t any) netip.Addr {
	if ra, ok := t.(interface{ RemoteAddr() net.UDPAddr }); ok {
		a := ra.RemoteAddr()
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

func (s *TFTP) done(ev Event, ok bool) {
	if s.Recorder != nil {
		s.Recorder.Record(ev)
	}
	if s.Metrics != nil {
		file := ev.File
		if !ok && ev.Bytes == 0 {
			file = "" // a refused name is client-chosen: keep it out of metric labels
		}
		s.Metrics.TFTPTransfer(file, ev.Bytes, ok)
	}
}

// refusal says in an event why a request was not served.
func refusal(err error) string {
	switch {
	case errors.Is(err, ErrBadName):
		return "refused: not a plain file name"
	case errors.Is(err, ErrNotAllowed):
		return "refused: not on the allow-list"
	default:
		return "not found"
	}
}

// printable quotes a client-chosen name for logs and events, bounded, so that
// control bytes and megabyte names cannot reach a terminal or a database.
func printable(s string) string {
	if len(s) > 2*maxNameLen {
		s = s[:2*maxNameLen]
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}
