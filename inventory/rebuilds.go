package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// RebuildState is where a rebuild stands. The states form a line, requested
// to done; any state before done may end in failed; only requested may end
// in canceled. Every transition is stored with an event.Rebuild event.
type RebuildState string

// Rebuild states, in life order.
const (
	// RebuildRequested: created, by an operator or a rollout; the engine has
	// not taken it yet.
	RebuildRequested RebuildState = "requested"
	// RebuildPowerCycling: stored before the BMC is called; left when the BMC
	// accepted the power cycle (or refused it).
	RebuildPowerCycling RebuildState = "power-cycling"
	// RebuildBooting: the BMC accepted the power cycle; waiting for the boot
	// steps up to the Ignition config of the target version.
	RebuildBooting RebuildState = "booting"
	// RebuildConfigServed: the machine fetched its Ignition config of the
	// target version; waiting for its booted report.
	RebuildConfigServed RebuildState = "config-served"
	// RebuildBooted: the machine reported booted on the target version.
	RebuildBooted RebuildState = "booted"
	// RebuildDone: finished; the machine runs the target version.
	RebuildDone RebuildState = "done"
	// RebuildFailed: a stage timed out or the BMC refused; Reason says which.
	RebuildFailed RebuildState = "failed"
	// RebuildCanceled: its rollout was aborted before the power cycle.
	RebuildCanceled RebuildState = "canceled"
)

// RebuildStates returns the rebuild states in life order.
func RebuildStates() []RebuildState {
	return []RebuildState{RebuildRequested, RebuildPowerCycling, RebuildBooting, RebuildConfigServed,
		RebuildBooted, RebuildDone, RebuildFailed, RebuildCanceled}
}

// String returns the state's name, as stored.
func (s RebuildState) String() string { return string(s) }

// Valid reports whether s is one of RebuildStates.
func (s RebuildState) Valid() bool { return slices.Contains(RebuildStates(), s) }

// InFlight reports whether a rebuild in state s is not finished: a machine
// has at most one such rebuild.
func (s RebuildState) InFlight() bool {
	switch s {
	case RebuildRequested, RebuildPowerCycling, RebuildBooting, RebuildConfigServed, RebuildBooted:
		return true
	}
	return false
}

// inFlightSQL lists the in-flight states for SQL; it must match the
// partial index rebuilds_one_in_flight for SQLite to use it.
const inFlightSQL = `('requested', 'power-cycling', 'booting', 'config-served', 'booted')`

// EventRef names a boot event from a rebuild: enough to say what the machine
// did last when a stage times out.
type EventRef struct {
	ID      int64 // zero: no event
	Kind    event.Kind
	At      time.Time
	Version string
}

// RefOf returns the reference to ev.
func RefOf(ev Event) EventRef {
	return EventRef{ID: ev.ID, Kind: ev.Kind, At: ev.At, Version: ev.Version}
}

// String reads "ipxe-script at 2026-03-01T10:00:05Z (version 3f9c2e1a0b4c)",
// or "none".
func (r EventRef) String() string {
	if r.ID == 0 {
		return "none"
	}
	s := fmt.Sprintf("%s at %s", r.Kind, r.At.UTC().Format(time.RFC3339))
	if r.Version != "" {
		s += " (version " + sites.Version{Commit: r.Version}.Short() + ")"
	}
	return s
}

// Rebuild is one rebuild of one machine, as stored.
type Rebuild struct {
	ID      int64
	Site    string
	Machine string // its name in the site config
	MAC     sites.MAC
	Role    sites.Role
	// Target is the commit the machine must boot. It is fixed when the power
	// cycle starts (the site's active version then).
	Target string
	State  RebuildState
	Reason string // why it failed or was canceled, or why it was power-cycled again
	// LastEvent is the last boot event seen since the power cycle; its ID
	// is where following the machine's events resumes.
	LastEvent   EventRef
	RolloutID   int64 // zero: requested on its own
	RequestedBy string
	Created     time.Time
	Updated     time.Time
	// StageStarted is when State was entered; stage timeouts count from it.
	StageStarted time.Time
	// PowerCycledAt is when the BMC accepted the power cycle: boot events
	// from then on are this rebuild's.
	PowerCycledAt time.Time
	// BootStartedAt is the time of the first boot step after the power
	// cycle: the config timeout counts from it.
	BootStartedAt time.Time
}

// Label names the machine as operators do: "lab/lab-w1".
func (r Rebuild) Label() string { return r.Site + "/" + r.Machine }

// RebuildFilter selects rebuilds; zero fields select all.
type RebuildFilter struct {
	Site      string
	MAC       sites.MAC
	RolloutID int64
	InFlight  bool // only rebuilds not finished
	Limit     int  // at most this many, newest first; 0 means 100
}

const rebuildColumns = `id, site, machine, mac, role, target_version, state, reason, last_event, last_event_id,
	last_event_at, last_event_version, rollout_id, requested_by, created, updated, stage_started,
	power_cycled_at, boot_started_at`

