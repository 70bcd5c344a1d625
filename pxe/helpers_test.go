package pxe

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// need fails the test when a tool a test runs is missing, naming the Debian
// package that provides it: a missing peer is a broken test machine, never a
// reason to skip.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (apt-get install %s)", tool, pkg, pkg)
	}
	return p
}

// needIPXE returns the path of a binary of Debian's ipxe package.
func needIPXE(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(DefaultFirmwareDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing: install the Debian package ipxe (apt-get install ipxe)", p)
	}
	return p
}

// run runs a command with a deadline and returns its combined output and
// error.
func run(t *testing.T, dir string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	return out.String(), err
}

// events collects recorded boot events.
type events struct {
	mu sync.Mutex
	l  []Event
}

func (e *events) Record(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.l = append(e.l, ev)
}

func (e *events) all() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.l...)
}

// wait polls until an event matches, since a server records after the
// client has already gone (the last TFTP ACK, the end of a response).
func (e *events) wait(t *testing.T, match func(Event) bool) Event {
	t.Helper()
	return e.waitN(t, 1, match)[0]
}

// waitN waits (up to 10 s) until n recorded events match, and returns them.
func (e *events) waitN(t *testing.T, n int, match func(Event) bool) []Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []Event
		for _, ev := range e.all() {
			if match(ev) {
				got = append(got, ev)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d matching events of %d wanted among %+v", len(got), n, e.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaseTable is a fixed IP to MAC map.
type leaseTable map[netip.Addr]string

func (l leaseTable) MACByIP(_ context.Context, ip netip.Addr) (string, bool) {
	mac, ok := l[ip]
	return mac, ok
}

// metrics remembers what the Metrics hook is told.
type metrics struct {
	mu   sync.Mutex
	http map[string]int // "endpoint status" -> count
	tftp []tftpCall
}

type tftpCall struct {
	File  string
	Bytes int64
	OK    bool
}

func (m *metrics) HTTPRequest(endpoint string, status int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.http == nil {
		m.http = map[string]int{}
	}
	m.http[endpoint+" "+strconv.Itoa(status)]++
}

func (m *metrics) TFTPTransfer(file string, n int64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tftp = append(m.tftp, tftpCall{file, n, ok})
}

func (m *metrics) httpCount(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.http[key]
}

func (m *metrics) tftpCalls() []tftpCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]tftpCall(nil), m.tftp...)
}
