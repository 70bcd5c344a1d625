package pxe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/undercloud/undercloud/event"
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
	// Timeout is how long to wait for each acknowledgement before resending;
	// 0 means pin/tftp's default (5 s, five attempts).
	Timeout time.Duration
}

// The messages a client sees in the TFTP ERROR packet: fixed, so that nothing
// of the server's file system leaks.
var (
	errTFTPNotFound = errors.New("file not found")
	errTFTPReadOnly = errors.New("read-only server: write refused")
)

// Serve answers TFTP requests on conn until ctx ends, then closes conn, waits
// for transfers under way to finish (or time out) and returns nil.
//
// SetAnticipate is left off on purpose: pin/tftp's anticipating sender stalls
// on large blocks. pin/tftp sends each transfer from its own ephemeral port,
// as RFC 1350 asks.
func (s *TFTP) Serve(ctx context.Context, conn net.PacketConn) error {
	srv := tftp.NewServer(
		func(name string, rf io.ReaderFrom) error { return s.read(ctx, name, rf) },
		func(name string, wt io.WriterTo) error { return s.write(ctx, name, wt) },
	)
	if s.Timeout > 0 {
		srv.SetTimeout(s.Timeout)
	}
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
	ev := Event{Time: time.Now(), Kind: event.TFTP}
	if ra, ok := t.(interface{ RemoteAddr() net.UDPAddr }); ok {
		a := ra.RemoteAddr()
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			ev.IP = ip.Unmap()
		}
	}
	if s.Leases != nil && ev.IP.IsValid() {
		if mac, ok := s.Leases.MACByIP(ctx, ev.IP); ok {
			ev.MAC = mac
		}
	}
	return ev
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
