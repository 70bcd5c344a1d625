package dhcp

import (
	"context"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm/testkit"
	"golang.org/x/sys/unix"
)

// A lab is a pair of network namespaces joined by a veth pair: the server
// end (srvIf, 10.99.0.1/24) and the client end (cliIf, no address). All the
// traffic of the network tests stays inside them.
type lab struct {
	srv, cli string // namespace names
}

const (
	srvIf = "uc-srv0"
	cliIf = "uc-cli0"
)

// needRoot fails the test when it cannot create namespaces or bind port 67.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: it creates network namespaces and binds port 67 inside them")
	}
}

// needTool returns the path of a program the test drives, failing with the
// Debian package to install when it is missing.
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if p := dir + "/" + name; fileExists(p) {
			return p
		}
	}
	t.Fatalf("%s not found: install the Debian package %s", name, pkg)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// newLab makes the namespaces, named after the pid and the test so that
// parallel test binaries never collide, and deletes them when t ends.
func newLab(t *testing.T) *lab {
	t.Helper()
	needRoot(t)
	ip := needTool(t, "ip", "iproute2")
	base := fmt.Sprintf("ucdhcp-%d-%08x", os.Getpid(), crc32.ChecksumIEEE([]byte(t.Name())))
	l := &lab{srv: base + "-s", cli: base + "-c"}
	for _, ns := range []string{l.srv, l.cli} {
		_ = exec.Command(ip, "netns", "del", ns).Run() // a leftover of a killed run
		sh(t, ip, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("delete netns %s: %v: %s", ns, err, out)
			}
		})
	}
	sh(t, ip, "link", "add", srvIf, "netns", l.srv, "type", "veth", "peer", "name", cliIf, "netns", l.cli)
	sh(t, ip, "-n", l.srv, "addr", "add", "10.99.0.1/24", "dev", srvIf)
	for _, c := range [][]string{{"-n", l.srv, "link", "set", "lo", "up"}, {"-n", l.srv, "link", "set", srvIf, "up"},
		{"-n", l.cli, "link", "set", "lo", "up"}, {"-n", l.cli, "link", "set", cliIf, "up"}} {
		sh(t, ip, c...)
	}
	return l
}

// sh runs a command and fails the test with its output when it fails.
func sh(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ip runs "ip -n ns args...".
func (l *lab) ip(t testing.TB, ns string, args ...string) {
	t.Helper()
	sh(t, "ip", append([]string{"-n", ns}, args...)...)
}

// setClientMAC gives the client end the MAC of the machine a test plays.
func (l *lab) setClientMAC(t testing.TB, mac string) {
	t.Helper()
	l.ip(t, l.cli, "link", "set", cliIf, "down")
	l.ip(t, l.cli, "link", "set", cliIf, "address", mac)
	l.ip(t, l.cli, "link", "set", cliIf, "up")
}

// inNetns runs fn on an OS thread that has entered namespace ns. Sockets
// fn opens stay in ns for their whole life. The thread is never unlocked,
// so Go discards it when fn returns instead of reusing it elsewhere.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// listenIn opens a server socket inside ns.
func listenIn(ns, iface string, port int) (net.PacketConn, error) {
	var conn net.PacketConn
	err := inNetns(ns, func() error {
		var err error
		conn, err = Listen(iface, port)
		return err
	})
	return conn, err
}

// serve runs s on srvIf inside the server namespace, on the given ports,
// and stops it when the test ends, checking that Serve returns nil.
func (l *lab) serve(t *testing.T, s *Server, ports ...int) {
	t.Helper()
	l.serveOn(t, s, srvIf, ports...)
}

// serveOn is serve on iface; "" is all interfaces.
func (l *lab) serveOn(t *testing.T, s *Server, iface string, ports ...int) {
	t.Helper()
	if s.Log == nil {
		s.Log = testLogger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, port := range ports {
		conn, err := listenIn(l.srv, iface, port)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := s.Serve(ctx, conn); err != nil {
				t.Errorf("Serve on port %d: %v", port, err)
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// testLogger logs through t, at Debug, so failures show the server's view.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&tWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// start runs a program inside ns and kills it when the test ends.
func (l *lab) start(t *testing.T, ns string, name string, args ...string) (*exec.Cmd, *testkit.SyncBuffer) {
	t.Helper()
	out := &testkit.SyncBuffer{}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		// "ip netns exec" execs the program, so this pid is the program.
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}
