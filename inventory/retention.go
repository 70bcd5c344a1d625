package inventory

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// Retention bounds what the inventory keeps of what unauthenticated traffic
// can add: boot events and discovered machines (in no site config). Zero
// fields keep everything by that rule. Declared machines, leases, site
// versions, rebuilds, rollouts and the audit log are never pruned, nor the
// events retention must keep (see Prune).
type Retention struct {
	// EventsAge deletes boot events older than this.
	EventsAge time.Duration
	// Events keeps at most this many boot events, deleting the oldest.
	Events int
	// DiscoveredAge deletes discovered machines not seen for this long.
	DiscoveredAge time.Duration
	// Discovered keeps at most this many discovered machines, deleting
	// those seen least recently.
	Discovered int
}

// Defaults of the server's retention flags.
const (
	DefaultRetainEventsAge     = 30 * 24 * time.Hour
	DefaultRetainEvents        = 2_000_000
	DefaultRetainDiscoveredAge = 7 * 24 * time.Hour
	DefaultRetainDiscovered    = 10_000
)

// DefaultPruneEvery is how often RunRetention prunes.
const DefaultPruneEvery = 5 * time.Minute

// pruneBatch is how many rows one write deletes: a few milliseconds of the
// writer, so DHCP ACKs queued behind it hardly notice.
const pruneBatch = 500

// Pruned says what one Prune deleted.
type Pruned struct {
	Events     int
	Discovered int
}

