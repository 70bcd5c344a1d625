package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// RolloutState is where a rollout stands.
type RolloutState string

// Rollout states. Planned, running, canary-wait and paused are live: a site
// has at most one live rollout. Halted, aborted and done are final.
const (
	// RolloutPlanned: its plan is stored; no machine started yet.
	RolloutPlanned RolloutState = "planned"
	// RolloutRunning: rebuilding machines batch after batch.
	RolloutRunning RolloutState = "running"
	// RolloutCanaryWait: the canary machines are done; waiting for the soak
	// time to pass or for an operator's confirmation.
	RolloutCanaryWait RolloutState = "canary-wait"
	// RolloutPaused: an operator paused it; no new rebuild starts, those in
	// flight finish.
	RolloutPaused RolloutState = "paused"
	// RolloutHalted: it reached its policy's max_failures; Reason names the
	// failed machines.
	RolloutHalted RolloutState = "halted"
	// RolloutAborted: an operator aborted it, or a newer version superseded
	// it; rebuilds not yet power-cycled were canceled.
	RolloutAborted RolloutState = "aborted"
	// RolloutDone: every machine of its plan finished.
	RolloutDone RolloutState = "done"
)

// RolloutStates returns the rollout states, live ones first.
func RolloutStates() []RolloutState {
	return []RolloutState{RolloutPlanned, RolloutRunning, RolloutCanaryWait, RolloutPaused,
		RolloutHalted, RolloutAborted, RolloutDone}
}

// String returns the state's name, as stored.
func (s RolloutState) String() string { return string(s) }

// Valid reports whether s is one of RolloutStates.
func (s RolloutState) Valid() bool { return slices.Contains(RolloutStates(), s) }

// Live reports whether a rollout in state s may still start rebuilds.
func (s RolloutState) Live() bool {
	switch s {
	case RolloutPlanned, RolloutRunning, RolloutCanaryWait, RolloutPaused:
		return true
	}
	return false
}

// liveSQL lists the live states for SQL, as the index rollouts_one_live does.
const liveSQL = `('planned', 'running', 'canary-wait', 'paused')`

// Rollout is the rebuild of a site's outdated machines to one version, under
// the site's rollout policy, as stored.
type Rollout struct {
	ID     int64
	Site   string
	Target string // the commit it rolls out
	State  RolloutState
	// Policy is the site's policy when the rollout started, defaults
	// applied: a later config change does not change a running rollout.
	Policy      sites.RolloutPolicy
	Failures    int
	Reason      string // why it halted, was aborted, waits or finished so
	StartedBy   string
	ConfirmedBy string // who confirmed the canary; empty until someone did
	// Selection says which machines an operator picked for the rollout
	// (sites.Selection.String: "rack=r12"); empty for the whole site.
	Selection string
	Created   time.Time
	Updated   time.Time
	// Machines is the plan, in order, with each machine's rebuild.
	Machines []RolloutMachine
}

// RolloutMachine is one machine of a rollout's plan.
type RolloutMachine struct {
	Position int // 0-based place in the order
	Name     string
	MAC      sites.MAC
	Role     sites.Role
	Batch    int // machines of one batch start together
	Canary   bool
	// Skipped says why the machine was not rebuilt (no BMC, already on the
	// target); empty otherwise.
	Skipped string
	// Rebuild is the machine's rebuild once started, nil before.
	Rebuild *Rebuild
}

// Progress is the machine's state in the rollout: pending, skipped, or its
// rebuild's state.
func (m RolloutMachine) Progress() string {
	switch {
	case m.Skipped != "":
		return "skipped"
	case m.Rebuild == nil:
		return "pending"
	}
	return m.Rebuild.State.String()
}

// RolloutFilter selects rollouts; zero fields select all.
type RolloutFilter struct {
	Site  string
	ID    int64
	Live  bool // only live rollouts
	Limit int  // at most this many, newest first; 0 means 100
}

// policyJSON is a stored policy snapshot, named like the site file's fields.
type policyJSON struct {
	Start       string         `json:"start"`
	Canary      int            `json:"canary"`
	CanarySoak  sites.Duration `json:"canary_soak"`
	Soak        sites.Duration `json:"soak"`
	BatchSize   int            `json:"batch_size"`
	MaxFailures int            `json:"max_failures"`
	Timeouts    struct {
		PowerCycle sites.Duration `json:"power_cycle"`
		Booting    sites.Duration `json:"booting"`
		Config     sites.Duration `json:"config"`
		Booted     sites.Duration `json:"booted"`
		Stall      sites.Duration `json:"stall,omitempty"`
	} `json:"timeouts"`
}

