package inventory

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// leaseTable is the lease table in memory, and the authority for every
// lease decision. A DHCP answer must not go out before its lease is
// durable (RFC 2131 4.3.1), but it need not wait for the one writer that
// also stores a storm's boot events: a change is decided here, under one
// lock, appended to the lease journal (one write(2), durable across the
// death of the process as a commit is, see journal.go) and queued for the
// writer, which stores it in the order decided. The leases table in SQLite
// follows a few milliseconds behind; Open replays the journal into it and
// loads this table from it.
//
// Reads (LeaseByMAC, LeaseByIP, Leases) come from here too, so a caller
// sees its own change at once.
type leaseTable struct {
	mu    sync.Mutex
	byIP  map[uint32]Lease
	byMAC map[sites.MAC]uint32
	// next is, per dynamic range, an address below which every address
	// has a lease: the search for a never-used address starts there
	// instead of at the range's start.
	next map[poolKey]int64
}

// load replaces the table with the leases stored in db.
func (lt *leaseTable) load(ctx context.Context, db *DB) error {
	rows, err := db.read.QueryContext(ctx, `SELECT `+leaseColumns+` FROM leases`)
	if err != nil {
		return fmt.Errorf("load leases: %w", err)
	}
	defer rows.Close()
	byIP, byMAC := map[uint32]Lease{}, map[sites.MAC]uint32{}
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return fmt.Errorf("load leases: %w", err)
		}
		byIP[l.num] = l.Lease
		if l.MAC != "" {
			byMAC[l.MAC] = l.num
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load leases: %w", err)
	}
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.byIP, lt.byMAC, lt.next = byIP, byMAC, map[poolKey]int64{}
	return nil
}

// storedLease is a lease with its address as the number it is keyed by.
type storedLease struct {
	Lease
	num uint32
}

// at returns the lease at address n, if any. The caller holds mu.
func (lt *leaseTable) at(n uint32) *storedLease {
	l, ok := lt.byIP[n]
	if !ok {
		return nil
	}
	return &storedLease{l, n}
}

// of returns mac's lease, if any. The caller holds mu.
func (lt *leaseTable) of(mac sites.MAC) *storedLease {
	n, ok := lt.byMAC[mac]
	if !ok {
		return nil
	}
	return lt.at(n)
}

// claim returns req.IP as a number and the client's lease, and fails with
// ErrConflict when another client's lease, offer or a decline hold is on the
// address: the first step of both Offer and Bind. The caller holds mu.
func (lt *leaseTable) claim(req LeaseRequest, now time.Time) (n uint32, mine *storedLease, err error) {
	if n, err = addrNum(req.IP); err != nil {
		return 0, nil, err
	}
	return n, lt.of(req.MAC), conflict(req.MAC, lt.at(n), now)
}

// conflict fails with ErrConflict when at is another client's lease (or a
// hold) that still keeps its address.
func conflict(mac sites.MAC, at *storedLease, now time.Time) error {
	if at == nil || at.MAC == mac || !at.Active(now) {
		return nil
	}
	if at.State == LeaseDeclined {
		return fmt.Errorf("address held after a decline until %s: %w", at.Expires.Format(time.RFC3339), ErrConflict)
	}
	return fmt.Errorf("address %s to %s until %s: %w", at.State, at.MAC, at.Expires.Format(time.RFC3339), ErrConflict)
}

// offered is the lease an offer of address n to req.MAC makes, given the
// client's lease.
func offered(req LeaseRequest, n uint32, mine *storedLease, now time.Time) Lease {
	l := Lease{IP: numAddr(n), MAC: req.MAC, Site: req.Site, Hostname: req.Hostname, State: LeaseOffered,
		Expires: expiry(now, req.Duration, DefaultOfferTime), Updated: now}
	if mine != nil && mine.num == n && mine.State == LeaseBound && mine.Active(now) {
		// A bound client asking again (a reboot) keeps its binding: cutting
		// it to an offer's life would free an address still in use.
		l.State, l.Expires = LeaseBound, mine.Expires
	}
	return l
}

// expiry is now plus d (def when d is not positive), at the stored
// precision.
func expiry(now time.Time, d, def time.Duration) time.Time {
	if d <= 0 {
		d = def
	}
	return now.Add(d).Truncate(time.Millisecond)
}

