package rebuild

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/power"
	"github.com/undercloud/undercloud/sites"
)

// maxEvents bounds the events read for one rebuild in one step; the rest
// are read on the next.
const maxEvents = 1000

// Request is an operator's request for a one-off rebuild.
type Request struct {
	Site    string
	Machine string // its name in the site config
	Actor   string // who asks, for the rebuild's record and the log
	// Force overrides the master quorum rule (see quorumBlock): the rebuild
	// is created even if it leaves fewer than a majority of the site's
	// masters up. The override is logged at Warn with the masters down.
	Force bool
}

// Requested is what Rebuild created.
type Requested struct {
	Rebuild inventory.Rebuild
	// Overrode says why the master quorum rule would have refused the
	// rebuild, naming the masters down, when Force overrode it; "" when the
	// rule allowed it. Callers put it in their audit entry.
	Overrode string
}

// Rebuild requests a one-off rebuild of machine req.Machine of req.Site, to
// the site's active version, and returns it in state requested; the loop
// takes it at once. A master is held to the quorum rule as a one-off:
// down counts every other master with a rebuild in flight or not
// provisioned on its assigned version (oneOffDown), and a rebuild that
// would leave fewer than a majority up is refused unless req.Force. It
// fails with ErrNotFound for an unknown site or machine, and with
// ErrConflict when the machine is rebuilding already, cannot be rebuilt (no
// BMC), or the quorum rule refuses it (the error says which masters are
// down and why).
func (e *Engine) Rebuild(ctx context.Context, req Request) (Requested, error) {
	if err := e.check(); err != nil {
		return Requested{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	site := req.Site
	rel, err := e.release(site)
	if err != nil {
		return Requested{}, err
	}
	m := rel.Site.Machine(req.Machine)
	if m == nil {
		return Requested{}, fmt.Errorf("%s/%s: no such machine at version %s: %w", site, req.Machine, rel.Version.Label(), ErrNotFound)
	}
	if err := e.rebuildable(site, *m); err != nil {
		return Requested{}, err
	}
	block, err := e.oneOffQuorum(ctx, site, rel, *m)
	if err != nil {
		return Requested{}, err
	}
	if block != "" && !req.Force {
		return Requested{}, fmt.Errorf("%s; use --force to override: %w", block, ErrConflict)
	}
	r, err := e.Store.CreateRebuild(ctx, inventory.Rebuild{
		Site: site, Machine: m.Name, MAC: m.MAC, Role: m.Role, Target: rel.Version.Commit,
		RequestedBy: req.Actor, StageStarted: e.now(),
	})
	if err != nil {
		return Requested{}, err
	}
	if block != "" {
		e.log().Warn("rebuild forced past the master quorum rule", "rebuild", r.ID, "site", site, "mac", r.MAC,
			"role", r.Role, "actor", req.Actor, "overrode", block)
	}
	e.log().Info("rebuild requested", "rebuild", r.ID, "site", site, "mac", r.MAC, "role", r.Role,
		"version", r.Target, "state", r.State, "actor", req.Actor, "force", req.Force)
	e.kick()
	return Requested{Rebuild: r, Overrode: block}, nil
}

// rebuildable says why machine m of site cannot be rebuilt, or nil.
func (e *Engine) rebuildable(site string, m sites.Machine) error {
	if m.BMC == nil {
		return fmt.Errorf("%s/%s has no bmc in its site config, so it cannot be power-cycled: %w", site, m.Name, ErrConflict)
	}
	if _, err := e.Power(m); err != nil {
		// Not the address: it may hold credentials (power.New refuses
		// those without echoing them).
		return fmt.Errorf("%s/%s cannot be power-cycled: bmc %s: %v: %w", site, m.Name, m.BMC.Driver, err, ErrConflict)
	}
	return nil
}

// Rebuilds lists the rebuilds f selects, newest first.
func (e *Engine) Rebuilds(ctx context.Context, f inventory.RebuildFilter) ([]inventory.Rebuild, error) {
	if e.Store == nil {
		return nil, e.check()
	}
	return e.Store.Rebuilds(ctx, f)
}

// RebuildPending reports whether mac's next network boot must run its image
// rather than its local disk: a rebuild of it is in flight and its config
// has not been served yet. Once an install image has fetched its config it
// installs, and the reboot that follows must boot the installed disk, not
// the installer again. The boot path calls it; an error reads as false (the
// disk boots, the rebuild times out and says so) rather than risking an
// install loop.
func (e *Engine) RebuildPending(ctx context.Context, mac sites.MAC) bool {
	if e.Store == nil {
		return false
	}
	rs, err := e.Store.Rebuilds(ctx, inventory.RebuildFilter{MAC: mac, InFlight: true, Limit: 1})
	if err != nil {
		e.log().Warn("rebuild pending", "mac", mac, "err", err)
		return false
	}
	if len(rs) == 0 {
		return false
	}
	switch rs[0].State {
	case inventory.RebuildRequested, inventory.RebuildPowerCycling, inventory.RebuildBooting:
		return true
	}
	return false
}

// step moves one rebuild in flight.
func (e *Engine) step(ctx context.Context, r inventory.Rebuild) error {
	switch r.State {
	case inventory.RebuildRequested:
		return e.take(ctx, r)
	case inventory.RebuildPowerCycling:
		if e.cycling[r.ID] {
			return nil // its BMC call runs
		}
		return e.resumeCycle(ctx, r)
	}
	return e.follow(ctx, r)
}

// take starts a requested rebuild: unless its rollout stopped meanwhile
// (perhaps just before a restart), it power-cycles the machine.
func (e *Engine) take(ctx context.Context, r inventory.Rebuild) error {
	if r.RolloutID != 0 {
		ros, err := e.Store.Rollouts(ctx, inventory.RolloutFilter{ID: r.RolloutID, Limit: 1})
		if err != nil {
			return err
		}
		if len(ros) == 1 && !ros[0].State.Live() {
			next := r
			next.State, next.StageStarted = inventory.RebuildCanceled, e.now()
			next.Reason = fmt.Sprintf("rollout %d is %s", r.RolloutID, ros[0].State)
			_, err := e.save(ctx, next, r.State)
			return err
		}
	}
	return e.powerCycle(ctx, r, r.State)
}

// resumeCycle handles a rebuild left in power-cycling by a previous process,
// which stopped around the BMC call: if the machine showed a boot step
// since, the cycle happened; otherwise it never booted and is cycled again.
func (e *Engine) resumeCycle(ctx context.Context, r inventory.Rebuild) error {
	evs, err := e.Store.EventsSince(ctx, r.MAC, r.StageStarted, r.LastEvent.ID, maxEvents)
	if err != nil {
		return err
	}
	if next, changed := Advance(r, evs, e.now(), e.timeouts(r.Site)); changed {
		saved, err := e.save(ctx, next, r.State)
		if err != nil {
			return err
		}
		return e.follow(ctx, saved)
	}
	e.log().Info("power-cycling again: the server stopped during the BMC call and the machine has not booted since",
		"rebuild", r.ID, "site", r.Site, "mac", r.MAC, "role", r.Role)
	return e.powerCycle(ctx, r, r.State)
}

// powerCycle stores r, which is stored in state from, in power-cycling,
// then calls the BMC in the background; the result is stored when the BMC
// answers. The target is fixed here: the site's active version, which is
// what the machine's boot will be served. r may come from Advance already
// in power-cycling, with the reason of a cycle made again for a stalled
// boot (see stalled).
func (e *Engine) powerCycle(ctx context.Context, r inventory.Rebuild, from inventory.RebuildState) error {
	fail := func(reason string) error {
		next := r
		next.State, next.Reason, next.StageStarted = inventory.RebuildFailed, reason, e.now()
		_, err := e.save(ctx, next, from)
		return err
	}
	rel := e.Sites.Release(r.Site)
	if rel == nil {
		return fail(fmt.Sprintf("site %s has no active version", r.Site))
	}
	m := rel.Site.MachineByMAC(r.MAC)
	if m == nil {
		return fail(fmt.Sprintf("%s (%s) is not in the site config at version %s", r.Label(), r.MAC, rel.Version.Label()))
	}
	if m.BMC == nil {
		return fail(fmt.Sprintf("%s has no bmc in the site config at version %s", r.Label(), rel.Version.Label()))
	}
	drv, err := e.Power(*m)
	if err != nil {
		return fail(fmt.Sprintf("bmc %s: %v", m.BMC.Driver, err))
	}
	next := r
	next.State, next.StageStarted = inventory.RebuildPowerCycling, e.now()
	if next.Target != rel.Version.Commit {
		e.log().Info("rebuild retargeted to the active version", "rebuild", r.ID, "site", r.Site, "mac", r.MAC,
			"version", rel.Version.Commit, "requested", r.Target)
		next.Target = rel.Version.Commit
	}
	saved, err := e.save(ctx, next, from)
	if err != nil {
		return err
	}
	if from != saved.State && Attempt(saved) > 1 {
		e.log().Info("power-cycling again: the boot stalled", "rebuild", saved.ID, "site", saved.Site, "mac", saved.MAC,
			"role", saved.Role, "reason", saved.Reason)
	}
	if e.cycling == nil {
		e.cycling = map[int64]bool{}
	}
	e.cycling[saved.ID] = true
	e.cycles.Add(1)
	go e.runCycle(ctx, saved, drv, e.timeouts(r.Site).PowerCycle.Std())
	return nil
}

// runCycle makes the BMC call of rebuild r, bounded by timeout, and stores
// its result: booting from the time the BMC accepted, or failed with the
// BMC's error.
func (e *Engine) runCycle(ctx context.Context, r inventory.Rebuild, drv power.Driver, timeout time.Duration) {
	defer e.cycles.Done()
	defer e.kick()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	err := power.PXEReboot(cctx, drv)
	overran := errors.Is(cctx.Err(), context.DeadlineExceeded)
	cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.cycling, r.ID)
	if err != nil && ctx.Err() != nil {
		return // shutting down: the next start finds it in power-cycling and decides
	}
	// Read again: Activated may have retargeted it during the call.
	if cur, err := e.current(ctx, r); err == nil {
		r = cur
	}
	next := r
	now := e.now()
	switch {
	case err == nil:
		next.State, next.PowerCycledAt, next.StageStarted = inventory.RebuildBooting, now, now
	case overran:
		next.State, next.StageStarted = inventory.RebuildFailed, now
		next.Reason = fmt.Sprintf("the bmc did not accept the power cycle within %s: %v", timeout, err)
	default:
		next.State, next.StageStarted = inventory.RebuildFailed, now
		next.Reason = "power cycle failed: " + err.Error()
	}
	// Stored even when ctx ended meanwhile: Run waits for this call, and a
	// lost booting would make the next start cycle the machine again.
	if _, err := e.save(context.WithoutCancel(ctx), next, r.State); err != nil {
		e.log().Error("store power cycle result", "rebuild", r.ID, "site", r.Site, "mac", r.MAC, "state", next.State, "err", err)
	}
}

// follow advances a rebuild past its power cycle from the boot events
// stored since, one transition at a time.
func (e *Engine) follow(ctx context.Context, r inventory.Rebuild) error {
	since := r.PowerCycledAt
	if since.IsZero() {
		since = r.StageStarted
	}
	evs, err := e.Store.EventsSince(ctx, r.MAC, since, r.LastEvent.ID, maxEvents)
	if err != nil {
		return err
	}
	// A booted report completes the rebuild only with the trail of its boot,
	// whose script and config events were consumed before it came.
	trail, err := e.Store.BootTrail(ctx, r.MAC, r.Target, since, maxTrail)
	if err != nil {
		return err
	}
	evs = withTrail(evs, trail, r.LastEvent.ID)
	t := e.timeouts(r.Site)
	// Each round moves a state or consumes events; the bound is a guard.
	for range len(evs) + 8 {
		next, changed := Advance(r, evs, e.now(), t)
		if !changed {
			return nil
		}
		if next.State == inventory.RebuildPowerCycling {
			// The boot stalled: Advance decided, the BMC call is ours.
			return e.powerCycle(ctx, next, r.State)
		}
		if r, err = e.save(ctx, next, r.State); err != nil {
			return err
		}
		if !r.State.InFlight() {
			return nil
		}
	}
	return nil
}

// maxTrail bounds the trail events read for one rebuild: a few per boot
// (script, config, booted report), and a machine boots a few times at most
// within a rebuild's stages.
const maxTrail = 100

// withTrail adds to evs, the events after seen, the events of trail seen
// already, in ID order. A later trail event is in evs, or beyond the read's
// bound and read next time: adding it now would skip the events before it.
func withTrail(evs, trail []inventory.Event, seen int64) []inventory.Event {
	for _, ev := range trail {
		if ev.ID <= seen {
			evs = append(evs, ev)
		}
	}
	slices.SortFunc(evs, func(a, b inventory.Event) int { return cmp.Compare(a.ID, b.ID) })
	return evs
}

// current returns the stored rebuild r, or an error if it is no longer in
// flight.
func (e *Engine) current(ctx context.Context, r inventory.Rebuild) (inventory.Rebuild, error) {
	rs, err := e.Store.Rebuilds(context.WithoutCancel(ctx), inventory.RebuildFilter{MAC: r.MAC, InFlight: true, Limit: 1})
	if err != nil {
		return r, err
	}
	if len(rs) == 0 || rs[0].ID != r.ID {
		return r, fmt.Errorf("rebuild %d of %s is no longer in flight: %w", r.ID, r.Label(), ErrNotFound)
	}
	return rs[0], nil
}