func marshalPolicy(p sites.RolloutPolicy) (string, error) {
	j := policyJSON{Start: p.Start, Canary: p.Canary, CanarySoak: p.CanarySoak, Soak: p.Soak, BatchSize: p.BatchSize,
		MaxFailures: p.MaxFailures}
	j.Timeouts.PowerCycle, j.Timeouts.Booting, j.Timeouts.Config, j.Timeouts.Booted =
		p.Timeouts.PowerCycle, p.Timeouts.Booting, p.Timeouts.Config, p.Timeouts.Booted
	j.Timeouts.Stall = p.Timeouts.Stall
	b, err := json.Marshal(j)
	return string(b), err
}

func unmarshalPolicy(s string) (sites.RolloutPolicy, error) {
	var j policyJSON
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return sites.RolloutPolicy{}, fmt.Errorf("stored policy: %w", err)
	}
	return sites.RolloutPolicy{Start: j.Start, Canary: j.Canary, CanarySoak: j.CanarySoak, Soak: j.Soak, BatchSize: j.BatchSize,
		MaxFailures: j.MaxFailures, Timeouts: sites.StageTimeouts{PowerCycle: j.Timeouts.PowerCycle,
			Booting: j.Timeouts.Booting, Config: j.Timeouts.Config, Booted: j.Timeouts.Booted, Stall: j.Timeouts.Stall}}, nil
}