// pick chooses the address Allocate offers in range k, and returns it
// with the client's lease. The caller holds mu.
func (lt *leaseTable) pick(req LeaseRequest, k poolKey, now time.Time) (uint32, *storedLease, error) {
	mine := lt.of(req.MAC)
	if mine != nil && k.contains(mine.num) {
		return mine.num, mine, nil
	}
	if want, err := addrNum(req.IP); err == nil && k.contains(want) {
		if at := lt.at(want); at == nil || !at.Active(now) {
			return want, mine, nil
		}
	}
	if n, ok := lt.fresh(k); ok {
		return n, mine, nil
	}
	if n, ok := lt.expired(k, now); ok {
		return n, mine, nil
	}
	return 0, nil, ErrRangeFull
}

// fresh returns the first address of k at or after its cursor that has no
// lease, and moves the cursor there. A range filled in order costs one
// lookup per allocation however many leases it holds.
func (lt *leaseTable) fresh(k poolKey) (uint32, bool) {
	n, ok := lt.next[k]
	if !ok {
		n = int64(k.first)
	}
	for ; n <= int64(k.last); n++ {
		if _, used := lt.byIP[uint32(n)]; !used {
			lt.next[k] = n
			return uint32(n), true
		}
	}
	lt.next[k] = n
	return 0, false
}

// expired returns the address of k whose lease expired first (released,
// expired, or a decline hold that has run out), the lowest address of
// those that expired at the same time. It walks the table: it runs only
// when k has no never-used address left.
func (lt *leaseTable) expired(k poolKey, now time.Time) (uint32, bool) {
	var best *storedLease
	for n, l := range lt.byIP {
		if !k.contains(n) || l.Active(now) {
			continue
		}
		if best == nil || cmp.Or(l.Expires.Compare(best.Expires), cmp.Compare(n, best.num)) < 0 {
			best = &storedLease{l, n}
		}
	}
	if best == nil {
		return 0, false
	}
	return best.num, true
}

// set makes l the lease at its address: the lease that was there goes,
// and so does l's client's lease at another address. The caller holds mu.
func (lt *leaseTable) set(l Lease) {
	n, _ := addrNum(l.IP)
	if old, ok := lt.byIP[n]; ok && old.MAC != "" && old.MAC != l.MAC && lt.byMAC[old.MAC] == n {
		delete(lt.byMAC, old.MAC)
	}
	if l.MAC != "" {
		if m, ok := lt.byMAC[l.MAC]; ok && m != n {
			delete(lt.byIP, m)
			lt.freed(m)
		}
		lt.byMAC[l.MAC] = n
	}
	lt.byIP[n] = l
}

// freed moves back the cursor of every range holding address n, which has
// no lease any more.
func (lt *leaseTable) freed(n uint32) {
	for k, next := range lt.next {
		if k.contains(n) && int64(n) < next {
			lt.next[k] = int64(n)
		}
	}
}

// poolKey names a dynamic range by its first and last address.
type poolKey struct{ first, last uint32 }

func (k poolKey) contains(n uint32) bool { return k.first <= n && n <= k.last }

// rangeKey is the poolKey of r.
func rangeKey(r sites.Range) (poolKey, error) {
	first, err := addrNum(r.Start)
	if err != nil {
		return poolKey{}, err
	}
	last, err := addrNum(r.End)
	if err != nil {
		return poolKey{}, err
	}
	if first > last {
		return poolKey{}, fmt.Errorf("range %s is empty", r.String())
	}
	return poolKey{first, last}, nil
}

// changeLease runs decide under the table's lock and makes the lease it
// returns durable: appended to the lease journal, queued for the writer,
// and set in the table, in that order, so the journal, the writer's queue
// and the table see the changes in one order.
func (db *DB) changeLease(decide func(lt *leaseTable, now time.Time) (Lease, error)) (Lease, error) {
	if db.closed.Load() {
		return Lease{}, ErrClosed
	}
	lt := &db.leases
	lt.mu.Lock()
	defer lt.mu.Unlock()
	l, err := decide(lt, db.now())
	if err != nil {
		return Lease{}, err
	}
	if err := db.ljour.append(l); err != nil {
		return Lease{}, err
	}
	// The write is durable now: it is stored by the writer or, should the
	// process die first, by the next Open.
	err = db.queue(context.Background(), "lease of "+l.IP.String(), func(t *tx) error {
		if err := t.putLease(l); err != nil {
			return err
		}
		t.leasesJournaled++
		return nil
	})
	if err != nil {
		return Lease{}, err
	}
	lt.set(l)
	return l, nil
}

