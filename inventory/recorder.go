package inventory

import (
	"cmp"
	"context"
	"database/sql"
	"strings"
	"sync"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// recorderLimit bounds the events waiting in memory (an event takes about
// 400 bytes, so at most about 25 MiB); Record waits for the writer beyond
// it. It is sized for the bring-up of thousands of machines at once, about
// ten events each, while the downloads starve the writer of CPU: the DHCP
// server records from the goroutine that reads its socket, and a wait
// there stops DHCP.
const recorderLimit = 65536

// recorder buffers the events of Record until the writer stores them all in
// one write of its next transaction. Buffering in a slice rather than
// queueing one write per event lets that write fold the events of one
// machine (a DORA exchange is four) into a single update of its row.
type recorder struct {
	mu      sync.Mutex
	buf     []buffered
	pending bool   // a write that will take buf is queued
	limit   int    // recorderLimit; tests lower it
	fold    folder // which events are repeats, counted rather than stored
}

// buffered is an event waiting in the recorder.
type buffered struct {
	Event
	journaled bool // in the journal (RecordDurable): counted once stored
}

// eventGather is how long recorded events wait for others before their
// write is queued. Events are a log, not a promise to a client: gathering
// them for a few milliseconds turns thousands of tiny commits a second into
// a few large ones, each page of the log written once instead of once per
// event. Flush and Close store what is waiting at once.
const eventGather = 20 * time.Millisecond

// add buffers ev and, unless a write of the buffer is already coming,
// queues one after eventGather: events added meanwhile ride along.
// journaled says ev is in the journal: it is not folded, and its commit is
// counted (journal.committed).
func (r *recorder) add(ctx context.Context, db *DB, ev Event, journaled bool) error {
	r.mu.Lock()
	if journaled {
		r.fold.end(ev.MAC) // stored, whatever it repeats
	} else if !r.fold.fold(&ev) {
		r.mu.Unlock()
		return nil
	}
	// A full buffer makes the caller wait for a write of its oldest
	// events, bounded as the queued writes are (a Flush of the whole
	// buffer would hold every write someone waits for behind it). A
	// journaled event does not wait: it is durable already, and the
	// requests that send one are bounded by the HTTP server's connection
	// cap.
	for !journaled && len(r.buf) >= cmp.Or(r.limit, recorderLimit) {
		r.mu.Unlock()
		if err := db.do(ctx, r.takeOnce(db, eventsPerWrite)); err != nil {
			return err
		}
		r.mu.Lock()
	}
	r.buf = append(r.buf, buffered{Event: ev, journaled: journaled})
	submit := !r.pending
	r.pending = true
	r.mu.Unlock()
	if submit {
		time.AfterFunc(eventGather, func() { r.queueWrite(db) })
	}
	return nil
}

// eventsPerWrite bounds the events one queued write takes from the buffer;
// the rest go in the next one, queued at once. Writes someone waits for (a
// Flush, a version assignment) commit in the same transactions as these,
// and must not queue behind one write of the thousands of events a storm
// buffers while the writer is busy.
const eventsPerWrite = 256

// queueWrite queues a write of the buffered events.
func (r *recorder) queueWrite(db *DB) {
	if err := db.queue(context.Background(), "events", r.takeOnce(db, eventsPerWrite)); err != nil {
		// Closed meanwhile: Close has flushed the buffer, or the events
		// stay buffered for the next write or Flush.
		r.mu.Lock()
		r.pending = false
		r.mu.Unlock()
	}
}

// endRuns forgets the repeats of mac (see FoldWindow): an event of it is
// stored without passing through add.
func (r *recorder) endRuns(mac sites.MAC) {
	r.mu.Lock()
	r.fold.end(mac)
	r.mu.Unlock()
}

// takeOnce returns a write that stores the buffered events, at most limit
// of them (all if limit is 0): it takes them on its first run and stores
// the same ones if the batch is replayed.
func (r *recorder) takeOnce(db *DB, limit int) func(*tx) error {
	var evs []Event
	journaled := 0
	taken := false
	return func(t *tx) error {
		if !taken {
			taken = true
			bs := r.take(db, limit)
			evs = make([]Event, len(bs))
			for i, b := range bs {
				evs[i] = b.Event
				if b.journaled {
					journaled++
				}
			}
		}
		if _, err := t.storeEvents(evs, true); err != nil {
			return err
		}
		t.journaled += journaled
		return nil
	}
}

// take empties the buffer, or takes its first limit events and queues a
// write of the rest.
func (r *recorder) take(db *DB, limit int) []buffered {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.buf
	if limit > 0 && len(evs) > limit {
		r.buf = append(make([]buffered, 0, len(evs)-limit), evs[limit:]...)
		// From a goroutine: this runs on the writer, whose queue may be
		// full. pending stays set: the rest is as good as queued.
		go r.queueWrite(db)
		return evs[:limit:limit]
	}
	// The next gathering is likely about as large: growing a slice of
	// events from nothing copies each of them several times.
	r.buf, r.pending = make([]buffered, 0, min(len(evs), recorderLimit)), false
	return evs
}

// storeEvents inserts evs, in order, and applies them to their machines:
// one read and one write per machine, whatever the number of its events.
// With limit, the events of MACs never seen before are subject to the
// discovery rate (admitEvents). It returns the IDs of the events stored.
func (t *tx) storeEvents(evs []Event, limit bool) ([]int64, error) {
	var order []sites.MAC
	seen := make(map[sites.MAC]bool, len(evs))
	for _, ev := range evs {
		if !seen[ev.MAC] {
			seen[ev.MAC] = true
			order = append(order, ev.MAC)
		}
	}
	rows, err := t.machineRows(order)
	if err != nil {
		return nil, err
	}
	if limit {
		if evs = t.admitEvents(evs, rows); len(evs) == 0 {
			return nil, nil
		}
	}
	ids := make([]int64, 0, len(evs))
	order = order[:0]
	changes := map[sites.MAC]*machineChange{}
	for len(evs) > 0 {
		chunk := evs[:min(len(evs), eventsPerInsert)]
		evs = evs[len(chunk):]
		first, err := t.insertEvents(chunk)
		if err != nil {
			return nil, err
		}
		for i, ev := range chunk {
			ids = append(ids, first+int64(i))
			at := ev.At.UTC().Format(timeFormat)
			c := changes[ev.MAC]
			if c == nil {
				c = &machineChange{first: at}
				changes[ev.MAC] = c
				order = append(order, ev.MAC)
			}
			c.add(ev, at)
			if ev.Kind.Step() {
				t.stepStored(ev.MAC)
			}
		}
	}
	for _, mac := range order {
		if err := t.applyChange(mac, changes[mac], rows[mac]); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// machineRow is what applyChange needs of a machine's stored row.
type machineRow struct {
	state, site, lastIP string
	lastSeen, firstSeen sql.NullString
	discovered          bool
	marks               bootMarks
}

// machineRows returns the rows of macs, from the writer's cache when it
// has them, else read eventsPerInsert at a time; a MAC without a row is
// absent from the map.
func (t *tx) machineRows(macs []sites.MAC) (map[sites.MAC]*machineRow, error) {
	out := make(map[sites.MAC]*machineRow, len(macs))
	var missing []sites.MAC
	for _, m := range macs {
		if r, ok := t.db().seen.get(m); ok {
			out[m] = &r
		} else {
			missing = append(missing, m)
		}
	}
	for len(missing) > 0 {
		chunk := missing[:min(len(missing), eventsPerInsert)]
		missing = missing[len(chunk):]
		args := make([]any, len(chunk))
		for i, m := range chunk {
			args[i] = string(m)
		}
		rows, err := t.query(`SELECT mac, state, site, discovered, last_ip, last_seen, first_seen,
			ended_boot, coalesce(ended_at, ''), step_boot, coalesce(step_at, '') FROM machines WHERE mac IN (?`+
			strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var mac string
			r := &machineRow{}
			if err := rows.Scan(&mac, &r.state, &r.site, &r.discovered, &r.lastIP, &r.lastSeen, &r.firstSeen,
				&r.marks.endBoot, &r.marks.endAt, &r.marks.stepBoot, &r.marks.stepAt); err != nil {
				rows.Close()
				return nil, err
			}
			out[sites.MAC(mac)] = r
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// machineCache keeps, for the writer, the machine rows storeEvents read or
// wrote: a datacenter's machines send a burst of packets each, and every
// batch of their events would otherwise read each of their rows again.
// Only the writer goroutine touches it, inside write transactions. Every
// other write to those columns forgets the rows it changes, and a write or
// transaction that rolls back forgets them all, so a cached row is always
// what the database holds.
type machineCache struct {
	rows map[sites.MAC]machineRow
}

// machineCacheMax bounds the cache; when full it starts again empty (a miss
// costs one read).
const machineCacheMax = 100000

func (c *machineCache) get(mac sites.MAC) (machineRow, bool) {
	r, ok := c.rows[mac]
	return r, ok
}

func (c *machineCache) put(mac sites.MAC, r machineRow) {
	if c.rows == nil || len(c.rows) >= machineCacheMax {
		c.rows = make(map[sites.MAC]machineRow)
	}
	c.rows[mac] = r
}

func (c *machineCache) forget(mac sites.MAC) { delete(c.rows, mac) }

func (c *machineCache) reset() { clear(c.rows) }

// eventsPerInsert is how many events one INSERT stores: a statement per
// event cost more than the rows themselves when a datacenter boots at once.
const eventsPerInsert = 64

// insertEvents stores evs with one multi-row INSERT and returns the id of
// the first: the writer is the only one, so the rows get consecutive ids.
func (t *tx) insertEvents(evs []Event) (int64, error) {
	var q strings.Builder
	q.WriteString(`INSERT INTO boot_events (at, mac, site, boot_id, kind, version, ip, source, detail, repeats) VALUES `)
	args := make([]any, 0, 10*len(evs))
	for i, ev := range evs {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		var bootID any
		if ev.BootID != "" {
			bootID = ev.BootID
		}
		args = append(args, ev.At.UTC().Format(timeFormat), string(ev.MAC), ev.Site, bootID, string(ev.Kind),
			ev.Version, addrText(ev.IP), ev.Source, ev.Detail, ev.Repeats)
	}
	res, err := t.exec(q.String(), args...)
	if err != nil {
		return 0, err
	}
	last, err := res.LastInsertId()
	return last - int64(len(evs)) + 1, err
}

// machineChange is what a run of events does to one machine's row.
type machineChange struct {
	first, last string // earliest and latest event times, stored form
	site        string // the last site named
	ip          string // the last address seen
	steps       []step
}

func (c *machineChange) add(ev Event, at string) {
	c.first, c.last = min(c.first, at), max(c.last, at)
	if ev.Site != "" {
		c.site = ev.Site
	}
	if ev.IP.IsValid() {
		c.ip = addrText(ev.IP)
	}
	c.steps = append(c.steps, step{kind: ev.Kind, detail: ev.Detail, boot: ev.BootID, at: at, version: ev.Version})
}

// applyChange writes c to the row of mac, creating a discovered machine for
// a MAC never seen. It sets only the columns that change, so the common case
// (same state) rewrites no index entry of machines.
func (t *tx) applyChange(mac sites.MAC, c *machineChange, row *machineRow) error {
	if row == nil {
		st, marks, version := fold(StateDiscovered, bootMarks{}, c.steps, true)
		next := machineRow{state: string(st), site: c.site, lastIP: c.ip, discovered: true, marks: marks,
			lastSeen: sql.NullString{String: c.last, Valid: true}, firstSeen: sql.NullString{String: c.first, Valid: true}}
		_, err := t.exec(`INSERT INTO machines (mac, site, state, current_version, last_ip, first_seen, last_seen, discovered,
				ended_boot, ended_at, step_boot, step_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, nullif(?, ''), ?, nullif(?, ''))`,
			string(mac), c.site, next.state, version, c.ip, c.first, c.last,
			marks.endBoot, marks.endAt, marks.stepBoot, marks.stepAt)
		if err == nil {
			t.db().seen.put(mac, next)
		}
		return err
	}
	next := *row
	set := `last_seen = max(coalesce(last_seen, ''), ?), first_seen = coalesce(first_seen, ?)`
	args := []any{c.last, c.first}
	changed := !row.firstSeen.Valid
	if c.ip != "" && c.ip != row.lastIP {
		set += `, last_ip = ?`
		args = append(args, c.ip)
		next.lastIP, changed = c.ip, true
	}
	st, marks, version := fold(State(row.state), row.marks, c.steps, row.discovered)
	if st != State(row.state) {
		set += `, state = ?`
		args = append(args, string(st))
		next.state, changed = string(st), true
	}
	if marks != row.marks {
		set += `, ended_boot = ?, ended_at = nullif(?, ''), step_boot = ?, step_at = nullif(?, '')`
		args = append(args, marks.endBoot, marks.endAt, marks.stepBoot, marks.stepAt)
		next.marks, changed = marks, true
	}
	if version != "" {
		// A machine booted with no version assigned (its first
		// assignment was lost with a crash, see AssignFirstVersion) is
		// assigned what it booted: it must not move on its next reboot.
		set += `, current_version = ?, assigned_version = CASE assigned_version WHEN '' THEN ? ELSE assigned_version END`
		args = append(args, version, version)
		changed = true
	}
	if row.discovered && c.site != "" && c.site != row.site {
		set += `, site = ?`
		args = append(args, c.site)
		next.site, changed = c.site, true
	}
	// A machine that keeps renewing its lease changes nothing but its
	// last_seen: writing that at most every lastSeenEvery spares a page
	// write per packet when hundreds of machines boot at once.
	if !changed && row.lastSeen.Valid && !stale(row.lastSeen.String, c.last) {
		t.db().seen.put(mac, next)
		return nil
	}
	if _, err := t.exec(`UPDATE machines SET `+set+` WHERE mac = ?`, append(args, string(mac))...); err != nil {
		return err
	}
	next.lastSeen = sql.NullString{String: max(row.lastSeen.String, c.last), Valid: true}
	if !next.firstSeen.Valid {
		next.firstSeen = sql.NullString{String: c.first, Valid: true}
	}
	t.db().seen.put(mac, next)
	return nil
}

// lastSeenEvery is how stale a machine's last_seen may be while nothing else
// about it changes.
const lastSeenEvery = 10 * time.Second

// stale reports whether a last_seen stored as prev is older than
// lastSeenEvery before now (both in the stored time format).
func stale(prev, now string) bool {
	p, err1 := time.Parse(timeFormat, prev)
	n, err2 := time.Parse(timeFormat, now)
	return err1 != nil || err2 != nil || n.Sub(p) >= lastSeenEvery
}
