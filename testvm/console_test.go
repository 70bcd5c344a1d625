package testvm

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"
)

// systemd colours its status lines; firmware clears the screen. Tests match
// the text a person reads.
func TestStripEscapes(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"systemd status": {
			in:   "[\x1b[0;32m  OK  \x1b[0m] Finished \x1b[0;1;39mundercloud-booted.service\x1b[0m - Report this boot.",
			want: "[  OK  ] Finished undercloud-booted.service - Report this boot.",
		},
		"clear screen":      {in: "\x1b[2J\x1b[01;01Hlive-init: start", want: "live-init: start"},
		"two-byte sequence": {in: "a\x1bcb", want: "ab"},
		"escape at the end": {in: "text\x1b", want: "text"},
		"plain":             {in: "plain line", want: "plain line"},
	}
	for name, tc := range tests {
		if got := stripEscapes(tc.in); got != tc.want {
			t.Errorf("%s: stripEscapes(%q) = %q, want %q", name, tc.in, got, tc.want)
		}
	}
}

// Reset's watchdog for firmware that hangs silently: waitOutput sees a line
// that arrives later, and reports a console that stays quiet.
func TestWaitOutput(t *testing.T) {
	r, w := io.Pipe()
	c, err := newConsole(r, filepath.Join(t.TempDir(), "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := io.WriteString(w, "before the reset\n"); err != nil {
		t.Fatal(err)
	}
	from := 1
	for c.len() < from { // the reader goroutine stores the line after the write returns
		if !c.waitOutput(t.Context(), 0, 5*time.Second) {
			t.Fatal("the first line never arrived")
		}
	}
	start := time.Now()
	if c.waitOutput(t.Context(), from, 200*time.Millisecond) {
		t.Fatal("a quiet console reported output")
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("waitOutput gave up after %s, before its 200ms", d)
	}
	go io.WriteString(w, "firmware banner\n")
	if !c.waitOutput(t.Context(), from, 10*time.Second) {
		t.Fatal("a line written after the reset was not seen")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if c.waitOutput(ctx, c.len(), time.Minute) {
		t.Fatal("waitOutput reported output after its context ended")
	}
}
