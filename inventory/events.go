package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// Event is one step of a machine's boot, as the server saw it.
type Event struct {
	ID      int64     // assigned when stored; increasing
	At      time.Time // when it happened; zero means when recorded
	MAC     sites.MAC
	Site    string
	BootID  string // groups the events of one boot, when the step knows it
	Kind    event.Kind
	Version string     // config version (commit) involved, if any
	IP      netip.Addr // the machine's address, when known
	Source  string     // the request's source address (IP:port)
	Detail  string     // free text or JSON
	// Repeat, when set, marks a step that a machine may do again and again
	// and says what of Detail a repeat says again: Detail without what
	// changes every time (a DHCP exchange's transaction ID). Events of one
	// machine that agree in Repeat and in every other stored field but the
	// time are the same step done again, and the log stores the first of a
	// run and then one every FoldWindow (see fold.go). Not stored.
	Repeat string
	// Repeats is how many repeats of the event were counted into it rather
	// than stored: those since the run's previous stored event.
	Repeats int
}

// Record queues ev for storage and returns without waiting for the disk:
// the DHCP and HTTP paths call it for every packet and request. Queued
// events are stored together in the writer's next transaction, within
// milliseconds (see recorder.go); Record waits (bounded by ctx) only when
// the queue is full. Use Flush to wait for recorded events, and RecordSync
// for an event whose storage must be certain before answering.
//
// Storing an event also updates its machine in the same transaction:
// last_seen, last_ip (when ev.IP is set), the state (see State: it follows
// the boots' times and ids, not the order in which events are stored), and
// on an event.Booted of its latest boot current_version. A MAC never seen
// before becomes a discovered machine.
func (db *DB) Record(ctx context.Context, ev Event) error {
	return db.record(ctx, ev, false)
}

// RecordDurable records ev as Record does, returning once it is durable
// rather than once it is stored: appended to the inventory's event journal
// (journal.go), which survives the death of the process as a commit does
// and which the next Open stores. Whatever it repeats, it is stored. It is
// for reports a client waits for and must not be lost, such as a node's
// booted report: answering them never waits for the writer, whose batches
// a bring-up of thousands keeps busy. Reads see ev once the writer has
// stored it (Flush waits for that).
func (db *DB) RecordDurable(ctx context.Context, ev Event) error {
	return db.record(ctx, ev, true)
}

// record buffers ev for the writer, after appending it to the journal when
// durable.
func (db *DB) record(ctx context.Context, ev Event, durable bool) error {
	ev, err := db.checkEvent(ev)
	if err != nil {
		return err
	}
	if db.closed.Load() {
		return fmt.Errorf("record %s of %s: %w", ev.Kind, ev.MAC, ErrClosed)
	}
	if durable {
		if err := db.jour.append(ev); err != nil {
			return fmt.Errorf("record %s of %s: %w", ev.Kind, ev.MAC, err)
		}
	}
	if err := db.rec.add(ctx, db, ev, durable); err != nil {
		// A durable event is in the journal: the next Open stores it.
		return fmt.Errorf("record %s of %s: %w", ev.Kind, ev.MAC, err)
	}
	return nil
}

// RecordSync stores ev as Record does, returning once it has committed, with
// its ID and time set.
func (db *DB) RecordSync(ctx context.Context, ev Event) (Event, error) {
	ev, err := db.checkEvent(ev)
	if err != nil {
		return Event{}, err
	}
	db.rec.endRuns(ev.MAC) // stored, whatever it repeats
	var id int64
	err = db.do(ctx, func(t *tx) error {
		ids, err := t.storeEvents([]Event{ev}, false)
		if err == nil {
			id = ids[0]
		}
		return err
	})
	if err != nil {
		return Event{}, fmt.Errorf("record %s of %s: %w", ev.Kind, ev.MAC, err)
	}
	ev.ID = id
	return ev, nil
}

