package pxe

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/testvm/testkit"
)

// The first script iPXE runs chains to the HTTP chain script and loops on
// failure: a server restarting while iPXE fetches /boot.ipxe must not
// strand the machine at "No bootable device".
func TestTFTPBootScriptText(t *testing.T) {
	sc, err := ParseScripts()
	if err != nil {
		t.Fatal(err)
	}
	text, err := sc.TFTPBoot("http://10.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l != "" && !strings.HasPrefix(l, "# ") {
			lines = append(lines, l)
		}
	}
	want := []string{
		"#!ipxe",
		":retry",
		"chain --autofree http://10.0.0.1:8080/boot.ipxe || goto failed",
		"exit",
		":failed",
		"echo undercloud: no boot.ipxe from http://10.0.0.1:8080, trying again in 5 s",
		"sleep 5",
		"goto retry",
	}
	if got := strings.Join(lines, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("script:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if _, err := sc.TFTPBoot("http://10.0.0.1:8080/ ; shell"); err == nil {
		t.Error("a base URL with a space and a command rendered")
	}
	// The HTTP chain script keeps its own 5 s retry for what comes after.
	chain, err := sc.Chain("http://10.0.0.1:8080")
	if err != nil || !strings.Contains(chain, "|| goto failed") || !strings.Contains(chain, "sleep 5\ngoto retry") {
		t.Errorf("chain script lost its retry (%v):\n%s", err, chain)
	}
}

// TFTP serves boot.ipxe, made for the address the request came to, to a
// real client, records it as a tftp step, and leaves it off when BootPort
// is zero.
func TestTFTPBootScript(t *testing.T) {
	need(t, "curl", "curl")
	ev := &events{}
	s := testTFTP(ev, &metrics{})
	s.BootPort = 8080
	port := startTFTP(t, s)
	out := filepath.Join(t.TempDir(), "out")
	if msg, err := tftpGet(t, "curl", port, BootScriptName, out); err != nil {
		t.Fatalf("curl get: %v\n%s", err, msg)
	}
	got := string(testkit.ReadFile(t, out))
	if !strings.HasPrefix(got, "#!ipxe\n") || !strings.Contains(got, "chain --autofree http://127.0.0.1:8080/boot.ipxe || goto failed") {
		t.Errorf("boot.ipxe over TFTP:\n%s", got)
	}
	e := ev.wait(t, func(e Event) bool { return e.Kind == event.TFTP })
	if e.File != BootScriptName || e.Bytes != int64(len(got)) || e.MAC != testMAC || e.IP != netip.MustParseAddr("127.0.0.1") || e.Error != "" {
		t.Errorf("event %+v", e)
	}

	off := startTFTP(t, testTFTP(&events{}, &metrics{}))
	if msg, err := tftpGet(t, "curl", off, BootScriptName, filepath.Join(t.TempDir(), "out")); err == nil {
		t.Errorf("boot.ipxe served without BootPort:\n%s", msg)
	}
}

func TestTFTPBootURL(t *testing.T) {
	for _, tc := range []struct {
		server string
		port   int
		want   string
	}{
		{"10.0.0.1", 69, "tftp://10.0.0.1/boot.ipxe"},
		{"10.0.0.1", 6969, "tftp://10.0.0.1:6969/boot.ipxe"},
		{"fd00::1", 69, "tftp://[fd00::1]/boot.ipxe"},
	} {
		if got := TFTPBootURL(netip.MustParseAddr(tc.server), tc.port); got != tc.want {
			t.Errorf("TFTPBootURL(%s, %d) = %q, want %q", tc.server, tc.port, got, tc.want)
		}
	}
}
