package testvm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Command returns cmd prefixed with `ip netns exec <lab>`: it runs inside the
// namespace. Callers own its lifetime; see [Lab.Start] for a managed process.
func (l *Lab) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.Name}, args...)...)
}

// Run runs a short command inside the namespace and returns its combined
// output; the error carries the output too.
func (l *Lab) Run(ctx context.Context, args ...string) ([]byte, error) {
	if len(args) == 0 {
		return nil, errors.New("testvm: Run: no command")
	}
	if _, err := lookTool(args[0]); err != nil && !strings.Contains(args[0], "/") {
		return nil, err
	}
	out, err := l.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s in %s: %w: %s", strings.Join(args, " "), l.Name, err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Start runs a long-lived command inside the namespace, its output going to
// Dir/<name>.log. The lab kills it on Close; Stop ends it earlier.
func (l *Lab) Start(name string, args ...string) (*Proc, error) {
	if len(args) == 0 {
		return nil, errors.New("testvm: Start: no command")
	}
	if _, err := lookTool(args[0]); err != nil && !strings.Contains(args[0], "/") {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.Name}, args...)...)
	return l.startProc(name, cmd, filepath.Join(l.Dir, name+".log"))
}

// startProc starts cmd and registers it to be stopped on Close.
func (l *Lab) startProc(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("testvm: lab is closed")
	}
	p, err := startProc(name, cmd, logPath)
	if err != nil {
		return nil, err
	}
	l.procs = append(l.procs, p)
	l.Log.Debug("started", "proc", name, "pid", p.Pid())
	return p, nil
}

// Listen opens a listener inside the namespace (e.g. "tcp", "10.99.0.1:8080");
// serve it from this process. The caller closes it.
func (l *Lab) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(l.Name, func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, address, l.Name, err)
	}
	return ln, nil
}

// ListenPacket opens a packet socket inside the namespace (a DHCP or TFTP
// server under test); the caller closes it.
func (l *Lab) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := InNetns(l.Name, func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, address, l.Name, err)
	}
	return pc, nil
}

// Do runs fn on a thread inside the namespace: for sockets that need options
// set before bind (SO_BINDTODEVICE, raw sockets).
func (l *Lab) Do(fn func() error) error { return InNetns(l.Name, fn) }

// HTTPClient returns an HTTP client whose connections are opened inside the
// lab's namespace. The dial itself must run there: http.Transport dials from
// goroutines of its own, which may run on threads of the host namespace, and
// a request for a lab address must never leave through the host's routes.
func (l *Lab) HTTPClient(timeout time.Duration) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := l.Do(func() error {
			var err error
			c, err = (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}
