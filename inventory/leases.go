package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// LeaseState is where a lease stands in the DHCP exchange.
type LeaseState string

// Lease states.
const (
	// LeaseOffered: the address is reserved for the client for a short time
	// after a DHCPOFFER.
	LeaseOffered LeaseState = "offered"
	// LeaseBound: the server ACKed the address; stored before the ACK leaves.
	LeaseBound LeaseState = "bound"
	// LeaseReleased: the client gave the address back (DHCPRELEASE); the
	// address is free but remembered as the client's.
	LeaseReleased LeaseState = "released"
	// LeaseDeclined: a client found the address in use (DHCPDECLINE); it is
	// held from everyone until the hold expires.
	LeaseDeclined LeaseState = "declined"
)

// String returns the state's name, as stored.
func (s LeaseState) String() string { return string(s) }

// Default durations, used when a request leaves its Duration zero.
const (
	// DefaultOfferTime is how long an offered address stays reserved. RFC
	// 2131 leaves it to the server; clients answer an offer within seconds.
	DefaultOfferTime = 30 * time.Second
	// DefaultLeaseTime is the lease time when none is configured (as sites).
	DefaultLeaseTime = time.Hour
	// DefaultDeclineHold is how long a declined address is kept from use.
	DefaultDeclineHold = 10 * time.Minute
)

// Lease is an IPv4 address in use: offered, bound, released or held.
type Lease struct {
	IP       netip.Addr
	MAC      sites.MAC // empty while the address is held after a decline
	Site     string
	Hostname string
	State    LeaseState
	// Expires is when the address may go to another client. A released
	// lease expires when released.
	Expires time.Time
	Updated time.Time
}

// Active reports whether the lease still keeps its address from others.
func (l Lease) Active(now time.Time) bool { return now.Before(l.Expires) }

// LeaseRequest is what the DHCP server asks of the lease store.
type LeaseRequest struct {
	MAC sites.MAC
	// IP is the address to offer or bind. For Allocate it is only a wish:
	// the address the client asked for (option 50), if any.
	IP       netip.Addr
	Site     string
	Hostname string
	// Duration is how long the offer or lease lasts; zero means
	// DefaultOfferTime or DefaultLeaseTime.
	Duration time.Duration
}

// check reports a request the store cannot act on.
func (r LeaseRequest) check() error {
	if r.MAC == "" {
		return errors.New("lease request without a MAC")
	}
	return nil
}

const leaseColumns = `ip_num, mac, site, hostname, state, expires, updated`

func scanLease(s scanner) (storedLease, error) {
	var l storedLease
	var mac sql.NullString
	var state string
	var expires, updated sql.NullString
	if err := s.Scan(&l.num, &mac, &l.Site, &l.Hostname, &state, &expires, &updated); err != nil {
		return l, err
	}
	l.IP, l.MAC, l.State = numAddr(l.num), sites.MAC(mac.String), LeaseState(state)
	var err error
	if l.Expires, err = parseTime(expires); err != nil {
		return l, err
	}
	l.Updated, err = parseTime(updated)
	return l, err
}

// Offer reserves req.IP for req.MAC for req.Duration (default
// DefaultOfferTime), as a DHCPOFFER of a fixed address does. It fails with
// ErrConflict while another client's lease, offer or a decline hold is on
// the address. A bound, unexpired lease of the same client at the same
// address stays bound.
func (db *DB) Offer(ctx context.Context, req LeaseRequest) (Lease, error) {
	if err := req.check(); err != nil {
		return Lease{}, err
	}
	l, err := db.changeLease(func(lt *leaseTable, now time.Time) (Lease, error) {
		n, mine, err := lt.claim(req, now)
		if err != nil {
			return Lease{}, err
		}
		return offered(req, n, mine, now), nil
	})
	if err != nil {
		return Lease{}, fmt.Errorf("offer %s to %s: %w", req.IP, req.MAC, err)
	}
	return l, nil
}

