package provision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
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

// Leases adapts the inventory's lease table to dhcp.Leases and pxe.Leases.
// The inventory decides leases in memory (inventory/leasetable.go), so what
// a client already holds is answered from there without a write: the
// REQUEST after an OFFER, a reboot's DISCOVER, lease caching.
type Leases struct {
	db *inventory.DB
}

// cacheThreshold is lease caching (Kea's cache-threshold, ISC dhcpd's
// dhcp-cache-threshold): a client that asks again within this share of its
// lease time after its lease was written gets that lease, with the time it
// has left, and nothing is written. A machine does DHCP two or three times
// in one boot (PXE ROM, iPXE, its OS); a bring-up of hundreds at once should
// not write each lease three times.
const cacheThreshold = 0.25

// offerMargin is how much of an offer must be left for it to be offered
// again without a write: the client's REQUEST must find it still held.
const offerMargin = inventory.DefaultOfferTime / 4

// NewLeases returns the leases of db.
func NewLeases(db *inventory.DB) Leases { return Leases{db: db} }

func (l Leases) Offer(ctx context.Context, hw net.HardwareAddr, sn dhcp.Subnet, want netip.Addr) (netip.Addr, error) {
	if ip, ok := l.CachedOffer(hw, sn, want); ok {
		return ip, nil
	}
	if sn.Range == nil {
		return netip.Addr{}, dhcp.ErrRangeFull
	}
	lease, err := l.db.Allocate(ctx, inventory.LeaseRequest{MAC: sites.MAC(hw.String()), IP: want, Site: sn.Site},
		sites.Range{Start: sn.Range.First, End: sn.Range.Last})
	if errors.Is(err, inventory.ErrRangeFull) {
		return netip.Addr{}, fmt.Errorf("%w: %v", dhcp.ErrRangeFull, err)
	}
	return lease.IP, err
}

// CachedOffer is the address the MAC holds in sn's range, offered or
// bound: what Allocate would answer, without a write.
func (l Leases) CachedOffer(hw net.HardwareAddr, sn dhcp.Subnet, want netip.Addr) (netip.Addr, bool) {
	if sn.Range == nil {
		return netip.Addr{}, false
	}
	lease, ok := l.held(hw, sn.Site)
	if !ok || !sn.Range.Contains(lease.IP) || (want.IsValid() && want != lease.IP) ||
		lease.Expires.Sub(time.Now()) < offerMargin {
		return netip.Addr{}, false
	}
	return lease.IP, true
}

// held is the MAC's lease on site, if the inventory can tell at once and
// it is still offered or bound.
func (l Leases) held(hw net.HardwareAddr, site string) (inventory.Lease, bool) {
	lease, ok := l.db.LeaseNow(sites.MAC(hw.String()))
	if !ok || lease.Site != site || (lease.State != inventory.LeaseOffered && lease.State != inventory.LeaseBound) ||
		!lease.Active(time.Now()) {
		return inventory.Lease{}, false
	}
	return lease, true
}

func (l Leases) Commit(ctx context.Context, d dhcp.Lease) (time.Time, error) {
	if exp, ok := l.CachedCommit(d); ok {
		return exp, nil
	}
	lease, err := l.db.Bind(ctx, inventory.LeaseRequest{
		MAC: sites.MAC(d.MAC.String()), IP: d.IP, Site: d.Site, Hostname: d.Hostname, Duration: time.Until(d.Expires),
	})
	if errors.Is(err, inventory.ErrConflict) {
		return time.Time{}, fmt.Errorf("%w: %v", dhcp.ErrConflict, err)
	}
	if err != nil {
		return time.Time{}, err
	}
	return lease.Expires, nil // as stored: to the millisecond
}

// CachedCommit is lease caching: the lease d asks for, bound already with
// at least (1 - cacheThreshold) of the time d asks for left, and that time.
func (l Leases) CachedCommit(d dhcp.Lease) (time.Time, bool) {
	lease, ok := l.held(d.MAC, d.Site)
	now := time.Now()
	if !ok || lease.State != inventory.LeaseBound || lease.IP != d.IP ||
		lease.Expires.Sub(now) < time.Duration(float64(d.Expires.Sub(now))*(1-cacheThreshold)) {
		return time.Time{}, false
	}
	return lease.Expires, true
}

func (l Leases) Release(ctx context.Context, hw net.HardwareAddr, ip netip.Addr) error {
	return l.db.Release(ctx, sites.MAC(hw.String()), ip)
}

func (l Leases) Decline(ctx context.Context, hw net.HardwareAddr, ip netip.Addr) error {
	return l.db.Decline(ctx, sites.MAC(hw.String()), ip, declineHold)
}

func (l Leases) MACByIP(ctx context.Context, ip netip.Addr) (string, bool) {
	lease, err := l.db.LeaseByIP(ctx, ip)
	if err != nil || lease.MAC == "" {
		return "", false
	}
	return string(lease.MAC), true
}
