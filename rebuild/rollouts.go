package rebuild

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// StartRollout plans a rollout of site's active version over its outdated
// machines that sel picks (PlanMachines; the zero Selection picks them
// all), stores the plan and returns the rollout in state planned; the loop
// starts it at once. The machines sel leaves out keep their version. It
// fails with ErrNotFound for an unknown site or a machine sel names that
// the site does not have, and with ErrConflict when the site has a live
// rollout, sel names a machine its selector does not match, or sel picks
// no machine to rebuild.
func (e *Engine) StartRollout(ctx context.Context, site string, sel sites.Selection, actor string) (inventory.Rollout, error) {
	if err := e.check(); err != nil {
		return inventory.Rollout{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rel, err := e.release(site)
	if err != nil {
		return inventory.Rollout{}, err
	}
	if err := checkSelection(rel, sel); err != nil {
		return inventory.Rollout{}, err
	}
	if live, err := e.live(ctx, site); err == nil {
		return inventory.Rollout{}, fmt.Errorf("site %s: rollout %d to %s is already %s: %w",
			site, live.ID, sites.Version{Commit: live.Target}.Short(), live.State, ErrConflict)
	} else if !errors.Is(err, ErrNotFound) {
		return inventory.Rollout{}, err
	}
	plan, err := e.planSelection(ctx, rel, sel)
	if err != nil {
		return inventory.Rollout{}, err
	}
	if !slices.ContainsFunc(plan, func(m inventory.RolloutMachine) bool { return m.Skipped == "" }) {
		what := "no outdated machine"
		if !sel.IsZero() {
			what = fmt.Sprintf("%s selects no outdated machine", sel)
		}
		return inventory.Rollout{}, fmt.Errorf("site %s: %s that can be rebuilt at version %s (%d without a bmc): %w",
			site, what, rel.Version.Label(), len(plan), ErrConflict)
	}
	return e.createSelection(ctx, rel, sel, plan, actor)
}

// checkSelection returns why sel cannot pick machines of rel's site: it
// names machines the site does not have (ErrNotFound), or machines its
// selector does not match (ErrConflict).
func checkSelection(rel *sites.Release, sel sites.Selection) error {
	var unknown, unmatched []string
	for _, name := range sel.Machines {
		switch m := rel.Site.Machine(name); {
		case m == nil:
			unknown = append(unknown, name)
		case !sel.Selector.Matches(*m):
			unmatched = append(unmatched, name)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("site %s has no machine %s at version %s: %w",
			rel.Site.Name, strings.Join(unknown, ", "), rel.Version.Label(), ErrNotFound)
	}
	if len(unmatched) > 0 {
		return fmt.Errorf("site %s: machine %s does not match the selector %s: %w",
			rel.Site.Name, strings.Join(unmatched, ", "), sel.Selector, ErrConflict)
	}
	return nil
}

// plan returns the plan of a rollout of rel over all its site's outdated
// machines.
func (e *Engine) plan(ctx context.Context, rel *sites.Release) ([]inventory.RolloutMachine, error) {
	return e.planSelection(ctx, rel, sites.Selection{})
}

// planSelection returns the plan of a rollout of rel over the outdated
// machines sel picks.
func (e *Engine) planSelection(ctx context.Context, rel *sites.Release, sel sites.Selection) ([]inventory.RolloutMachine, error) {
	ms, err := e.Store.Machines(ctx, inventory.MachineFilter{Site: rel.Site.Name})
	if err != nil {
		return nil, err
	}
	current := map[sites.MAC]string{}
	for _, m := range ms {
		current[m.MAC] = m.CurrentVersion
	}
	return PlanMachines(rel.Site, sel, current, rel.Version.Commit, rel.Site.Rollout), nil
}

// create stores a rollout of rel over all its site's outdated machines.
func (e *Engine) create(ctx context.Context, rel *sites.Release, plan []inventory.RolloutMachine, actor string) (inventory.Rollout, error) {
	return e.createSelection(ctx, rel, sites.Selection{}, plan, actor)
}

// createSelection stores a rollout of rel with its plan, recording the
// selection the plan was made for.
func (e *Engine) createSelection(ctx context.Context, rel *sites.Release, sel sites.Selection, plan []inventory.RolloutMachine, actor string) (inventory.Rollout, error) {
	ro, err := e.Store.CreateRollout(ctx, inventory.Rollout{
		Site: rel.Site.Name, Target: rel.Version.Commit, Policy: rel.Site.Rollout.WithDefaults(),
		StartedBy: actor, Selection: sel.String(), Machines: plan,
	})
	if err != nil {
		return inventory.Rollout{}, err
	}
	e.log().Info("rollout planned", "rollout", ro.ID, "site", ro.Site, "version", ro.Target, "state", ro.State,
		"machines", len(plan), "selection", ro.Selection, "actor", actor)
	e.kick()
	return ro, nil
}

// Rollout returns the site's live rollout, or else its last one, with its
// plan and each machine's rebuild; ErrNotFound if it never had one.
func (e *Engine) Rollout(ctx context.Context, site string) (inventory.Rollout, error) {
	if err := e.check(); err != nil {
		return inventory.Rollout{}, err
	}
	ros, err := e.Store.Rollouts(ctx, inventory.RolloutFilter{Site: site, Limit: 1})
	if err != nil {
		return inventory.Rollout{}, err
	}
	if len(ros) == 0 {
		return inventory.Rollout{}, fmt.Errorf("site %s has no rollout: %w", site, ErrNotFound)
	}
	return ros[0], nil
}

// live returns the site's live rollout, or ErrNotFound.
func (e *Engine) live(ctx context.Context, site string) (inventory.Rollout, error) {
	ros, err := e.Store.Rollouts(ctx, inventory.RolloutFilter{Site: site, Live: true, Limit: 1})
	if err != nil {
		return inventory.Rollout{}, err
	}
	if len(ros) == 0 {
		return inventory.Rollout{}, fmt.Errorf("site %s has no rollout in progress: %w", site, ErrNotFound)
	}
	return ros[0], nil
}

// Pause stops the site's live rollout from starting rebuilds; those in
// flight finish. Pausing a paused rollout changes nothing.
func (e *Engine) Pause(ctx context.Context, site, actor string) (inventory.Rollout, error) {
	return e.control(ctx, site, actor, "paused", func(ro inventory.Rollout) (inventory.Rollout, error) {
		if ro.State != inventory.RolloutPaused {
			ro.State, ro.Reason = inventory.RolloutPaused, "paused by "+actor
		}
		return ro, nil
	})
}

// Resume lets a paused rollout go on where it stopped.
func (e *Engine) Resume(ctx context.Context, site, actor string) (inventory.Rollout, error) {
	return e.control(ctx, site, actor, "resumed", func(ro inventory.Rollout) (inventory.Rollout, error) {
		if ro.State != inventory.RolloutPaused {
			return ro, fmt.Errorf("site %s: rollout %d is %s, not paused: %w", site, ro.ID, ro.State, ErrConflict)
		}
		ro.State, ro.Reason = inventory.RolloutRunning, ""
		return ro, nil
	})
}

// Confirm lets a rollout waiting after its canary go on (also before its
// canary_soak has passed).
func (e *Engine) Confirm(ctx context.Context, site, actor string) (inventory.Rollout, error) {
	return e.control(ctx, site, actor, "confirmed", func(ro inventory.Rollout) (inventory.Rollout, error) {
		if ro.State != inventory.RolloutCanaryWait {
			return ro, fmt.Errorf("site %s: rollout %d is %s: no canary waits for a confirmation: %w", site, ro.ID, ro.State, ErrConflict)
		}
		ro.ConfirmedBy = actor
		return ro, nil
	})
}

// Abort stops the site's live rollout for good: its rebuilds not yet
// power-cycled are canceled, those past the power cycle finish, nothing
// new starts.
func (e *Engine) Abort(ctx context.Context, site, actor string) (inventory.Rollout, error) {
	return e.control(ctx, site, actor, "aborted", func(ro inventory.Rollout) (inventory.Rollout, error) {
		ro.State, ro.Reason = inventory.RolloutAborted, "aborted by "+actor
		return ro, nil
	})
}

// control applies an operator's action to the site's live rollout.
func (e *Engine) control(ctx context.Context, site, actor, what string, act func(inventory.Rollout) (inventory.Rollout, error)) (inventory.Rollout, error) {
	if err := e.check(); err != nil {
		return inventory.Rollout{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ro, err := e.live(ctx, site)
	if err != nil {
		return inventory.Rollout{}, err
	}
	next, err := act(ro)
	if err != nil {
		return inventory.Rollout{}, err
	}
	if next.State == ro.State && next.ConfirmedBy == ro.ConfirmedBy {
		return ro, nil
	}
	saved, err := e.saveRollout(ctx, next, ro.State)
	if err != nil {
		return inventory.Rollout{}, err
	}
	e.log().Info("rollout "+what, "rollout", ro.ID, "site", site, "version", ro.Target, "state", saved.State, "actor", actor)
	e.cancelRequested(ctx, saved)
	e.kick()
	return saved, nil
}

// cancelRequested cancels the rebuilds of a stopped rollout (halted or
// aborted) that have not been power-cycled. If the server stops before,
// take cancels them on the next start.
func (e *Engine) cancelRequested(ctx context.Context, ro inventory.Rollout) {
	if ro.State.Live() {
		return
	}
	for _, m := range ro.Machines {
		if m.Rebuild == nil || m.Rebuild.State != inventory.RebuildRequested {
			continue
		}
		next := *m.Rebuild
		next.State, next.StageStarted = inventory.RebuildCanceled, e.now()
		next.Reason = fmt.Sprintf("rollout %d %s before the power cycle", ro.ID, ro.State)
		if _, err := e.save(ctx, next, inventory.RebuildRequested); err != nil {
			e.log().Warn("cancel rebuild", "rebuild", next.ID, "site", ro.Site, "mac", next.MAC, "err", err)
		}
	}
}

// stepRollouts moves every live rollout; started reports whether it
// started or skipped a machine.
func (e *Engine) stepRollouts(ctx context.Context) (started bool, err error) {
	ros, err := e.Store.Rollouts(ctx, inventory.RolloutFilter{Live: true})
	if err != nil {
		return false, err
	}
	var errs []error
	for _, ro := range ros {
		moved, err := e.stepRollout(ctx, ro)
		started = started || moved
		if err != nil {
			errs = append(errs, fmt.Errorf("rollout %d of %s: %w", ro.ID, ro.Site, err))
		}
	}
	return started, errors.Join(errs...)
}

// stepRollout stores what Decide decides for ro and starts the machines it
// names.
func (e *Engine) stepRollout(ctx context.Context, ro inventory.Rollout) (bool, error) {
	sit, err := e.situation(ctx, ro)
	if err != nil {
		return false, err
	}
	d := Decide(sit)
	if d.State != ro.State || d.Reason != ro.Reason || d.Failures != ro.Failures {
		next := ro
		next.State, next.Reason, next.Failures = d.State, d.Reason, d.Failures
		saved, err := e.saveRollout(ctx, next, ro.State)
		if err != nil {
			return false, err
		}
		if saved.State != ro.State {
			log := e.log().With("rollout", ro.ID, "site", ro.Site, "version", ro.Target, "state", saved.State)
			if saved.State == inventory.RolloutHalted {
				log.Warn("rollout halted", "reason", saved.Reason)
			} else {
				log.Info("rollout "+saved.State.String(), "reason", saved.Reason)
			}
		}
		e.cancelRequested(ctx, saved)
	}
	moved := false
	for _, s := range d.Skip {
		if err := e.Store.SkipRolloutMachine(ctx, ro.ID, s.Position, s.Reason); err != nil {
			return moved, err
		}
		moved = true
	}
	for _, pos := range d.Start {
		i := slices.IndexFunc(ro.Machines, func(m inventory.RolloutMachine) bool { return m.Position == pos })
		m := ro.Machines[i]
		r, err := e.Store.StartRolloutMachine(ctx, ro.ID, pos, inventory.Rebuild{
			Site: ro.Site, Machine: m.Name, MAC: m.MAC, Role: m.Role, Target: ro.Target,
			RequestedBy: ro.StartedBy, StageStarted: e.now(),
		})
		if errors.Is(err, ErrConflict) {
			// Started outside the rollout since Decide looked: it waits.
			e.log().Info("rollout machine not started", "rollout", ro.ID, "site", ro.Site, "mac", m.MAC, "err", err)
			continue
		}
		if err != nil {
			return moved, err
		}
		moved = true
		e.log().Info("rebuild requested", "rebuild", r.ID, "rollout", ro.ID, "site", ro.Site, "mac", r.MAC,
			"role", r.Role, "version", r.Target, "state", r.State, "batch", m.Batch)
	}
	return moved, nil
}

// situation gathers what Decide needs to know of ro's site.
func (e *Engine) situation(ctx context.Context, ro inventory.Rollout) (Situation, error) {
	s := Situation{Rollout: ro, Now: e.now(), Down: map[sites.MAC]string{}, Busy: map[sites.MAC]string{},
		Current: map[sites.MAC]bool{}}
	ms, err := e.Store.Machines(ctx, inventory.MachineFilter{Site: ro.Site})
	if err != nil {
		return s, err
	}
	inflight, err := e.Store.Rebuilds(ctx, inventory.RebuildFilter{Site: ro.Site, InFlight: true, Limit: 10000})
	if err != nil {
		return s, err
	}
	own := map[int64]bool{}
	for _, m := range ro.Machines {
		if m.Rebuild != nil {
			own[m.Rebuild.ID] = true
		}
	}
	rebuilding := map[sites.MAC]inventory.Rebuild{}
	for _, r := range inflight {
		rebuilding[r.MAC] = r
		if !own[r.ID] {
			s.Busy[r.MAC] = fmt.Sprintf("rebuild %d, %s", r.ID, r.State)
		}
	}
	var masters []sites.Machine
	if rel := e.Sites.Release(ro.Site); rel != nil {
		masters = rel.Site.Masters()
	} else {
		for _, m := range ms {
			if m.Role == sites.RoleMaster && !m.Discovered {
				masters = append(masters, sites.Machine{Name: m.Name, MAC: m.MAC, Role: m.Role})
			}
		}
	}
	s.Masters = len(masters)
	state := map[sites.MAC]inventory.State{}
	for _, m := range ms {
		state[m.MAC] = m.State
		if m.CurrentVersion == ro.Target && m.State != inventory.StateFailed {
			s.Current[m.MAC] = true
		}
	}
	for _, m := range masters {
		if r, ok := rebuilding[m.MAC]; ok {
			s.Down[m.MAC] = fmt.Sprintf("%s rebuilding (rebuild %d, %s)", m.Name, r.ID, r.State)
		} else if st := state[m.MAC]; st == inventory.StateBooting || st == inventory.StateFailed {
			s.Down[m.MAC] = fmt.Sprintf("%s %s", m.Name, st)
		}
	}
	return s, nil
}