// Bind commits req.IP to req.MAC for req.Duration (default
// DefaultLeaseTime), as a DHCPACK does: it returns once the lease is
// durable (in the lease journal, see leaseTable), so the ACK may be sent.
// It fails with ErrConflict while another client's lease, offer or a
// decline hold is on the address; the client's lease at another address,
// if any, moves here.
func (db *DB) Bind(ctx context.Context, req LeaseRequest) (Lease, error) {
	if err := req.check(); err != nil {
		return Lease{}, err
	}
	l, err := db.changeLease(func(lt *leaseTable, now time.Time) (Lease, error) {
		n, _, err := lt.claim(req, now)
		if err != nil {
			return Lease{}, err
		}
		return Lease{IP: numAddr(n), MAC: req.MAC, Site: req.Site, Hostname: req.Hostname, State: LeaseBound,
			Expires: expiry(now, req.Duration, DefaultLeaseTime), Updated: now}, nil
	})
	if err != nil {
		return Lease{}, fmt.Errorf("bind %s to %s: %w", req.IP, req.MAC, err)
	}
	return l, nil
}

// Release frees mac's lease on ip (DHCPRELEASE). The lease stays, so the
// client gets the same address back if it is still free. ErrNotFound if
// mac holds no lease on ip.
func (db *DB) Release(ctx context.Context, mac sites.MAC, ip netip.Addr) error {
	_, err := db.changeLease(func(lt *leaseTable, now time.Time) (Lease, error) {
		l, err := lt.own(mac, ip)
		if err != nil {
			return Lease{}, err
		}
		l.State, l.Expires, l.Updated = LeaseReleased, now, now
		return l, nil
	})
	if err != nil {
		return fmt.Errorf("release %s of %s: %w", ip, mac, err)
	}
	return nil
}

// Decline holds ip from every client for hold (default DefaultDeclineHold)
// because mac found it in use (DHCPDECLINE, RFC 2131 4.3.3). The hold keeps
// the address, not the client: mac's next request gets another address.
// ErrNotFound if mac holds no lease on ip.
//
// A declared machine's lease is never held (ErrConflict, nothing changes):
// its address is its reservation, the only one it can get, and DHCPDECLINE
// is unauthenticated, so a hold would let anyone who spoofs its MAC lock it
// out for the whole hold.
func (db *DB) Decline(ctx context.Context, mac sites.MAC, ip netip.Addr, hold time.Duration) error {
	var declared bool
	err := db.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM machines WHERE mac = ? AND discovered = 0)`, string(mac)).Scan(&declared)
	if err == nil && declared {
		err = fmt.Errorf("the address is declared machine %s's reservation: %w", mac, ErrConflict)
	}
	if err == nil {
		_, err = db.changeLease(func(lt *leaseTable, now time.Time) (Lease, error) {
			l, err := lt.own(mac, ip)
			if err != nil {
				return Lease{}, err
			}
			l.MAC, l.State, l.Expires, l.Updated = "", LeaseDeclined, expiry(now, hold, DefaultDeclineHold), now
			return l, nil
		})
	}
	if err != nil {
		return fmt.Errorf("decline %s by %s: %w", ip, mac, err)
	}
	return nil
}

// own returns mac's lease on ip, ErrNotFound if it holds none. The caller
// holds mu.
func (lt *leaseTable) own(mac sites.MAC, ip netip.Addr) (Lease, error) {
	n, err := addrNum(ip)
	if err != nil {
		return Lease{}, err
	}
	if l := lt.at(n); l != nil && l.MAC == mac {
		return l.Lease, nil
	}
	return Lease{}, ErrNotFound
}

// addrNum returns an IPv4 address as the number leases are keyed by.
func addrNum(a netip.Addr) (uint32, error) {
	a = a.Unmap()
	if !a.Is4() {
		return 0, fmt.Errorf("%q is not an IPv4 address", a)
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

// numAddr is the inverse of addrNum.
func numAddr(n uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// addrText is how an optional address is stored: empty when unknown.
func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

// parseAddr reads an optional stored address.
func parseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("stored address %q: %w", s, err)
	}
	return a, nil
}