func scanRebuild(s scanner) (Rebuild, error) {
	var r Rebuild
	var mac, role, state, kind string
	var rollout sql.NullInt64
	var lastAt, created, updated, stage, cycled, bootStart sql.NullString
	err := s.Scan(&r.ID, &r.Site, &r.Machine, &mac, &role, &r.Target, &state, &r.Reason, &kind, &r.LastEvent.ID,
		&lastAt, &r.LastEvent.Version, &rollout, &r.RequestedBy, &created, &updated, &stage, &cycled, &bootStart)
	if err != nil {
		return r, err
	}
	r.MAC, r.Role, r.State, r.LastEvent.Kind = sites.MAC(mac), sites.Role(role), RebuildState(state), event.Kind(kind)
	r.RolloutID = rollout.Int64
	for _, f := range []struct {
		dst *time.Time
		src sql.NullString
	}{{&r.LastEvent.At, lastAt}, {&r.Created, created}, {&r.Updated, updated}, {&r.StageStarted, stage},
		{&r.PowerCycledAt, cycled}, {&r.BootStartedAt, bootStart}} {
		if *f.dst, err = parseTime(f.src); err != nil {
			return r, err
		}
	}
	return r, nil
}

// nullID stores a zero ID as NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// CreateRebuild stores r as a new rebuild in state requested and returns it
// with its ID and times. It fails with ErrConflict, naming the rebuild in
// flight, when the machine has one already.
func (db *DB) CreateRebuild(ctx context.Context, r Rebuild) (Rebuild, error) {
	err := db.do(ctx, func(t *tx) error {
		var err error
		r, err = t.createRebuild(r)
		return err
	})
	if err != nil {
		return Rebuild{}, fmt.Errorf("request rebuild of %s: %w", r.Label(), err)
	}
	return r, nil
}

