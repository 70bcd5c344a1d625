package rebuild

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// Activated is the hook the server calls when a site's active version
// changes, at start-up too.
//
// A live rollout of an older version is aborted, superseded: its rebuilds
// not yet power-cycled are canceled, those past the power cycle finish. It
// is not continued to the new version, because its plan, canary and
// failure count were made for the old one; a new rollout plans the machines
// outdated now, which include the old rollout's machines that did not get
// to boot the new version.
//
// Rebuilds in flight that have not been served their iPXE script yet will
// boot the new version, so they are retargeted to it; those that have been
// keep their target (the version in their script).
//
// Under rollout.start: auto, a rollout of the new version is started unless
// one of that version was started before (so that a halted one is not
// started again by every restart) or no machine is outdated.
func (e *Engine) Activated(ctx context.Context, site string) error {
	if err := e.check(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rel, err := e.release(site)
	if err != nil {
		return err
	}
	target := rel.Version.Commit
	ros, err := e.Store.Rollouts(ctx, inventory.RolloutFilter{Site: site, Limit: 1000})
	if err != nil {
		return fmt.Errorf("activate %s on %s: %w", rel.Version.Short(), site, err)
	}
	var errs []error
	for _, ro := range ros {
		if !ro.State.Live() || ro.Target == target {
			continue
		}
		next := ro
		next.State, next.Reason = inventory.RolloutAborted, "superseded by version "+rel.Version.Label()
		saved, err := e.saveRollout(ctx, next, ro.State)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.log().Info("rollout aborted", "rollout", ro.ID, "site", site, "version", ro.Target, "state", saved.State, "reason", saved.Reason)
		e.cancelRequested(ctx, saved)
	}
	errs = append(errs, e.retarget(ctx, rel))
	if rel.Site.Rollout.WithDefaults().Start == "auto" &&
		!slices.ContainsFunc(ros, func(ro inventory.Rollout) bool { return ro.Target == target }) {
		plan, err := e.plan(ctx, rel)
		if err == nil && slices.ContainsFunc(plan, func(m inventory.RolloutMachine) bool { return m.Skipped == "" }) {
			_, err = e.create(ctx, rel, plan, "auto")
		}
		errs = append(errs, err)
	}
	e.kick()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("activate %s on %s: %w", rel.Version.Short(), site, err)
	}
	return nil
}

// retarget points the rebuilds of rel's site that will boot rel's version
// at it: those in power-cycling or booting not yet served a script.
// Requested ones are targeted when their power cycle starts.
func (e *Engine) retarget(ctx context.Context, rel *sites.Release) error {
	rs, err := e.Store.Rebuilds(ctx, inventory.RebuildFilter{Site: rel.Site.Name, InFlight: true, Limit: 10000})
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rs {
		if r.Target == rel.Version.Commit ||
			(r.State != inventory.RebuildPowerCycling && r.State != inventory.RebuildBooting) {
			continue
		}
		since := r.StageStarted
		if r.State == inventory.RebuildBooting && !r.PowerCycledAt.IsZero() {
			since = r.PowerCycledAt
		}
		evs, err := e.Store.EventsSince(ctx, r.MAC, since, 0, maxEvents)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if slices.ContainsFunc(evs, func(ev inventory.Event) bool { return ev.Kind == event.IPXEScript }) {
			continue
		}
		next := r
		next.Target = rel.Version.Commit
		if _, err := e.save(ctx, next, r.State); err != nil {
			errs = append(errs, err)
			continue
		}
		e.log().Info("rebuild retargeted to the active version", "rebuild", r.ID, "site", r.Site, "mac", r.MAC,
			"version", next.Target, "state", r.State, "was", r.Target)
	}
	return errors.Join(errs...)
}
