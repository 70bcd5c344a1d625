package inventory

import (
	"context"
	"fmt"
	"time"

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
// (RFC 2131 4.3.1). Allocations are decided one at a time under the lease
// table's lock, so two requests never get the same address; when r has
// nothing left, the error wraps ErrRangeFull and names r.
func (db *DB) Allocate(ctx context.Context, req LeaseRequest, r sites.Range) (Lease, error) {
	if err := req.check(); err != nil {
		return Lease{}, err
	}
	l, err := db.changeLease(func(lt *leaseTable, now time.Time) (Lease, error) {
		k, err := rangeKey(r)
		if err != nil {
			return Lease{}, err
		}
		n, mine, err := lt.pick(req, k, now)
		if err != nil {
			return Lease{}, err
		}
		return offered(req, n, mine, now), nil
	})
	if err != nil {
		return Lease{}, fmt.Errorf("allocate an address of %s for %s: %w", r.String(), req.MAC, err)
	}
	return l, nil
}