// putLease stores l at its address, in place of the lease there and of its
// client's lease at another address.
func (t *tx) putLease(l Lease) error {
	n, err := addrNum(l.IP)
	if err != nil {
		return err
	}
	var mac any // a decline hold has none
	if l.MAC != "" {
		mac = string(l.MAC)
		if _, err := t.exec(`DELETE FROM leases WHERE mac = ? AND ip_num <> ?`, mac, n); err != nil {
			return err
		}
	}
	_, err = t.exec(`INSERT INTO leases (ip_num, ip, mac, site, hostname, state, expires, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (ip_num) DO UPDATE SET mac = excluded.mac, site = excluded.site, hostname = excluded.hostname,
			state = excluded.state, expires = excluded.expires, updated = excluded.updated`,
		n, l.IP.String(), mac, l.Site, l.Hostname, string(l.State), fmtTime(l.Expires), fmtTime(l.Updated))
	return err
}

// replayLeases stores the lease changes the journal at path holds, in
// order, then empties it: those a dead process had answered for but not
// stored. Storing one already stored changes nothing, so all are stored
// again. A change the database refuses is counted with the unreadable
// lines and logged, and does not keep the server from starting.
func (db *DB) replayLeases(ctx context.Context, path string) (int, error) {
	ls, bad, err := readJournal(path, func(l Lease) bool { return l.IP.Is4() && l.State != "" })
	if err != nil {
		return 0, fmt.Errorf("read lease journal %s: %w", path, err)
	}
	stored := 0
	if len(ls) > 0 {
		err := db.do(ctx, func(t *tx) error {
			stored = 0
			for _, l := range ls {
				ferr, err := t.savepoint(func(t *tx) error { return t.putLease(l) })
				if err != nil {
					return err
				}
				if ferr != nil {
					bad++
					db.logError(fmt.Errorf("replay lease journal %s: lease of %s to %q: %w", path, l.IP, l.MAC, ferr))
					continue
				}
				stored++
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("replay lease journal %s: %w", path, err)
		}
	}
	db.journalBad += bad
	return stored, emptyJournal(path)
}

// LeaseByMAC returns the lease of mac, active or not.
func (db *DB) LeaseByMAC(ctx context.Context, mac sites.MAC) (Lease, error) {
	db.leases.mu.Lock()
	defer db.leases.mu.Unlock()
	if l := db.leases.of(mac); l != nil {
		return l.Lease, nil
	}
	return Lease{}, fmt.Errorf("lease of %s: %w", mac, ErrNotFound)
}

// LeaseNow returns the lease of mac, active or not, if the table can be
// read at once: the DHCP server asks from the goroutine that reads its
// socket, which must not wait behind a change being journaled and queued.
// ok is false when mac has no lease or the table is busy.
func (db *DB) LeaseNow(mac sites.MAC) (l Lease, ok bool) {
	if !db.leases.mu.TryLock() {
		return Lease{}, false
	}
	defer db.leases.mu.Unlock()
	if sl := db.leases.of(mac); sl != nil {
		return sl.Lease, true
	}
	return Lease{}, false
}

// LeaseByIP returns the lease of ip, active or not.
func (db *DB) LeaseByIP(ctx context.Context, ip netip.Addr) (Lease, error) {
	n, err := addrNum(ip)
	if err != nil {
		return Lease{}, fmt.Errorf("lease of %s: %w", ip, err)
	}
	db.leases.mu.Lock()
	defer db.leases.mu.Unlock()
	if l := db.leases.at(n); l != nil {
		return l.Lease, nil
	}
	return Lease{}, fmt.Errorf("lease of %s: %w", ip, ErrNotFound)
}

// Leases lists the leases of a site (all sites if site is empty), by address.
func (db *DB) Leases(ctx context.Context, site string) ([]Lease, error) {
	db.leases.mu.Lock()
	ls := make([]Lease, 0, len(db.leases.byIP))
	for _, l := range db.leases.byIP {
		if site == "" || l.Site == site {
			ls = append(ls, l)
		}
	}
	db.leases.mu.Unlock()
	slices.SortFunc(ls, func(a, b Lease) int { return a.IP.Compare(b.IP) })
	return ls, nil
}
