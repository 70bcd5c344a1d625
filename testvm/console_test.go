package testvm

import "testing"

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
