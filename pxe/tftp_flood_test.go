package pxe

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm/testkit"
)

// lowerFileLimit sets the process's open-file limit to n for the test, so
// that exhausting it is quick and real.
func lowerFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = min(n, old.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestTFTPReadFlood sends 2,000 read requests from one client that never
// acknowledges a block, under an open-file limit of 1,024. Each used to hold
// a socket for about 33 s, so the process ran out of descriptors and TFTP
// and HTTP stopped. Now the client gets at most MaxPerClient transfers, the
// rest an ERROR at once; another client's tftp-hpa and an HTTP request on
// the same process still succeed; and the flooder's own transfers time out
// within a few seconds, after which it is served again.
func TestTFTPReadFlood(t *testing.T) {
	want := testkit.ReadFile(t, needIPXE(t, "undionly.kpxe"))
	need(t, "tftp", "tftp-hpa")
	lowerFileLimit(t, 1024)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer web.Close()
	m := &metrics{}
	port := startTFTP(t, testTFTP(&events{}, m))
	before := openFiles(t)

	// The flooder is 127.0.0.2: another client than the tftp-hpa below.
	flood, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	server, _ := net.ResolveUDPAddr("udp4", "127.0.0.1:"+port)
	refusals := make(chan int, 1)
	go func() {
		n := 0
		buf := make([]byte, 1500)
		for {
			flood.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, _, err := flood.ReadFrom(buf)
			if err != nil {
				refusals <- n
				return
			}
			if k >= 2 && buf[1] == 5 { // opcode ERROR
				n++
			}
		}
	}()
	rrq := append([]byte{0, 1}, "undionly.kpxe\x00octet\x00"...)
	const requests = 2000
	start := time.Now()
	for range requests {
		if _, err := flood.WriteTo(rrq, server); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Microsecond) // a loopback burst, not a socket-buffer overflow
	}
	t.Logf("%d read requests sent in %s; open files %d before, %d now", requests, time.Since(start).Round(time.Millisecond), before, openFiles(t))

	// Under the flood: another client is served, and so is HTTP.
	out := filepath.Join(t.TempDir(), "out")
	t0 := time.Now()
	if msg, err := tftpHPA(t, port, "get", "undionly.kpxe", out); err != nil {
		t.Fatalf("tftp-hpa under the flood: %v\n%s", err, msg)
	}
	if got := testkit.ReadFile(t, out); !bytes.Equal(got, want) {
		t.Fatalf("tftp-hpa under the flood got %d bytes, want %d", len(got), len(want))
	}
	t.Logf("tftp-hpa fetched %d bytes under the flood in %s", len(want), time.Since(t0).Round(time.Millisecond))
	resp, err := web.Client().Get(web.URL)
	if err != nil {
		t.Fatalf("HTTP under the flood: %v", err)
	}
	resp.Body.Close()
	if n := openFiles(t) - before; n > DefaultTFTPMaxTransfers+16 {
		t.Errorf("%d more files open under the flood, want at most about %d (the transfer cap)", n, DefaultTFTPMaxTransfers)
	}

	refused := <-refusals
	t.Logf("flooder got %d ERROR packets for %d requests", refused, requests)
	if refused < requests-2*DefaultTFTPMaxPerClient-50 {
		t.Errorf("flooder got %d ERROR packets, want one for nearly each of its %d requests beyond %d", refused, requests, DefaultTFTPMaxPerClient)
	}
	// The flooder's own transfers have timed out by now (about 4 s after
	// they began): its slots are free and it is served again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.ListenPacket("udp4", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		c.WriteTo(rrq, server)
		c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 1500)
		k, _, err := c.ReadFrom(buf)
		c.Close()
		if err == nil && k >= 4 && buf[1] == 3 { // DATA block 1
			t.Logf("flooder served again %s after the flood began", time.Since(start).Round(100*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flooder's never-acknowledged transfers still hold its slots %s after the flood", time.Since(start))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