// RunRetention prunes by r every interval (DefaultPruneEvery if 0) until
// ctx ends, logging what it deleted. It returns nil when ctx ends.
func (db *DB) RunRetention(ctx context.Context, r Retention, every time.Duration) error {
	if every <= 0 {
		every = DefaultPruneEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p, err := db.Prune(ctx, r)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			db.logError(err)
		case (p != Pruned{}) && db.Log != nil:
			db.Log.Info("inventory pruned", "events", p.Events, "discovered", p.Discovered)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Prune deletes, oldest first, the boot events and discovered machines
// beyond r's limits, in batches of pruneBatch rows so that it never holds
// the writer for long; it finds them on the read connections. It keeps,
// whatever their age:
//
//   - the events of a machine's last boot (as GroupBoots sees its last
//     thousand events, which the machine page shows), heartbeats aside;
//   - the events a rebuild in flight follows: its machine's since the
//     rebuild was created (rebuild.Engine reads them from its power cycle);
//   - the rebuilds' own transitions (event.Rebuild);
//   - discovered machines holding a lease in use or a rebuild in flight.
//
// Declared machines are never deleted.
func (db *DB) Prune(ctx context.Context, r Retention) (Pruned, error) {
	var p Pruned
	var err error
	if p.Events, err = db.pruneEvents(ctx, r); err != nil {
		return p, fmt.Errorf("prune boot events: %w", err)
	}
	if p.Discovered, err = db.pruneDiscovered(ctx, r); err != nil {
		return p, fmt.Errorf("prune discovered machines: %w", err)
	}
	return p, nil
}

// pruneEvents deletes the events older than r.EventsAge or beyond the
// newest r.Events, walking the log from its oldest event.
func (db *DB) pruneEvents(ctx context.Context, r Retention) (int, error) {
	if r.EventsAge <= 0 && r.Events <= 0 {
		return 0, nil
	}
	ageCut := "" // events at before it are old
	if r.EventsAge > 0 {
		ageCut = db.now().Add(-r.EventsAge).Format(timeFormat)
	}
	var countCut int64 // events with an ID up to it are beyond r.Events
	if r.Events > 0 {
		err := db.queryRow(ctx, `SELECT id FROM boot_events ORDER BY id DESC LIMIT 1 OFFSET ?`, r.Events).Scan(&countCut)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
	}
	keep := &keeper{db: db, from: map[sites.MAC]int64{}}
	if err := keep.loadRebuilds(ctx); err != nil {
		return 0, err
	}
	deleted := 0
	var cursor int64
	for {
		evs, err := db.events(ctx, `SELECT `+eventColumns+` FROM boot_events WHERE id > ? ORDER BY id LIMIT ?`, cursor, pruneBatch)
		if err != nil || len(evs) == 0 {
			return deleted, err
		}
		var ids []int64
		done := false
		for _, ev := range evs {
			at := ev.At.UTC().Format(timeFormat)
			if at >= ageCut && ev.ID > countCut {
				// Events are stored about in time order: the rest are newer.
				done = true
				break
			}
			cursor = ev.ID
			kept, err := keep.keeps(ctx, ev)
			if err != nil {
				return deleted, err
			}
			if !kept {
				ids = append(ids, ev.ID)
			}
		}
		if len(ids) > 0 {
			n, err := db.deleteEvents(ctx, ids)
			deleted += n
			if err != nil {
				return deleted, err
			}
		}
		if done || len(evs) < pruneBatch {
			return deleted, ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
	}
}

// keeper decides which old events retention keeps (see Prune).
type keeper struct {
	db *DB
	// from is, per MAC, the ID of the first event of its machine's last
	// boot; math.MaxInt64 when it has no machine row (nothing to keep).
	from map[sites.MAC]int64
	// rebuilds is, per MAC with a rebuild in flight, when it was created.
	rebuilds map[sites.MAC]time.Time
}

func (k *keeper) loadRebuilds(ctx context.Context) error {
	rows, err := k.db.query(ctx, `SELECT mac, min(created) FROM rebuilds WHERE state IN `+inFlightSQL+` GROUP BY mac`)
	if err != nil {
		return err
	}
	defer rows.Close()
	k.rebuilds = map[sites.MAC]time.Time{}
	for rows.Next() {
		var mac, created string
		if err := rows.Scan(&mac, &created); err != nil {
			return err
		}
		t, err := time.Parse(timeFormat, created)
		if err != nil {
			return err
		}
		k.rebuilds[sites.MAC(mac)] = t
	}
	return rows.Err()
}

// keeps reports whether ev is kept however old.
func (k *keeper) keeps(ctx context.Context, ev Event) (bool, error) {
	if ev.Kind == event.Rebuild {
		return true, nil
	}
	if created, ok := k.rebuilds[ev.MAC]; ok && !ev.At.Before(created) {
		return true, nil
	}
	if ev.Kind == event.Heartbeat {
		return false, nil
	}
	from, ok := k.from[ev.MAC]
	if !ok {
		var err error
		if from, err = k.lastBoot(ctx, ev.MAC); err != nil {
			return false, err
		}
		k.from[ev.MAC] = from
	}
	return ev.ID >= from, nil
}

// lastBoot returns the ID of the first event of the last boot of mac's
// machine, math.MaxInt64 if it has no machine row.
func (k *keeper) lastBoot(ctx context.Context, mac sites.MAC) (int64, error) {
	var n int
	if err := k.db.queryRow(ctx, `SELECT count(*) FROM machines WHERE mac = ?`, string(mac)).Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		return math.MaxInt64, nil
	}
	evs, err := k.db.Events(ctx, mac, 1000)
	if err != nil {
		return 0, err
	}
	boots := GroupBoots(evs, 0)
	if len(boots) == 0 {
		return math.MaxInt64, nil
	}
	from := int64(math.MaxInt64)
	for _, st := range boots[len(boots)-1].Steps {
		from = min(from, st.ID)
	}
	return from, nil
}

// deleteEvents deletes the events ids in one write, but those a rebuild
// started meanwhile follows.
func (db *DB) deleteEvents(ctx context.Context, ids []int64) (int, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	deleted := 0
	err := db.do(ctx, func(t *tx) error {
		res, err := t.Tx.ExecContext(t.ctx, `DELETE FROM boot_events WHERE id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)
			AND NOT EXISTS (SELECT 1 FROM rebuilds r WHERE r.mac = boot_events.mac AND r.state IN `+inFlightSQL+`
				AND r.created <= boot_events.at)`, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		deleted = int(n)
		return err
	})
	return deleted, err
}

// pruneDiscovered deletes the discovered machines not seen for
// r.DiscoveredAge and, beyond r.Discovered, those seen least recently.
func (db *DB) pruneDiscovered(ctx context.Context, r Retention) (int, error) {
	if r.DiscoveredAge <= 0 && r.Discovered <= 0 {
		return 0, nil
	}
	now := db.now()
	ageCut := ""
	if r.DiscoveredAge > 0 {
		ageCut = now.Add(-r.DiscoveredAge).Format(timeFormat)
	}
	excess := 0
	if r.Discovered > 0 {
		var n int
		if err := db.queryRow(ctx, `SELECT count(*) FROM machines WHERE discovered = 1`).Scan(&n); err != nil {
			return 0, err
		}
		excess = n - r.Discovered
	}
	nowText := now.Format(timeFormat)
	deleted := 0
	lastSeen, lastMAC := "", ""
	for {
		rows, err := db.query(ctx, `SELECT mac, coalesce(last_seen, first_seen, '') AS seen FROM machines
			WHERE discovered = 1 AND (coalesce(last_seen, first_seen, ''), mac) > (?, ?) AND `+notInUse+`
			ORDER BY seen, mac LIMIT ?`, lastSeen, lastMAC, nowText, pruneBatch)
		if err != nil {
			return deleted, err
		}
		var macs, seens []string
		done := false
		for rows.Next() {
			var mac, seen string
			if err := rows.Scan(&mac, &seen); err != nil {
				rows.Close()
				return deleted, err
			}
			lastSeen, lastMAC = seen, mac
			if seen >= ageCut && excess <= 0 {
				done = true
				break
			}
			macs, seens = append(macs, mac), append(seens, seen)
			excess--
		}
		n := len(macs)
		if err := rows.Close(); err != nil {
			return deleted, err
		}
		if n > 0 {
			d, err := db.deleteDiscovered(ctx, macs, seens, nowText)
			deleted += d
			if err != nil {
				return deleted, err
			}
		}
		if done || n < pruneBatch {
			return deleted, ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
	}
}

// notInUse is the condition on a discovered machine that it holds no lease
// in use (expiring after the first argument) and has no rebuild in flight.
const notInUse = `NOT EXISTS (SELECT 1 FROM leases l WHERE l.mac = machines.mac AND l.expires > ?)
	AND NOT EXISTS (SELECT 1 FROM rebuilds r WHERE r.mac = machines.mac AND r.state IN ` + inFlightSQL + `)`

// deleteDiscovered deletes the discovered machines macs in one write, each
// only if still discovered, last seen as seens says, and not in use.
func (db *DB) deleteDiscovered(ctx context.Context, macs, seens []string, now string) (int, error) {
	deleted := 0
	err := db.do(ctx, func(t *tx) error {
		deleted = 0
		for i, mac := range macs {
			res, err := t.exec(`DELETE FROM machines WHERE mac = ? AND discovered = 1
				AND coalesce(last_seen, first_seen, '') = ? AND `+notInUse, mac, seens[i], now)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			t.db().seen.forget(sites.MAC(mac))
			deleted += int(n)
		}
		return nil
	})
	return deleted, err
}
