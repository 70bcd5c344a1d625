// Package netlimit bounds what clients can hold of a server: how many
// connections at once, in all and from one address (Listener), and how long
// a request may take to arrive and a response may stall (Deadlines).
//
// Without these one client exhausted the server's file descriptors with
// 20,000 idle keep-alive connections, and every service stopped with it.
package netlimit

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Listener is a net.Listener that holds at most Max connections at once and
// at most PerIP from one remote address. A connection beyond either cap is
// closed as soon as it is accepted — the client sees a reset or EOF, not a
// queue — and counted in Refused. A zero cap means no cap.
type Listener struct {
	net.Listener
	// Log receives each refusal at Debug (a flood is counted, not logged
	// at Info); nil discards.
	Log *slog.Logger

	slots   Slots
	refused atomic.Uint64
}

// Limit wraps ln in a Listener with the given caps.
func Limit(ln net.Listener, max, perIP int, log *slog.Logger) *Listener {
	return &Listener{Listener: ln, Log: log, slots: Slots{Max: max, PerClient: perIP}}
}

// Accept returns the next connection within the caps, closing every one
// beyond them on the way.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if reason := l.slots.Take(ip); reason != "" {
			c.Close()
			l.refused.Add(1)
			if l.Log != nil {
				l.Log.Debug("connection refused", "ip", ip.String(), "listen", l.Addr().String(), "reason", "connection "+reason)
			}
			continue
		}
		return &conn{Conn: c, l: l, ip: ip}, nil
	}
}

// Refused is how many connections were closed at once for being over a cap.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Open is how many accepted connections are not closed yet.
func (l *Listener) Open() int { return l.slots.Held() }

// remoteIP is c's peer address, IPv4-mapped addresses unmapped so that one
// client counts once whichever way it connects.
func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// conn gives its slot back once, at its first Close.
type conn struct {
	net.Conn
	l    *Listener
	ip   netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.slots.Give(c.ip) })
	return err
}

// ReadFrom keeps the sendfile path open to net/http: an artifact of a
// gigabyte is sent by the kernel, not copied through Go (see sendFile).
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		if n, handled, err := sendFile(tc, r); handled {
			return n, err
		}
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite half-closes the connection, as net/http does before closing
// one it refuses to read further.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