func (db *DB) checkEvent(ev Event) (Event, error) {
	if ev.MAC == "" || ev.Kind == "" {
		return ev, fmt.Errorf("record event %q: MAC and kind are required", ev.Kind)
	}
	if ev.At.IsZero() {
		ev.At = db.now() // when it happened, not when the batch commits
	}
	ev.At = ev.At.UTC().Truncate(time.Millisecond)
	return ev, nil
}

const eventColumns = `id, at, mac, site, boot_id, kind, version, ip, source, detail, repeats`

func scanEvent(s scanner) (Event, error) {
	var ev Event
	var at, bootID sql.NullString
	var mac, kind, ip string
	if err := s.Scan(&ev.ID, &at, &mac, &ev.Site, &bootID, &kind, &ev.Version, &ip, &ev.Source, &ev.Detail, &ev.Repeats); err != nil {
		return ev, err
	}
	ev.MAC, ev.BootID, ev.Kind = sites.MAC(mac), bootID.String, event.Kind(kind)
	var err error
	if ev.IP, err = parseAddr(ip); err != nil {
		return ev, err
	}
	ev.At, err = parseTime(at)
	return ev, err
}

// limit bounds how many events one call returns.
func limit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 10000:
		return 10000
	}
	return n
}

// Events returns the latest events of a machine, newest first, at most n
// (100 if n is 0).
func (db *DB) Events(ctx context.Context, mac sites.MAC, n int) ([]Event, error) {
	evs, err := db.events(ctx, `SELECT `+eventColumns+` FROM boot_events WHERE mac = ? ORDER BY id DESC LIMIT ?`, string(mac), limit(n))
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", mac, err)
	}
	return evs, nil
}

// RecentEvents returns the latest events of a site (of all sites if site is
// empty), newest first, at most n: the first page of a live feed.
func (db *DB) RecentEvents(ctx context.Context, site string, n int) ([]Event, error) {
	q, args := `SELECT `+eventColumns+` FROM boot_events ORDER BY id DESC LIMIT ?`, []any{limit(n)}
	if site != "" {
		q, args = `SELECT `+eventColumns+` FROM boot_events WHERE site = ? ORDER BY id DESC LIMIT ?`, []any{site, limit(n)}
	}
	evs, err := db.events(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("recent events of site %q: %w", site, err)
	}
	return evs, nil
}

// EventsBefore returns the events with an ID below before, of a site (of
// all sites if site is empty), newest first, at most n: the pages of the
// event log after RecentEvents' first. The last ID returned is the next
// page's before.
func (db *DB) EventsBefore(ctx context.Context, site string, before int64, n int) ([]Event, error) {
	q, args := `SELECT `+eventColumns+` FROM boot_events WHERE id < ? ORDER BY id DESC LIMIT ?`, []any{before, limit(n)}
	if site != "" {
		q, args = `SELECT `+eventColumns+` FROM boot_events WHERE site = ? AND id < ? ORDER BY id DESC LIMIT ?`, []any{site, before, limit(n)}
	}
	evs, err := db.events(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("events of site %q before %d: %w", site, before, err)
	}
	return evs, nil
}

// EventsAfter returns the events with an ID greater than after, of a site
// (of all sites if site is empty), oldest first, at most n: what a live
// feed polls for. IDs only grow, so the last ID seen is the next cursor.
func (db *DB) EventsAfter(ctx context.Context, site string, after int64, n int) ([]Event, error) {
	q, args := `SELECT `+eventColumns+` FROM boot_events WHERE id > ? ORDER BY id LIMIT ?`, []any{after, limit(n)}
	if site != "" {
		q, args = `SELECT `+eventColumns+` FROM boot_events WHERE site = ? AND id > ? ORDER BY id LIMIT ?`, []any{site, after, limit(n)}
	}
	evs, err := db.events(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("events of site %q after %d: %w", site, after, err)
	}
	return evs, nil
}

func (db *DB) events(ctx context.Context, q string, args ...any) ([]Event, error) {
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, rows.Err()
}
