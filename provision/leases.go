package provision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/undercloud/undercloud/dhcp"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

var (
	_ dhcp.Leases     = Leases{}
	_ dhcp.LeaseCache = Leases{}
	_ pxe.Leases      = Leases{}
)

// declineHold is how long an address a client declined (someone else
// answers on it) is kept out of the dynamic range.
const declineHold = 10 * time.Minute

// Leases adapts the inventory's lease table to dhcp.Leases and pxe.Leases,
// with lease caching. Make it with NewLeases.
type Leases struct {
	db *inventory.DB
	// offers remembers the address each MAC was just offered: the DHCP
	// server asks Offer again on the REQUEST, and the answer is the same
	// (the inventory holds the offer for inventory.DefaultOfferTime), so it
	// need not queue behind every other write to be told so.
	offers *leaseCache
	// binds remembers the leases this process committed, for lease caching.
	binds *leaseCache
}

// cacheThreshold is lease caching (Kea's cache-threshold, ISC dhcpd's
// dhcp-cache-threshold): a client that asks again within this share of its
// lease time after its lease was written gets that lease, with the time it
// has left, and nothing is written. A machine does DHCP two or three times
// in one boot (PXE ROM, iPXE, its OS); a bring-up of hundreds at once should
// not write each lease three times.
const cacheThreshold = 0.25

// NewLeases returns the leases of db.
func NewLeases(db *inventory.DB) Leases {
	return Leases{db: db, offers: &leaseCache{m: map[string]cachedLease{}}, binds: &leaseCache{m: map[string]cachedLease{}}}
}

func (l Leases) Offer(ctx context.Context, hw net.HardwareAddr, sn dhcp.Subnet, want netip.Addr) (netip.Addr, error) {
	if sn.Range == nil {
		return netip.Addr{}, dhcp.ErrRangeFull
	}
	mac := hw.String()
	if ip, ok := l.cachedOffer(mac, sn.Site, want); ok {
		return ip, nil
	}
	lease, err := l.db.Allocate(ctx, inventory.LeaseRequest{MAC: sites.MAC(mac), IP: want, Site: sn.Site},
		sites.Range{Start: sn.Range.First, End: sn.Range.Last})
	if errors.Is(err, inventory.ErrRangeFull) {
		return netip.Addr{}, fmt.Errorf("%w: %v", dhcp.ErrRangeFull, err)
	}
	if err == nil {
		l.offers.put(mac, sn.Site, lease.IP, time.Now().Add(offerHold))
	}
	return lease.IP, err
}

// CachedOffer is the address offered a moment ago, or the lease the MAC
// holds: either is what the inventory would answer, without the round trip.
func (l Leases) CachedOffer(hw net.HardwareAddr, sn dhcp.Subnet, want netip.Addr) (netip.Addr, bool) {
	if sn.Range == nil {
		return netip.Addr{}, false
	}
	return l.cachedOffer(hw.String(), sn.Site, want)
}

func (l Leases) cachedOffer(mac, site string, want netip.Addr) (netip.Addr, bool) {
	for _, c := range [...]*leaseCache{l.offers, l.binds} {
		if e, ok := c.get(mac, site); ok && (!want.IsValid() || want == e.ip) {
			return e.ip, true
		}
	}
	return netip.Addr{}, false
}

func (l Leases) Commit(ctx context.Context, d dhcp.Lease) (time.Time, error) {
	if exp, ok := l.CachedCommit(d); ok {
		return exp, nil
	}
	mac := d.MAC.String()
	_, err := l.db.Bind(ctx, inventory.LeaseRequest{
		MAC: sites.MAC(mac), IP: d.IP, Site: d.Site, Hostname: d.Hostname, Duration: time.Until(d.Expires),
	})
	if err != nil {
		l.forget(mac)
		if errors.Is(err, inventory.ErrConflict) {
			return time.Time{}, fmt.Errorf("%w: %v", dhcp.ErrConflict, err)
		}
		return time.Time{}, err
	}
	l.binds.put(mac, d.Site, d.IP, d.Expires)
	return d.Expires, nil
}

// CachedCommit is lease caching: the lease d asks for, committed a moment
// ago (within cacheThreshold of its time), with the time it has left.
func (l Leases) CachedCommit(d dhcp.Lease) (time.Time, bool) {
	now := time.Now()
	c, ok := l.binds.get(d.MAC.String(), d.Site)
	if !ok || c.ip != d.IP || c.until.Sub(now) < time.Duration(float64(d.Expires.Sub(now))*(1-cacheThreshold)) {
		return time.Time{}, false
	}
	return c.until, true
}

func (l Leases) Release(ctx context.Context, hw net.HardwareAddr, ip netip.Addr) error {
	l.forget(hw.String())
	return l.db.Release(ctx, sites.MAC(hw.String()), ip)
}

func (l Leases) Decline(ctx context.Context, hw net.HardwareAddr, ip netip.Addr) error {
	l.forget(hw.String())
	return l.db.Decline(ctx, sites.MAC(hw.String()), ip, declineHold)
}

// forget drops what the caches know of a MAC: its lease changed.
func (l Leases) forget(mac string) {
	l.offers.del(mac)
	l.binds.del(mac)
}

// leaseCache maps a MAC to an address on a site, valid until a time.
type leaseCache struct {
	mu sync.Mutex
	m  map[string]cachedLease
}

type cachedLease struct {
	site  string
	ip    netip.Addr
	until time.Time
}

// offerHold is how long a cached offer answers: under the inventory's
// DefaultOfferTime, so the inventory's hold always outlives the cache's.
const offerHold = inventory.DefaultOfferTime * 3 / 4

func (c *leaseCache) get(mac, site string) (cachedLease, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[mac]
	if !ok || e.site != site || !time.Now().Before(e.until) {
		return cachedLease{}, false
	}
	return e, true
}

func (c *leaseCache) put(mac, site string, ip netip.Addr, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= 100000 { // bound memory; a miss only costs an inventory round trip
		clear(c.m)
	}
	c.m[mac] = cachedLease{site: site, ip: ip, until: until}
}

func (c *leaseCache) del(mac string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, mac)
}

func (l Leases) MACByIP(ctx context.Context, ip netip.Addr) (string, bool) {
	lease, err := l.db.LeaseByIP(ctx, ip)
	if err != nil || lease.MAC == "" {
		return "", false
	}
	return string(lease.MAC), true
}
