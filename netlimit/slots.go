package netlimit

import (
	"net/netip"
	"sync"
)

// Slots counts what clients hold of a bounded resource -- connections,
// transfers -- in all and by client address, so that one client cannot
// take everything. A zero bound means no bound. Safe for concurrent use.
type Slots struct {
	Max, PerClient int

	mu  sync.Mutex
	n   int
	per map[netip.Addr]int
}

// Take claims a slot for ip. It returns "" when it did, else which bound is
// reached: "limit" or "per-client limit".
func (s *Slots) Take(ip netip.Addr) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.Max > 0 && s.n >= s.Max:
		return "limit"
	case s.PerClient > 0 && s.per[ip] >= s.PerClient:
		return "per-client limit"
	}
	if s.per == nil {
		s.per = map[netip.Addr]int{}
	}
	s.n++
	s.per[ip]++
	return ""
}

// Give returns a slot ip took.
func (s *Slots) Give(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n--
	if s.per[ip]--; s.per[ip] <= 0 {
		delete(s.per, ip)
	}
}

// Held is how many slots are taken.
func (s *Slots) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
