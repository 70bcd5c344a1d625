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

// storedLease is a lease row as read inside a write transaction.
type storedLease struct {
	Lease
	num uint32
}

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

// LeaseByMAC returns the lease of mac, active or not.
func (db *DB) LeaseByMAC(ctx context.Context, mac sites.MAC) (Lease, error) {
	l, err := scanLease(db.queryRow(ctx, `SELECT `+leaseColumns+` FROM leases WHERE mac = ?`, string(mac)))
	if err != nil {
		return Lease{}, fmt.Errorf("lease of %s: %w", mac, err)
	}
	return l.Lease, nil
}

// LeaseByIP returns the lease of ip, active or not.
func (db *DB) LeaseByIP(ctx context.Context, ip netip.Addr) (Lease, error) {
	n, err := addrNum(ip)
	if err != nil {
		return Lease{}, fmt.Errorf("lease of %s: %w", ip, err)
	}
	l, err := scanLease(db.queryRow(ctx, `SELECT `+leaseColumns+` FROM leases WHERE ip_num = ?`, n))
	if err != nil {
		return Lease{}, fmt.Errorf("lease of %s: %w", ip, err)
	}
	return l.Lease, nil
}

// Leases lists the leases of a site (all sites if site is empty), by address.
func (db *DB) Leases(ctx context.Context, site string) ([]Lease, error) {
	q, args := `SELECT `+leaseColumns+` FROM leases ORDER BY ip_num`, []any{}
	if site != "" {
		q, args = `SELECT `+leaseColumns+` FROM leases WHERE site = ? ORDER BY ip_num`, []any{site}
	}
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list leases of site %q: %w", site, err)
	}
	defer rows.Close()
	var ls []Lease
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return nil, fmt.Errorf("list leases of site %q: %w", site, err)
		}
		ls = append(ls, l.Lease)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list leases of site %q: %w", site, err)
	}
	return ls, nil
}

// claim finds the client's lease and the lease at req.IP, and fails with
// ErrConflict when another client's lease, offer or a decline hold is on the
// address: the first step of both Offer and Bind.
func (t *tx) claim(req LeaseRequest) (n uint32, mine, at *storedLease, err error) {
	if n, err = addrNum(req.IP); err != nil {
		return 0, nil, nil, err
	}
	if mine, at, err = t.leasesOf(req.MAC, n); err != nil {
		return 0, nil, nil, err
	}
	return n, mine, at, t.check(req.MAC, at)
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
	var out Lease
	err := db.do(ctx, func(t *tx) error {
		n, mine, at, err := t.claim(req)
		if err != nil {
			return err
		}
		out, err = t.offer(req, n, mine, at)
		return err
	})
	if err != nil {
		return Lease{}, fmt.Errorf("offer %s to %s: %w", req.IP, req.MAC, err)
	}
	return out, nil
}

// Bind commits req.IP to req.MAC for req.Duration (default
// DefaultLeaseTime), as a DHCPACK does: it returns only once the lease is
// committed, so the ACK may be sent. It fails with ErrConflict while another
// client's lease, offer or a decline hold is on the address; the client's
// lease at another address, if any, moves here.
func (db *DB) Bind(ctx context.Context, req LeaseRequest) (Lease, error) {
	if err := req.check(); err != nil {
		return Lease{}, err
	}
	var out Lease
	err := db.do(ctx, func(t *tx) error {
		n, mine, at, err := t.claim(req)
		if err != nil {
			return err
		}
		now := t.db().now()
		out = Lease{IP: numAddr(n), MAC: req.MAC, Site: req.Site, Hostname: req.Hostname, State: LeaseBound,
			Expires: now.Add(orDefault(req.Duration, DefaultLeaseTime)), Updated: now}
		return t.put(out, n, mine, at)
	})
	if err != nil {
		return Lease{}, fmt.Errorf("bind %s to %s: %w", req.IP, req.MAC, err)
	}
	return out, nil
}

