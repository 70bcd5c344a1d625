package pxe

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pin/tftp/v3"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/testvm/testkit"
)

const testMAC = "52:54:00:00:00:01"

// startTFTP serves s on a random loopback port and stops it when the test
// ends, failing if Serve does not return nil promptly.
func startTFTP(t *testing.T, s *TFTP) string {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	_, port, _ := net.SplitHostPort(conn.LocalAddr().String())
	return port
}

func testTFTP(ev *events, m *metrics) *TFTP {
	return &TFTP{
		Leases:   leaseTable{netip.MustParseAddr("127.0.0.1"): testMAC},
		Recorder: ev,
		Metrics:  m,
		Timeout:  time.Second,
	}
}

// tftpGet fetches name with one of the real clients into out.
func tftpGet(t *testing.T, client, port, name, out string, extra ...string) (string, error) {
	t.Helper()
	switch client {
	case "tftp-hpa":
		need(t, "tftp", "tftp-hpa")
		return tftpHPA(t, port, "get", name, out)
	case "atftp":
		need(t, "atftp", "atftp")
		args := append([]string{"--tftp-timeout", "1"}, extra...)
		args = append(args, "-g", "-r", name, "-l", out, "127.0.0.1", port)
		return run(t, "", "atftp", args...)
	case "curl":
		need(t, "curl", "curl")
		// --path-as-is: hand the name over as written, dots and all.
		return run(t, "", "curl", "-sS", "--path-as-is", "--max-time", "20", "tftp://127.0.0.1:"+port+"/"+name, "-o", out)
	}
	t.Fatalf("unknown client %s", client)
	return "", nil
}

// tftpHPA runs tftp-hpa, which exits 0 even when the server answers with an
// ERROR packet: the message is how it fails.
func tftpHPA(t *testing.T, port, verb string, args ...string) (string, error) {
	t.Helper()
	msg, err := run(t, "", "tftp", append([]string{"127.0.0.1", port, "-m", "binary", "-c", verb}, args...)...)
	if err == nil && strings.Contains(msg, "Error code") {
		err = fmt.Errorf("tftp %s: server error", verb)
	}
	return msg, err
}

// Each real client fetches the real iPXE binary byte for byte, and each
// transfer is recorded with the machine's MAC and the byte count.
func TestTFTPRealClients(t *testing.T) {
	want := testkit.ReadFile(t, needIPXE(t, "undionly.kpxe"))
	ev, m := &events{}, &metrics{}
	port := startTFTP(t, testTFTP(ev, m))
	for _, client := range []string{"tftp-hpa", "atftp", "curl"} {
		t.Run(client, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			if msg, err := tftpGet(t, client, port, "undionly.kpxe", out); err != nil {
				t.Fatalf("%s get: %v\n%s", client, err, msg)
			}
			if got := testkit.ReadFile(t, out); !bytes.Equal(got, want) {
				t.Fatalf("%s got %d bytes (sha256 %s), want %d (sha256 %s)", client, len(got), testkit.SHA256Hex(got), len(want), testkit.SHA256Hex(want))
			}
		})
	}
	// A transfer is recorded once its last block is acknowledged, which
	// may come after the client has exited.
	ev.waitN(t, 3, func(e Event) bool { return e.Kind == event.TFTP && e.Bytes == int64(len(want)) })
	var ok []Event
	for _, e := range ev.all() {
		e.Time = time.Time{}
		ok = append(ok, e)
	}
	wantEv := Event{Kind: event.TFTP, MAC: testMAC, IP: netip.MustParseAddr("127.0.0.1"), File: "undionly.kpxe", Bytes: int64(len(want))}
	if diff := cmp.Diff([]Event{wantEv, wantEv, wantEv}, ok, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	for _, c := range m.tftpCalls() {
		if c != (tftpCall{"undionly.kpxe", int64(len(want)), true}) {
			t.Errorf("metrics call %+v", c)
		}
	}
}

