package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// memPlan is an in-memory Plan: subnets are matched in order.
type memPlan struct {
	subnets []Subnet
	res     map[string]Reservation // by MAC string
}

func (p *memPlan) Subnet(link netip.Addr) (Subnet, bool) {
	for _, sn := range p.subnets {
		if sn.Prefix.Contains(link) {
			return sn, true
		}
	}
	return Subnet{}, false
}

func (p *memPlan) Reservation(mac net.HardwareAddr) (Reservation, bool) {
	r, ok := p.res[mac.String()]
	return r, ok
}

// memLeases is an in-memory Leases that never gives one address to two
// MACs: an offer holds its address for hold, a lease until it expires, a
// declined address for declineHold.
type memLeases struct {
	now   func() time.Time
	hold  time.Duration
	delay time.Duration // Commit latency, as a durable store would have

	mu    sync.Mutex
	byIP  map[netip.Addr]memEntry
	byMAC map[string]netip.Addr
}

type memEntry struct {
	mac      string // "" for a declined address
	until    time.Time
	bound    bool
	declined bool
}

const declineHold = 10 * time.Minute

func newMemLeases(now func() time.Time) *memLeases {
	if now == nil {
		now = time.Now
	}
	return &memLeases{now: now, hold: 30 * time.Second, byIP: map[netip.Addr]memEntry{}, byMAC: map[string]netip.Addr{}}
}

func (m *memLeases) Offer(ctx context.Context, mac net.HardwareAddr, sn Subnet, want netip.Addr) (netip.Addr, error) {
	if sn.Range == nil {
		return netip.Addr{}, fmt.Errorf("subnet %s has no dynamic range", sn.Prefix)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	key := mac.String()
	if ip, ok := m.byMAC[key]; ok {
		if e := m.byIP[ip]; e.mac == key && e.until.After(now) && sn.Range.Contains(ip) {
			return ip, nil
		}
	}
	free := func(a netip.Addr) bool {
		e, ok := m.byIP[a]
		return !ok || !e.until.After(now)
	}
	pick := netip.Addr{}
	if want.IsValid() && sn.Range.Contains(want) && free(want) {
		pick = want
	}
	for a := sn.Range.First; !pick.IsValid() && a.IsValid() && sn.Range.Contains(a); a = a.Next() {
		if free(a) {
			pick = a
		}
	}
	if !pick.IsValid() {
		return netip.Addr{}, ErrRangeFull
	}
	m.take(key, pick, memEntry{mac: key, until: now.Add(m.hold)})
	return pick, nil
}

// take gives ip to mac, dropping the MAC's previous address.
func (m *memLeases) take(key string, ip netip.Addr, e memEntry) {
	if old, ok := m.byMAC[key]; ok && old != ip && m.byIP[old].mac == key {
		delete(m.byIP, old)
	}
	m.byIP[ip] = e
	m.byMAC[key] = ip
}

func (m *memLeases) Commit(ctx context.Context, l Lease) (time.Time, error) {
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := l.MAC.String()
	if e, ok := m.byIP[l.IP]; ok && e.mac != key && e.until.After(m.now()) {
		return time.Time{}, fmt.Errorf("commit %s for %s: %w", l.IP, key, ErrConflict)
	}
	m.take(key, l.IP, memEntry{mac: key, until: l.Expires, bound: true})
	return l.Expires, nil
}

func (m *memLeases) Release(ctx context.Context, mac net.HardwareAddr, ip netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := mac.String()
	if e, ok := m.byIP[ip]; ok && e.mac == key {
		delete(m.byIP, ip)
		delete(m.byMAC, key)
	}
	return nil
}

func (m *memLeases) Decline(ctx context.Context, mac net.HardwareAddr, ip netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := mac.String()
	if m.byMAC[key] == ip {
		delete(m.byMAC, key)
	}
	m.byIP[ip] = memEntry{until: m.now().Add(declineHold), declined: true}
	return nil
}

// bound lists the committed leases as "mac ip", sorted.
func (m *memLeases) bound() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for ip, e := range m.byIP {
		if e.bound {
			out = append(out, e.mac+" "+ip.String())
		}
	}
	sort.Strings(out)
	return out
}

// memRecorder keeps every event.
type memRecorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *memRecorder) Record(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// summary lists the events as "kind ip known=bool", in order.
func (r *memRecorder) summary() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		ip := "-"
		if e.IP.IsValid() {
			ip = e.IP.String()
		}
		out = append(out, fmt.Sprintf("%s %s known=%t", e.Kind, ip, e.Known))
	}
	return out
}

// memMetrics counts packets by "kind/outcome".
type memMetrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *memMetrics) Packet(k Kind, o Outcome) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]int{}
	}
	m.n[string(k)+"/"+string(o)]++
}

func (m *memMetrics) count(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[key]
}
