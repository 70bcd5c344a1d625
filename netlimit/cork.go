package netlimit

import (
	"context"
	"net"
	"net/http"
	"syscall"
)

// connKey carries a request's connection in its context (ConnContext).
type connKey struct{}

// ConnContext is an http.Server ConnContext that lets the server's
// handlers reach their connection, for Bulk.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// Bulk runs fn, which writes a large response to r (an artifact through
// sendfile), with the connection corked (TCP_CORK, as nginx's tcp_nopush
// does around sendfile): the kernel sends full segments only, and what is
// left when fn returns. Uncorked, every time the client's ACKs free part
// of the send buffer the kernel sends what fits at once, and with Go's
// TCP_NODELAY that is many small segments, which cost the receiving side
// more per byte (see the commit that added this for the measurement).
//
// Without a TCP connection in r's context (ConnContext not set, TLS, a
// test's recorder) fn just runs.
func Bulk(r *http.Request, fn func()) {
	tc := tcpConn(r.Context().Value(connKey{}))
	if tc == nil || setCork(tc, true) != nil {
		fn()
		return
	}
	defer setCork(tc, false) // sends the last partial segment
	fn()
}

// tcpConn is the *net.TCPConn under v (a Listener's conn or a bare one).
func tcpConn(v any) *net.TCPConn {
	switch c := v.(type) {
	case *conn:
		return tcpConn(c.Conn)
	case *net.TCPConn:
		return c
	}
	return nil
}

func setCork(tc *net.TCPConn, on bool) error {
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	v := 0
	if on {
		v = 1
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	}); err != nil {
		return err
	}
	return serr
}