// Release frees mac's lease on ip (DHCPRELEASE). The row stays, so the
// client gets the same address back if it is still free. ErrNotFound if
// mac holds no lease on ip.
func (db *DB) Release(ctx context.Context, mac sites.MAC, ip netip.Addr) error {
	err := db.do(ctx, func(t *tx) error {
		now := fmtTime(t.db().now())
		return t.updateOwn(mac, ip, `UPDATE leases SET state = 'released', expires = ?, updated = ? WHERE mac = ? AND ip_num = ?`, now, now)
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
	err := db.do(ctx, func(t *tx) error {
		now := t.db().now()
		var declared bool
		if err := t.queryRow(`SELECT EXISTS (SELECT 1 FROM machines WHERE mac = ? AND discovered = 0)`, string(mac)).Scan(&declared); err != nil {
			return err
		}
		if declared {
			return fmt.Errorf("the address is declared machine %s's reservation: %w", mac, ErrConflict)
		}
		return t.updateOwn(mac, ip, `UPDATE leases SET mac = NULL, state = 'declined', expires = ?, updated = ? WHERE mac = ? AND ip_num = ?`,
			fmtTime(now.Add(orDefault(hold, DefaultDeclineHold))), fmtTime(now))
	})
	if err != nil {
		return fmt.Errorf("decline %s by %s: %w", ip, mac, err)
	}
	return nil
}

// updateOwn runs update (whose last two parameters are mac and ip_num) and
// reports ErrNotFound when it touched no row.
func (t *tx) updateOwn(mac sites.MAC, ip netip.Addr, update string, args ...any) error {
	n, err := addrNum(ip)
	if err != nil {
		return err
	}
	res, err := t.exec(update, append(args, string(mac), n)...)
	if err != nil {
		return err
	}
	if k, err := res.RowsAffected(); err != nil || k == 0 {
		return errors.Join(ErrNotFound, err)
	}
	return nil
}

// leasesOf returns the row of mac and the row at address n, either possibly
// nil (and the same row when mac holds n).
func (t *tx) leasesOf(mac sites.MAC, n uint32) (mine, at *storedLease, err error) {
	if mine, err = t.lease(`SELECT `+leaseColumns+` FROM leases WHERE mac = ?`, string(mac)); err != nil {
		return nil, nil, err
	}
	if mine != nil && mine.num == n {
		return mine, mine, nil
	}
	at, err = t.lease(`SELECT `+leaseColumns+` FROM leases WHERE ip_num = ?`, n)
	return mine, at, err
}

// lease reads one lease row, nil when there is none.
func (t *tx) lease(query string, args ...any) (*storedLease, error) {
	l, err := scanLease(t.queryRow(query, args...))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &l, nil
}

// check fails with ErrConflict when at is another client's row (or a hold)
// that still keeps its address.
func (t *tx) check(mac sites.MAC, at *storedLease) error {
	if at == nil || at.MAC == mac || !at.Active(t.db().now()) {
		return nil
	}
	if at.State == LeaseDeclined {
		return fmt.Errorf("address held after a decline until %s: %w", at.Expires.Format(time.RFC3339), ErrConflict)
	}
	return fmt.Errorf("address %s to %s until %s: %w", at.State, at.MAC, at.Expires.Format(time.RFC3339), ErrConflict)
}

// offer stores an offer of address n to req.MAC, given the client's row and
// the row at n (checked reusable).
func (t *tx) offer(req LeaseRequest, n uint32, mine, at *storedLease) (Lease, error) {
	now := t.db().now()
	l := Lease{IP: numAddr(n), MAC: req.MAC, Site: req.Site, Hostname: req.Hostname, State: LeaseOffered,
		Expires: now.Add(orDefault(req.Duration, DefaultOfferTime)), Updated: now}
	if mine != nil && mine.num == n && mine.State == LeaseBound && mine.Active(now) {
		// A bound client asking again (a reboot) keeps its binding: cutting
		// it to an offer's life would free an address still in use.
		l.State, l.Expires = LeaseBound, mine.Expires
	}
	return l, t.put(l, n, mine, at)
}

// put stores l at address n, given the client's row and the row at n
// (checked reusable). The client's row at n is updated in place, by key and
// without touching the columns of indexes that do not change; otherwise the
// rows in the way go and l is inserted.
func (t *tx) put(l Lease, n uint32, mine, at *storedLease) error {
	if mine != nil && mine.num == n {
		set, args := `hostname = ?, state = ?, expires = ?, updated = ?`,
			[]any{l.Hostname, string(l.State), fmtTime(l.Expires), fmtTime(l.Updated)}
		if l.Site != mine.Site {
			set += `, site = ?`
			args = append(args, l.Site)
		}
		_, err := t.exec(`UPDATE leases SET `+set+` WHERE ip_num = ?`, append(args, n)...)
		return err
	}
	if at != nil {
		if _, err := t.exec(`DELETE FROM leases WHERE ip_num = ?`, n); err != nil {
			return err
		}
	}
	if mine != nil {
		if _, err := t.exec(`DELETE FROM leases WHERE ip_num = ?`, mine.num); err != nil {
			return err
		}
		t.db().alloc.freed(mine.num)
	}
	_, err := t.exec(`INSERT INTO leases (ip_num, ip, mac, site, hostname, state, expires, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		n, l.IP.String(), string(l.MAC), l.Site, l.Hostname, string(l.State), fmtTime(l.Expires), fmtTime(l.Updated))
	return err
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
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
