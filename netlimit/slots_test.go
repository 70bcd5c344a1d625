package netlimit

import (
	"net/netip"
	"testing"
)

func TestSlots(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	s := &Slots{Max: 3, PerClient: 2}
	for i, tc := range []struct {
		ip   netip.Addr
		want string
	}{{a, ""}, {a, ""}, {a, "per-client limit"}, {b, ""}, {b, "limit"}} {
		if got := s.Take(tc.ip); got != tc.want {
			t.Fatalf("take %d from %s = %q, want %q", i, tc.ip, got, tc.want)
		}
	}
	s.Give(a)
	if got := s.Take(b); got != "" || s.Held() != 3 {
		t.Fatalf("after a slot was given back: take = %q, held %d", got, s.Held())
	}
	unbounded := &Slots{}
	for range 100 {
		if got := unbounded.Take(a); got != "" {
			t.Fatalf("a zero bound refused: %q", got)
		}
	}
}