// The blksize (RFC 2348) and tsize (RFC 2349) options are honoured: a large
// binary comes through intact with big blocks, and tsize announces its size.
func TestTFTPOptions(t *testing.T) {
	path := needIPXE(t, "ipxe.efi")
	want := testkit.ReadFile(t, path)
	port := startTFTP(t, testTFTP(&events{}, &metrics{}))

	t.Run("atftp blksize", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		msg, err := tftpGet(t, "atftp", port, "ipxe.efi", out, "--option", "blksize 8192", "--option", "tsize 0", "--verbose")
		if err != nil {
			t.Fatalf("atftp: %v\n%s", err, msg)
		}
		if got := testkit.ReadFile(t, out); !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, want %d", len(got), len(want))
		}
		if !strings.Contains(msg, "blksize") {
			t.Errorf("atftp saw no blksize option acknowledged:\n%s", msg)
		}
	})
	t.Run("pin client tsize", func(t *testing.T) {
		c, err := tftp.NewClient("127.0.0.1:" + port)
		if err != nil {
			t.Fatal(err)
		}
		c.SetBlockSize(1468)
		c.RequestTSize(true)
		wt, err := c.Receive("ipxe.efi", "octet")
		if err != nil {
			t.Fatal(err)
		}
		size, ok := wt.(tftp.IncomingTransfer).Size()
		if !ok || size != int64(len(want)) {
			t.Errorf("tsize = %d, %v; want %d", size, ok, len(want))
		}
		var buf bytes.Buffer
		if _, err := wt.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("got %d bytes, want %d", buf.Len(), len(want))
		}
	})
}

// Names outside the allow-list, or that are not plain names, are refused by
// every client: the client fails and nothing usable is written.
func TestTFTPRefuses(t *testing.T) {
	needIPXE(t, "undionly.kpxe")
	ev, m := &events{}, &metrics{}
	port := startTFTP(t, testTFTP(ev, m))
	names := []string{
		"../ipxe/undionly.kpxe",       // would clean to the real file
		"/usr/lib/ipxe/undionly.kpxe", // absolute, to an allowed file
		"/etc/passwd",                 // absolute
		"undionly.kpxe/../../../etc/passwd",
		"ipxe.lkrn",  // in the directory, not on the list
		"pxelinux.0", // not there at all
	}
	for _, client := range []string{"tftp-hpa", "atftp", "curl"} {
		for _, name := range names {
			t.Run(client+" "+name, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				msg, err := tftpGet(t, client, port, name, out)
				if err == nil {
					t.Fatalf("%s get %q succeeded:\n%s", client, name, msg)
				}
				if b, err := os.ReadFile(out); err == nil && len(b) > 0 {
					t.Fatalf("%s wrote %d bytes for %q", client, len(b), name)
				}
			})
		}
	}
	refused := ev.wait(t, func(e Event) bool { return e.File == "/etc/passwd" })
	if refused.Kind != event.TFTP || refused.Error == "" || refused.Bytes != 0 || refused.MAC != testMAC {
		t.Errorf("refusal event = %+v", refused)
	}
	for _, c := range m.tftpCalls() {
		if c.OK || c.File != "" {
			t.Errorf("metrics call %+v: want a failure without the client's name", c)
		}
	}
}

// Writes are refused: nothing is created or changed in the directory.
func TestTFTPWriteRefused(t *testing.T) {
	need(t, "tftp", "tftp-hpa")
	dir := t.TempDir()
	orig := testkit.ReadFile(t, needIPXE(t, "undionly.kpxe"))
	if err := os.WriteFile(filepath.Join(dir, "undionly.kpxe"), orig, 0o644); err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	s := testTFTP(ev, &metrics{})
	s.Firmware = Firmware{Dir: dir}
	port := startTFTP(t, s)

	local := filepath.Join(t.TempDir(), "evil")
	if err := os.WriteFile(local, []byte("not an iPXE binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, remote := range []string{"undionly.kpxe", "new.efi"} {
		msg, err := tftpHPA(t, port, "put", local, remote)
		if err == nil {
			t.Fatalf("tftp put %s succeeded:\n%s", remote, msg)
		}
		if !strings.Contains(msg, "read-only") {
			t.Errorf("tftp put %s: %q does not say the server is read-only", remote, msg)
		}
	}
	if got := testkit.ReadFile(t, filepath.Join(dir, "undionly.kpxe")); !bytes.Equal(got, orig) {
		t.Fatal("a write request changed a served file")
	}
	if _, err := os.Stat(filepath.Join(dir, "new.efi")); err == nil {
		t.Fatal("a write request created a file")
	}
	e := ev.wait(t, func(e Event) bool { return e.File == "new.efi" })
	if e.Error != "write refused" {
		t.Errorf("write event = %+v", e)
	}
}
