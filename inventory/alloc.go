package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/undercloud/undercloud/sites"
)

// Allocate offers req.MAC an address of the dynamic range r, for
// req.Duration (default DefaultOfferTime). It prefers, in order:
//
//  1. the client's current or last address, if it lies in r;
//  2. the address it asked for (req.IP, option 50), if in r and free;
//  3. an address of r never handed out, found from a cursor;
//  4. the address of r whose lease expired first (released, expired, or a
//     decline hold that has run out).
//
// Addresses that have never been used go before expired ones, so a client
// returning after its lease expired likely finds its old address unused
// (RFC 2131 4.3.1). Allocations run one at a time in the writer, so two
// requests never get the same address; when r has nothing left, the error
// wraps ErrRangeFull and names r.
func (db *DB) Allocate(ctx context.Context, req LeaseRequest, r sites.Range) (Lease, error) {
	if err := req.check(); err != nil {
		return Lease{}, err
	}
	var out Lease
	err := db.do(ctx, func(t *tx) error {
		first, err := addrNum(r.Start)
		if err != nil {
			return err
		}
		last, err := addrNum(r.End)
		if err != nil {
			return err
		}
		if first > last {
			return fmt.Errorf("range %s is empty", r.String())
		}
		n, mine, at, err := t.pick(req, poolKey{first, last})
		if err != nil {
			return err
		}
		out, err = t.offer(req, n, mine, at)
		return err
	})
	if err != nil {
		return Lease{}, fmt.Errorf("allocate an address of %s for %s: %w", r.String(), req.MAC, err)
	}
	return out, nil
}

// pick chooses the address for Allocate and returns it with the client's
// row and the row at the address, if any.
func (t *tx) pick(req LeaseRequest, k poolKey) (n uint32, mine, at *storedLease, err error) {
	now := t.db().now()
	if mine, err = t.lease(`SELECT `+leaseColumns+` FROM leases WHERE mac = ?`, string(req.MAC)); err != nil {
		return 0, nil, nil, err
	}
	if mine != nil && k.contains(mine.num) {
		return mine.num, mine, mine, nil
	}
	if want, err := addrNum(req.IP); err == nil && k.contains(want) {
		at, err := t.lease(`SELECT `+leaseColumns+` FROM leases WHERE ip_num = ?`, want)
		if err != nil {
			return 0, nil, nil, err
		}
		if at == nil || !at.Active(now) {
			return want, mine, at, nil
		}
	}
	if n, ok, err := t.fresh(k); err != nil || ok {
		return n, mine, nil, err
	}
	var num uint32
	err = t.queryRow(expiredQuery, fmtTime(now), k.first, k.last).Scan(&num)
	if errors.Is(err, ErrNotFound) {
		return 0, nil, nil, ErrRangeFull
	}
	if err != nil {
		return 0, nil, nil, err
	}
	at, err = t.lease(`SELECT `+leaseColumns+` FROM leases WHERE ip_num = ?`, num)
	return num, mine, at, err
}

// freshQuery returns the first address in [?1, ?2] without a row: ?1 itself,
// or the address after the end of the run of used addresses starting at ?1.
// It walks only that run, by key.
const freshQuery = `SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM leases WHERE ip_num = ?1) THEN ?1 ELSE
	(SELECT l.ip_num + 1 FROM leases AS l
	 WHERE l.ip_num >= ?1 AND l.ip_num < ?2
	   AND NOT EXISTS (SELECT 1 FROM leases AS x WHERE x.ip_num = l.ip_num + 1)
	 ORDER BY l.ip_num LIMIT 1) END`

// expiredQuery returns the address in [?2, ?3] whose lease expired first
// (by time ?1). +ip_num keeps the planner on the expiry index: the range
// test alone could make it walk the whole range and sort.
const expiredQuery = `SELECT ip_num FROM leases WHERE expires <= ?1 AND +ip_num BETWEEN ?2 AND ?3
	ORDER BY expires LIMIT 1`

// fresh returns the first address of k at or after its cursor that has no
// row, and moves the cursor past it. The gap query walks only the run of
// used addresses that starts at the cursor, so a range filled in order
// costs one lookup per allocation however many leases there are.
func (t *tx) fresh(k poolKey) (uint32, bool, error) {
	a := &t.db().alloc
	from := a.cursor(k)
	if from > int64(k.last) {
		return 0, false, nil
	}
	var n sql.NullInt64
	err := t.queryRow(freshQuery, from, k.last).Scan(&n)
	if err != nil {
		return 0, false, err
	}
	if !n.Valid {
		a.set(k, int64(k.last)+1)
		return 0, false, nil
	}
	a.set(k, n.Int64+1)
	return uint32(n.Int64), true, nil
}

// poolKey names a dynamic range by its first and last address.
type poolKey struct{ first, last uint32 }

func (k poolKey) contains(n uint32) bool { return k.first <= n && n <= k.last }

// allocator keeps a cursor per dynamic range: every address of the range
// below its cursor has a lease row. Rows appear in order as a range fills, so
// the search for an unused address starts where the last one ended instead
// of at the start of the range. The cursors live in memory, touched only by
// the writer goroutine; after a restart each range is walked once.
type allocator struct {
	next    map[poolKey]int64 // missing: the range's first address
	journal []undo            // changes by the current write, for its rollback
}

type undo struct {
	k    poolKey
	prev int64
	had  bool
}

func (a *allocator) cursor(k poolKey) int64 {
	if n, ok := a.next[k]; ok {
		return n
	}
	return int64(k.first)
}

func (a *allocator) set(k poolKey, n int64) {
	prev, had := a.next[k]
	a.journal = append(a.journal, undo{k, prev, had})
	if a.next == nil {
		a.next = map[poolKey]int64{}
	}
	a.next[k] = n
}

// freed moves back the cursor of every range holding address n, which has
// no row any more.
func (a *allocator) freed(n uint32) {
	for k, next := range a.next {
		if k.contains(n) && int64(n) < next {
			a.set(k, int64(n))
		}
	}
}

// keep forgets the journal of a write that succeeded.
func (a *allocator) keep() { a.journal = a.journal[:0] }

// undo restores the cursors a write that rolled back had moved.
func (a *allocator) undo() {
	for i := len(a.journal) - 1; i >= 0; i-- {
		u := a.journal[i]
		if u.had {
			a.next[u.k] = u.prev
		} else {
			delete(a.next, u.k)
		}
	}
	a.journal = a.journal[:0]
}

// reset forgets every cursor, after a transaction failed: the rows they
// counted may not exist. The next allocations walk their ranges again.
func (a *allocator) reset() {
	clear(a.next)
	a.journal = a.journal[:0]
}
