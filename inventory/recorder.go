package inventory

import (
	"context"
	"errors"
	"sync"

	"github.com/undercloud/undercloud/sites"
)

// recorderLimit bounds the events waiting in memory; Record waits for the
// writer beyond it.
const recorderLimit = 4096

// recorder buffers the events of Record until the writer stores them all in
// one write of its next transaction. Buffering in a slice rather than
// queueing one write per event lets that write fold the events of one
// machine (a DORA exchange is four) into a single update of its row.
type recorder struct {
	mu      sync.Mutex
	buf     []Event
	pending bool // a write that will take buf is queued
}

// add buffers ev, and queues the write that takes the buffer unless one is
// queued already: events added before it runs ride along.
func (r *recorder) add(ctx context.Context, db *DB, ev Event) error {
	r.mu.Lock()
	for len(r.buf) >= recorderLimit {
		r.mu.Unlock()
		if err := db.Flush(ctx); err != nil { // takes the buffer
			return err
		}
		r.mu.Lock()
	}
	r.buf = append(r.buf, ev)
	submit := !r.pending
	r.pending = true
	r.mu.Unlock()
	if !submit {
		return nil
	}
	err := db.queue(ctx, "events", r.takeOnce())
	if err != nil {
		// The event stays buffered for the next write or Flush.
		r.mu.Lock()
		r.pending = false
		r.mu.Unlock()
	}
	return err
}

// takeOnce returns a write that stores the buffered events: it takes them on
// its first run and stores the same ones if the batch is replayed.
func (r *recorder) takeOnce() func(*tx) error {
	var evs []Event
	taken := false
	return func(t *tx) error {
		if !taken {
			evs, taken = r.take(), true
		}
		_, err := t.storeEvents(evs)
		return err
	}
}

// take empties the buffer.
func (r *recorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.buf
	r.buf, r.pending = nil, false
	return evs
}

// storeEvents inserts evs, in order, and applies them to their machines:
// one read and one write per machine, whatever the number of its events.
// It returns the events' IDs.
func (t *tx) storeEvents(evs []Event) ([]int64, error) {
	ids := make([]int64, len(evs))
	var order []sites.MAC
	changes := map[sites.MAC]*machineChange{}
	for i, ev := range evs {
		var bootID any
		if ev.BootID != "" {
			bootID = ev.BootID
		}
		at := ev.At.UTC().Format(timeFormat)
		res, err := t.exec(`INSERT INTO boot_events (at, mac, site, boot_id, kind, version, ip, source, detail)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			at, string(ev.MAC), ev.Site, bootID, string(ev.Kind), ev.Version, addrText(ev.IP), ev.Source, ev.Detail)
		if err != nil {
			return nil, err
		}
		if ids[i], err = res.LastInsertId(); err != nil {
			return nil, err
		}
		c := changes[ev.MAC]
		if c == nil {
			c = &machineChange{first: at}
			changes[ev.MAC] = c
			order = append(order, ev.MAC)
		}
		c.add(ev, at)
	}
	for _, mac := range order {
		if err := t.applyChange(mac, changes[mac]); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// machineChange is what a run of events does to one machine's row.
type machineChange struct {
	first, last string // earliest and latest event times, stored form
	site        string // the last site named
	ip          string // the last address seen
	version     string // the last version booted
	kinds       []EventKind
}

func (c *machineChange) add(ev Event, at string) {
	c.first, c.last = min(c.first, at), max(c.last, at)
	if ev.Site != "" {
		c.site = ev.Site
	}
	if ev.IP.IsValid() {
		c.ip = addrText(ev.IP)
	}
	if ev.Kind == EventBooted && ev.Version != "" {
		c.version = ev.Version
	}
	c.kinds = append(c.kinds, ev.Kind)
}

// state folds the change's events over the state from.
func (c *machineChange) state(from State) State {
	for _, k := range c.kinds {
		from = nextState(from, k)
	}
	return from
}

// applyChange writes c to the row of mac, creating a discovered machine for
// a MAC never seen. It sets only the columns that change, so the common case
// (same state) rewrites no index entry of machines.
func (t *tx) applyChange(mac sites.MAC, c *machineChange) error {
	var cur, site string
	var discovered bool
	err := t.queryRow(`SELECT state, site, discovered FROM machines WHERE mac = ?`, string(mac)).Scan(&cur, &site, &discovered)
	if errors.Is(err, ErrNotFound) {
		_, err = t.exec(`INSERT INTO machines (mac, site, state, current_version, last_ip, first_seen, last_seen, discovered)
			VALUES (?, ?, ?, ?, ?, ?, ?, 1)`,
			string(mac), c.site, string(c.state(StateDiscovered)), c.version, c.ip, c.first, c.last)
		return err
	}
	if err != nil {
		return err
	}
	set := `last_seen = max(coalesce(last_seen, ''), ?), first_seen = coalesce(first_seen, ?)`
	args := []any{c.last, c.first}
	if c.ip != "" {
		set += `, last_ip = ?`
		args = append(args, c.ip)
	}
	if next := c.state(State(cur)); next != State(cur) {
		set += `, state = ?`
		args = append(args, string(next))
	}
	if c.version != "" {
		set += `, current_version = ?`
		args = append(args, c.version)
	}
	if discovered && c.site != "" && c.site != site {
		set += `, site = ?`
		args = append(args, c.site)
	}
	_, err = t.exec(`UPDATE machines SET `+set+` WHERE mac = ?`, append(args, string(mac))...)
	return err
}