// CreateRollout stores ro, in state planned, with its plan ro.Machines, and
// returns it with its ID and times. It fails with ErrConflict, naming the
// live rollout, when the site has one.
func (db *DB) CreateRollout(ctx context.Context, ro Rollout) (Rollout, error) {
	policy, err := marshalPolicy(ro.Policy)
	if err != nil {
		return Rollout{}, err
	}
	err = db.do(ctx, func(t *tx) error {
		var id int64
		var state string
		err := t.queryRow(`SELECT id, state FROM rollouts WHERE site = ? AND state IN `+liveSQL, ro.Site).Scan(&id, &state)
		switch {
		case err == nil:
			return fmt.Errorf("site %s: rollout %d is %s: %w", ro.Site, id, state, ErrConflict)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		now := t.db().now()
		ro.State, ro.Created, ro.Updated = RolloutPlanned, now, now
		res, err := t.exec(`INSERT INTO rollouts (site, target_version, state, policy, reason, started_by, selection, created, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ro.Site, ro.Target, string(ro.State), policy, ro.Reason, ro.StartedBy, ro.Selection, fmtTime(now), fmtTime(now))
		if err != nil {
			return err
		}
		if ro.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		for i, m := range ro.Machines {
			ro.Machines[i].Position = i
			if _, err := t.exec(`INSERT INTO rollout_machines (rollout_id, position, machine, mac, role, batch, canary, skipped)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				ro.ID, i, m.Name, string(m.MAC), string(m.Role), m.Batch, boolInt(m.Canary), m.Skipped); err != nil {
				return fmt.Errorf("machine %s: %w", m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return Rollout{}, fmt.Errorf("create rollout of %s to %s: %w", ro.Site, ro.Target, err)
	}
	return ro, nil
}

// UpdateRollout stores ro's state, failures, reason and confirmation if the
// rollout is still in state from (compare and set), and returns it with its
// new update time. It fails with ErrConflict when the stored state is
// another.
func (db *DB) UpdateRollout(ctx context.Context, ro Rollout, from RolloutState) (Rollout, error) {
	if !ro.State.Valid() {
		return Rollout{}, fmt.Errorf("update rollout %d: invalid state %q", ro.ID, ro.State)
	}
	err := db.do(ctx, func(t *tx) error {
		ro.Updated = t.db().now()
		res, err := t.exec(`UPDATE rollouts SET state = ?, failures = ?, reason = ?, confirmed_by = ?, updated = ?
			WHERE id = ? AND state = ?`,
			string(ro.State), ro.Failures, ro.Reason, ro.ConfirmedBy, fmtTime(ro.Updated), ro.ID, string(from))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var cur string
		if err := t.queryRow(`SELECT state FROM rollouts WHERE id = ?`, ro.ID).Scan(&cur); err != nil {
			return err
		}
		return fmt.Errorf("rollout %d is %s, not %s: %w", ro.ID, cur, from, ErrConflict)
	})
	if err != nil {
		return Rollout{}, fmt.Errorf("update rollout %d of %s to %s: %w", ro.ID, ro.Site, ro.State, err)
	}
	return ro, nil
}

// StartRolloutMachine creates the rebuild r of the machine at position in
// rollout's plan and links it there, in one transaction: a machine of a plan
// gets at most one rebuild, whatever happens to the server. It fails with
// ErrConflict when the machine was started or skipped already, or has
// another rebuild in flight.
func (db *DB) StartRolloutMachine(ctx context.Context, rollout int64, position int, r Rebuild) (Rebuild, error) {
	r.RolloutID = rollout
	err := db.do(ctx, func(t *tx) error {
		var skipped string
		var rebuild sql.NullInt64
		if err := t.queryRow(`SELECT skipped, rebuild_id FROM rollout_machines WHERE rollout_id = ? AND position = ?`,
			rollout, position).Scan(&skipped, &rebuild); err != nil {
			return err
		}
		if skipped != "" || rebuild.Valid {
			return fmt.Errorf("machine %d of rollout %d was started or skipped already: %w", position, rollout, ErrConflict)
		}
		var err error
		if r, err = t.createRebuild(r); err != nil {
			return err
		}
		_, err = t.exec(`UPDATE rollout_machines SET rebuild_id = ? WHERE rollout_id = ? AND position = ?`, r.ID, rollout, position)
		return err
	})
	if err != nil {
		return Rebuild{}, fmt.Errorf("start %s in rollout %d: %w", r.Label(), rollout, err)
	}
	return r, nil
}

// SkipRolloutMachine marks the machine at position in rollout's plan as not
// to be rebuilt, with the reason. It fails with ErrConflict when the machine
// was started already.
func (db *DB) SkipRolloutMachine(ctx context.Context, rollout int64, position int, reason string) error {
	if reason == "" {
		return fmt.Errorf("skip machine %d of rollout %d: a reason is required", position, rollout)
	}
	err := db.do(ctx, func(t *tx) error {
		res, err := t.exec(`UPDATE rollout_machines SET skipped = ? WHERE rollout_id = ? AND position = ? AND rebuild_id IS NULL`,
			reason, rollout, position)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return fmt.Errorf("no machine %d not yet started in rollout %d: %w", position, rollout, ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("skip machine %d of rollout %d: %w", position, rollout, err)
	}
	return nil
}

const rolloutColumns = `id, site, target_version, state, policy, failures, reason, started_by, confirmed_by, selection, created, updated`

func scanRollout(s scanner) (Rollout, error) {
	var ro Rollout
	var state, policy string
	var created, updated sql.NullString
	err := s.Scan(&ro.ID, &ro.Site, &ro.Target, &state, &policy, &ro.Failures, &ro.Reason, &ro.StartedBy,
		&ro.ConfirmedBy, &ro.Selection, &created, &updated)
	if err != nil {
		return ro, err
	}
	ro.State = RolloutState(state)
	if ro.Policy, err = unmarshalPolicy(policy); err == nil {
		ro.Created, err = parseTime(created)
	}
	if err == nil {
		ro.Updated, err = parseTime(updated)
	}
	return ro, err
}

// Rollouts lists the rollouts f selects, newest first, each with its plan
// and the machines' rebuilds.
func (db *DB) Rollouts(ctx context.Context, f RolloutFilter) ([]Rollout, error) {
	var where []string
	var args []any
	if f.Site != "" {
		where, args = append(where, "site = ?"), append(args, f.Site)
	}
	if f.ID != 0 {
		where, args = append(where, "id = ?"), append(args, f.ID)
	}
	if f.Live {
		where = append(where, "state IN "+liveSQL)
	}
	q := `SELECT ` + rolloutColumns + ` FROM rollouts`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	ros, err := db.rollouts(ctx, q, append(args, limit(f.Limit))...)
	for i := 0; err == nil && i < len(ros); i++ {
		ros[i].Machines, err = db.rolloutMachines(ctx, ros[i].ID)
	}
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return ros, nil
}

func (db *DB) rollouts(ctx context.Context, q string, args ...any) ([]Rollout, error) {
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ros []Rollout
	for rows.Next() {
		ro, err := scanRollout(rows)
		if err != nil {
			return nil, err
		}
		ros = append(ros, ro)
	}
	return ros, rows.Err()
}

// rolloutMachines reads a rollout's plan and its machines' rebuilds (two
// queries, not a join: rebuild columns are scanned in one place).
func (db *DB) rolloutMachines(ctx context.Context, rollout int64) ([]RolloutMachine, error) {
	rows, err := db.query(ctx, `SELECT position, machine, mac, role, batch, canary, skipped, rebuild_id
		FROM rollout_machines WHERE rollout_id = ? ORDER BY position`, rollout)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ms []RolloutMachine
	ids := map[int64]int{} // rebuild ID -> index in ms
	for rows.Next() {
		var m RolloutMachine
		var mac, role string
		var rebuild sql.NullInt64
		if err := rows.Scan(&m.Position, &m.Name, &mac, &role, &m.Batch, &m.Canary, &m.Skipped, &rebuild); err != nil {
			return nil, err
		}
		m.MAC, m.Role = sites.MAC(mac), sites.Role(role)
		if rebuild.Valid {
			ids[rebuild.Int64] = len(ms)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return ms, nil
	}
	rs, err := db.Rebuilds(ctx, RebuildFilter{RolloutID: rollout, Limit: 10000})
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if i, ok := ids[r.ID]; ok {
			ms[i].Rebuild = &r
		}
	}
	return ms, nil
}

// boolInt stores a bool as SQLite does: 1 or 0.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
