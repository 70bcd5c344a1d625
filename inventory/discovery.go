package inventory

import (
	"sync/atomic"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// DefaultDiscoveryRate is how many MACs never seen before one site's
// traffic may add to the inventory per minute (DB.DiscoveryRate).
//
// Why bound it here: DHCP, TFTP and the boot endpoints answer anyone on
// the provisioning network, and every packet of a MAC never seen would
// otherwise create a machine row and events. 100,000 DISCOVERs with random
// MACs made 87,000 rows, a 1.1 GB WAL and pages of 40 MB. A real bring-up
// adds a rack or a few a minute; a flood adds thousands a second. The
// writer is where the bound costs nothing: it is one goroutine, so the
// counts need no lock, and it already reads (or has cached) each MAC's row
// to apply the events, so it knows which MACs are new without a query of
// its own on the packet path.
const DefaultDiscoveryRate = 1000

// discoveryLimiter counts, per site, the MACs never seen before admitted in
// the current minute. Only the writer goroutine touches it, inside write
// transactions, except dropped.
type discoveryLimiter struct {
	window   time.Time                         // the minute counted
	admitted map[string]map[sites.MAC]struct{} // site -> MACs admitted in it
	dropped  atomic.Uint64                     // events and observations dropped since start
}

// admit reports whether a MAC without a machine row, seen on site's
// network at now, may be recorded under rate new MACs per site and minute
// (see DB.DiscoveryRate). A MAC admitted once in a minute stays admitted in
// it, so a batch replayed after a failed write decides as the first time,
// and each of its events passes.
func (l *discoveryLimiter) admit(site string, mac sites.MAC, now time.Time, rate int) bool {
	switch {
	case rate < 0:
		return true
	case rate == 0:
		rate = DefaultDiscoveryRate
	}
	if w := now.Truncate(time.Minute); !w.Equal(l.window) {
		l.window = w
		clear(l.admitted) // memory: at most rate MACs per site
	}
	if l.admitted == nil {
		l.admitted = map[string]map[sites.MAC]struct{}{}
	}
	set := l.admitted[site]
	if _, ok := set[mac]; ok {
		return true
	}
	if len(set) >= rate {
		l.dropped.Add(1)
		return false
	}
	if set == nil {
		set = map[sites.MAC]struct{}{}
		l.admitted[site] = set
	}
	set[mac] = struct{}{}
	return true
}

// DiscoveriesDropped returns how many events and observations of MACs never
// seen before were dropped since the database was opened, over the
// discovery rate (DB.DiscoveryRate).
func (db *DB) DiscoveriesDropped() uint64 { return db.disc.dropped.Load() }

// admitEvents returns the events of evs to store: all of the MACs with a
// row (known machines, and discovered ones already recorded), and of the
// others those of the MACs the discovery rate admits. rows are the machine
// rows of evs' MACs (machineRows). evs is left as it is: a replayed batch
// stores it again.
func (t *tx) admitEvents(evs []Event, rows map[sites.MAC]*machineRow) []Event {
	db := t.db()
	now := db.now()
	var out []Event
	for i, ev := range evs {
		ok := rows[ev.MAC] != nil || db.disc.admit(ev.Site, ev.MAC, now, db.DiscoveryRate)
		switch {
		case ok && out != nil:
			out = append(out, ev)
		case !ok && out == nil:
			out = append(make([]Event, 0, len(evs)-1), evs[:i]...)
		}
	}
	if out == nil {
		return evs
	}
	return out
}