func (t *tx) createRebuild(r Rebuild) (Rebuild, error) {
	if r.MAC == "" || r.Site == "" || r.Machine == "" || r.Target == "" {
		return r, fmt.Errorf("rebuild: site, machine, MAC and target are required")
	}
	cur, err := scanRebuild(t.queryRow(`SELECT `+rebuildColumns+` FROM rebuilds
		WHERE mac = ? AND state IN `+inFlightSQL, string(r.MAC)))
	switch {
	case err == nil:
		return r, fmt.Errorf("%s is already rebuilding (rebuild %d, %s): %w", cur.Label(), cur.ID, cur.State, ErrConflict)
	case !errors.Is(err, ErrNotFound):
		return r, err
	}
	now := t.db().now()
	r.State, r.Created, r.Updated = RebuildRequested, now, now
	if r.StageStarted.IsZero() {
		r.StageStarted = now
	}
	res, err := t.exec(`INSERT INTO rebuilds (site, machine, mac, role, target_version, state, reason, rollout_id,
		requested_by, created, updated, stage_started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Site, r.Machine, string(r.MAC), string(r.Role), r.Target, string(r.State), r.Reason, nullID(r.RolloutID),
		r.RequestedBy, fmtTime(now), fmtTime(now), fmtTime(r.StageStarted))
	if err != nil {
		return r, err
	}
	if r.ID, err = res.LastInsertId(); err != nil {
		return r, err
	}
	r.StageStarted = r.StageStarted.UTC().Truncate(time.Millisecond)
	return r, t.recordTransition(r)
}

// UpdateRebuild stores r over the rebuild r.ID if that rebuild is still in
// state from (compare and set: a rollout's abort and the engine taking the
// rebuild cannot both win), and returns it as stored. It fails with
// ErrConflict when the stored state is another, ErrNotFound when there is
// no such rebuild. When the state changes, the transition is recorded as an
// event.Rebuild boot event; when it changes to failed, the machine's state
// becomes failed too, in the same transaction.
func (db *DB) UpdateRebuild(ctx context.Context, r Rebuild, from RebuildState) (Rebuild, error) {
	if !r.State.Valid() {
		return Rebuild{}, fmt.Errorf("update rebuild %d: invalid state %q", r.ID, r.State)
	}
	err := db.do(ctx, func(t *tx) error {
		r.Updated = t.db().now()
		res, err := t.exec(`UPDATE rebuilds SET target_version = ?, state = ?, reason = ?, last_event = ?,
			last_event_id = ?, last_event_at = ?, last_event_version = ?, updated = ?, stage_started = ?,
			power_cycled_at = ?, boot_started_at = ? WHERE id = ? AND state = ?`,
			r.Target, string(r.State), r.Reason, string(r.LastEvent.Kind), r.LastEvent.ID, fmtTime(r.LastEvent.At),
			r.LastEvent.Version, fmtTime(r.Updated), fmtTime(r.StageStarted), fmtTime(r.PowerCycledAt),
			fmtTime(r.BootStartedAt), r.ID, string(from))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			if err == nil && r.State != from {
				err = t.recordTransition(r)
			}
			if err == nil && (r.State == RebuildPowerCycling || r.State == RebuildBooting) {
				// The machine's next boot is the rebuild's: it boots the
				// target from now on (also when a retarget changed it).
				err = t.assign(r.MAC, r.Target)
			}
			return err
		}
		var cur string
		if err := t.queryRow(`SELECT state FROM rebuilds WHERE id = ?`, r.ID).Scan(&cur); err != nil {
			return err
		}
		return fmt.Errorf("rebuild %d is %s, not %s: %w", r.ID, cur, from, ErrConflict)
	})
	if err != nil {
		return Rebuild{}, fmt.Errorf("update rebuild %d of %s to %s: %w", r.ID, r.Label(), r.State, err)
	}
	return normalizeTimes(r), nil
}

// normalizeTimes truncates r's times to the stored precision, so what a
// write returns equals what a later read returns.
func normalizeTimes(r Rebuild) Rebuild {
	for _, p := range []*time.Time{&r.LastEvent.At, &r.Created, &r.Updated, &r.StageStarted, &r.PowerCycledAt, &r.BootStartedAt} {
		if !p.IsZero() {
			*p = p.UTC().Truncate(time.Millisecond)
		}
	}
	return r
}

// recordTransition stores the boot event of r entering its state and, for
// failed, marks the machine failed. The event is inserted directly rather
// than through storeEvents, which would count it as the machine being seen.
func (t *tx) recordTransition(r Rebuild) error {
	detail := string(r.State)
	switch {
	case (r.State == RebuildFailed || r.State == RebuildCanceled) && r.Reason != "":
		detail += ": " + r.Reason
	case r.State == RebuildPowerCycling && strings.HasPrefix(r.Reason, string(RebuildPowerCycling)+" again: "):
		// A stalled boot cycled again (rebuild.Advance): the reason says
		// why and which attempt, starting with the state itself.
		detail = r.Reason
	}
	if _, err := t.exec(`INSERT INTO boot_events (at, mac, site, kind, version, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		fmtTime(t.db().now()), string(r.MAC), r.Site, string(event.Rebuild), r.Target, detail); err != nil {
		return fmt.Errorf("record rebuild event: %w", err)
	}
	// The machine's next DHCP exchange starts a run of repeats anew (see
	// FoldWindow): it must be stored to move the machine on.
	t.db().rec.endRuns(r.MAC)
	if r.State == RebuildFailed {
		return t.setMachineFailed(r.MAC)
	}
	return nil
}

// setMachineFailed marks a machine failed after its rebuild failed. The
// state is not a boot step's doing (nextState never reaches it); the
// machine's next boot steps move it on.
func (t *tx) setMachineFailed(mac sites.MAC) error {
	t.db().seen.forget(mac)
	_, err := t.exec(`UPDATE machines SET state = ? WHERE mac = ?`, string(StateFailed), string(mac))
	if err != nil {
		return fmt.Errorf("mark machine %s failed: %w", mac, err)
	}
	return nil
}

// Rebuilds lists the rebuilds f selects, newest first.
func (db *DB) Rebuilds(ctx context.Context, f RebuildFilter) ([]Rebuild, error) {
	var where []string
	var args []any
	if f.Site != "" {
		where, args = append(where, "site = ?"), append(args, f.Site)
	}
	if f.MAC != "" {
		where, args = append(where, "mac = ?"), append(args, string(f.MAC))
	}
	if f.RolloutID != 0 {
		where, args = append(where, "rollout_id = ?"), append(args, f.RolloutID)
	}
	if f.InFlight {
		where = append(where, "state IN "+inFlightSQL)
	}
	q := `SELECT ` + rebuildColumns + ` FROM rebuilds`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	rows, err := db.query(ctx, q, append(args, limit(f.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("list rebuilds: %w", err)
	}
	defer rows.Close()
	var rs []Rebuild
	for rows.Next() {
		r, err := scanRebuild(rows)
		if err != nil {
			return nil, fmt.Errorf("list rebuilds: %w", err)
		}
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rebuilds: %w", err)
	}
	return rs, nil
}

// EventsSince returns the boot events of a machine with an ID above after
// and a time at or after since, oldest first, at most n (100 if 0): what a
// rebuild follows after its power cycle. The rebuild's own events
// (event.Rebuild) are left out.
func (db *DB) EventsSince(ctx context.Context, mac sites.MAC, since time.Time, after int64, n int) ([]Event, error) {
	evs, err := db.events(ctx, `SELECT `+eventColumns+` FROM boot_events
		WHERE mac = ? AND id > ? AND at >= ? AND kind != 'rebuild' ORDER BY id LIMIT ?`,
		string(mac), after, since.UTC().Format(timeFormat), limit(n))
	if err != nil {
		return nil, fmt.Errorf("events of %s since %s: %w", mac, since.Format(time.RFC3339), err)
	}
	return evs, nil
}
