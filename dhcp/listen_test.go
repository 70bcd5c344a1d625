package dhcp

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dnsmasq starts a real dnsmasq DHCP server (DNS off) on srvIf inside the
// server namespace and waits until it holds port 67.
func (l *lab) dnsmasq(t *testing.T, extra ...string) {
	t.Helper()
	bin := needTool(t, "dnsmasq", "dnsmasq-base")
	dir := t.TempDir()
	args := append([]string{"--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null", "--port=0",
		"--interface=" + srvIf, "--dhcp-range=10.99.0.100,10.99.0.199,1h", "--leasefile-ro",
		"--pid-file=" + filepath.Join(dir, "pid"), "--user=root"}, extra...)
	cmd, out := l.start(t, l.srv, bin, args...)
	if !waitFor(10*time.Second, func() bool { return l.udpPortBound(t, ServerPort) }) {
		t.Fatalf("dnsmasq did not bind port 67 (state %v):\n%s", cmd.ProcessState, out)
	}
}

// udpPortBound reports whether a socket in the server namespace is bound
// to port.
func (l *lab) udpPortBound(t *testing.T, port int) bool {
	out, err := exec.Command("ip", "netns", "exec", l.srv, "cat", "/proc/net/udp").Output()
	if err != nil {
		t.Fatalf("read /proc/net/udp in %s: %v", l.srv, err)
	}
	return strings.Contains(string(out), ":"+strings.ToUpper(hex4(port))+" ")
}

func hex4(n int) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[n>>12&15], digits[n>>8&15], digits[n>>4&15], digits[n&15]})
}

// reusePortSocket binds port the way server4 does (SO_REUSEADDR and
// SO_REUSEPORT, no device) inside the server namespace.
func (l *lab) reusePortSocket(t *testing.T, port int) error {
	return inNetns(l.srv, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(fd) })
		for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
				return err
			}
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Port: port})
	})
}

// TestListenRefusesSecondServer holds the port with another server, then
// checks that Listen fails with the explanation, or succeeds where Linux
// rightly lets two servers coexist (different devices).
func TestListenRefusesSecondServer(t *testing.T) {
	const inUse = "udp port 67 on " + srvIf + " is already in use by another DHCP server (dnsmasq, kea, another undercloud?): stop it or use proxy mode"
	tests := map[string]struct {
		first   func(t *testing.T, l *lab)
		iface   string
		port    int
		wantErr string // "" = Listen must succeed
	}{
		"dnsmasq on the interface": {
			first:   func(t *testing.T, l *lab) { l.dnsmasq(t) },
			iface:   srvIf,
			port:    ServerPort,
			wantErr: inUse,
		},
		"dnsmasq with bind-interfaces (SO_REUSEPORT)": {
			first:   func(t *testing.T, l *lab) { l.dnsmasq(t, "--bind-interfaces") },
			iface:   srvIf,
			port:    ServerPort,
			wantErr: inUse,
		},
		"another undercloud on the interface": {
			first:   func(t *testing.T, l *lab) { mustListen(t, l, srvIf, ServerPort) },
			iface:   srvIf,
			port:    ServerPort,
			wantErr: inUse,
		},
		"all interfaces next to a server on one interface": {
			first:   func(t *testing.T, l *lab) { mustListen(t, l, srvIf, ServerPort) },
			port:    ServerPort,
			wantErr: "udp port 67 on all interfaces is already in use by another DHCP server",
		},
		"server4-style socket with SO_REUSEPORT": {
			first: func(t *testing.T, l *lab) {
				if err := l.reusePortSocket(t, ServerPort); err != nil {
					t.Fatal(err)
				}
			},
			iface:   srvIf,
			port:    ServerPort,
			wantErr: inUse,
		},
		"proxy port": {
			first:   func(t *testing.T, l *lab) { mustListen(t, l, srvIf, ProxyPort) },
			iface:   srvIf,
			port:    ProxyPort,
			wantErr: "udp port 4011 on " + srvIf + " is already in use by another PXE or proxyDHCP server",
		},
		"server on another device is another segment": {
			first: func(t *testing.T, l *lab) {
				l.ip(t, l.srv, "link", "add", "uc-srv1", "type", "veth", "peer", "name", "uc-srv1p")
				mustListen(t, l, "uc-srv1", ServerPort)
			},
			iface: srvIf,
			port:  ServerPort,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := newLab(t)
			tc.first(t, l)
			conn, err := listenIn(l.srv, tc.iface, tc.port)
			if conn != nil {
				conn.Close()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Listen: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatal("Listen succeeded next to another server")
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("Listen error = %q, want it to contain %q", err, tc.wantErr)
			case tc.wantErr != "" && !errors.Is(err, syscall.EADDRINUSE):
				t.Errorf("Listen error %v does not wrap EADDRINUSE", err)
			}
		})
	}
}

func mustListen(t *testing.T, l *lab, iface string, port int) {
	t.Helper()
	conn, err := listenIn(l.srv, iface, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
}

// TestListenHoldsPortExclusively checks the other direction: once we hold
// port 67, neither a SO_REUSEPORT socket nor dnsmasq can share it.
func TestListenHoldsPortExclusively(t *testing.T) {
	bin := needTool(t, "dnsmasq", "dnsmasq-base")
	l := newLab(t)
	mustListen(t, l, srvIf, ServerPort)
	if err := l.reusePortSocket(t, ServerPort); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("SO_REUSEPORT bind next to us: err = %v, want EADDRINUSE", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.srv, bin, "--keep-in-foreground", "--log-facility=-",
		"--conf-file=/dev/null", "--port=0", "--interface="+srvIf, "--bind-interfaces",
		"--dhcp-range=10.99.0.100,10.99.0.199,1h", "--leasefile-ro", "--pid-file="+filepath.Join(t.TempDir(), "pid"), "--user=root").CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Errorf("dnsmasq started next to us (err %v):\n%s", err, out)
	}
	if !strings.Contains(string(out), "in use") {
		t.Errorf("dnsmasq did not fail on the port:\n%s", out)
	}
}

// TestServeStops checks that Serve returns nil once ctx ends and has
// closed its socket, so the port can be opened again at once.
func TestServeStops(t *testing.T) {
	l := newLab(t)
	conn, err := listenIn(l.srv, srvIf, ServerPort)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{ServerIP: serverIP, Plan: testPlan(), Log: testLogger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	mustListen(t, l, srvIf, ServerPort)

	// A server that is not configured says so and closes its socket.
	conn, err = listenIn(l.srv, "", ProxyPort)
	if err != nil {
		t.Fatal(err)
	}
	err = (&Server{}).Serve(context.Background(), conn)
	if err == nil || !strings.Contains(err.Error(), "missing ServerIP (an IPv4 address), Plan") {
		t.Errorf("Serve without config = %v", err)
	}
	mustListen(t, l, "", ProxyPort)
}
