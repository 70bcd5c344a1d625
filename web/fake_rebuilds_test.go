package web

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// fakeRebuilds stands for the rebuild engine, which is not part of this
// package: it keeps rebuilds and rollouts in memory with the engine's
// rules as the API promises them (one rebuild per machine at a time, one
// rollout per site, actions valid by state).
type fakeRebuilds struct {
	db    *inventory.DB
	sites Sites
	now   func() time.Time

	mu       sync.Mutex
	next     int64
	rebuilds []RebuildView
	rollouts map[string]*RolloutView
	// quorum holds, by "site/machine", why the master quorum rule refuses
	// a rebuild: the engine's rule is the engine's to test; this package
	// tests what reaches the operator and the audit log.
	quorum map[string]string
}

func final(s RebuildState) bool {
	return s == inventory.RebuildDone || s == inventory.RebuildFailed || s == inventory.RebuildCanceled
}

func (r *fakeRebuilds) Rebuild(ctx context.Context, req RebuildRequest) (RebuildView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	site, machine, actor := req.Site, req.Machine, req.Actor
	rel := r.sites.Release(site)
	if rel == nil {
		return RebuildView{}, fmt.Errorf("site %s has no active version: %w", site, ErrConflict)
	}
	m := rel.Site.Machine(machine)
	if m == nil {
		return RebuildView{}, fmt.Errorf("site %s declares no machine %s: %w", site, machine, ErrNotFound)
	}
	for _, rb := range r.rebuilds {
		if rb.MAC == m.MAC && !final(rb.State) {
			return RebuildView{}, fmt.Errorf("machine %s is already rebuilding (rebuild %d, %s): %w", machine, rb.ID, rb.State, ErrConflict)
		}
	}
	block := r.quorum[site+"/"+machine]
	if block != "" && !req.Force {
		return RebuildView{}, fmt.Errorf("%s; use --force to override: %w", block, ErrConflict)
	}
	r.next++
	now := r.now()
	rb := RebuildView{ID: r.next, Site: site, Machine: machine, MAC: m.MAC, Version: rel.Version.Commit,
		State: inventory.RebuildRequested, Actor: actor, Created: now, Updated: now}
	r.rebuilds = append(r.rebuilds, rb)
	rb.Overrode = block
	return rb, nil
}

func (r *fakeRebuilds) MachineRebuilds(ctx context.Context, mac sites.MAC) ([]RebuildView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []RebuildView
	for _, rb := range r.rebuilds {
		if rb.MAC == mac {
			out = append(out, rb)
		}
	}
	slices.Reverse(out)
	return out, nil
}

func (r *fakeRebuilds) Rollout(ctx context.Context, site string) (RolloutView, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ro, ok := r.rollouts[site]
	if !ok {
		return RolloutView{}, false, nil
	}
	return *ro, true, nil
}

func (r *fakeRebuilds) RolloutAction(ctx context.Context, site, action, actor string, sel sites.Selection) (RolloutView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.rollouts[site]
	if action == ActionStart {
		if cur != nil && !cur.Done() {
			return RolloutView{}, fmt.Errorf("a rollout of %s is already %s: %w", site, cur.State, ErrConflict)
		}
		rel := r.sites.Release(site)
		if rel == nil {
			return RolloutView{}, fmt.Errorf("site %s has no active version: %w", site, ErrConflict)
		}
		for _, name := range sel.Machines {
			if rel.Site.Machine(name) == nil {
				return RolloutView{}, fmt.Errorf("site %s has no machine %s: %w", site, name, ErrNotFound)
			}
		}
		all, err := r.db.Machines(ctx, inventory.MachineFilter{Site: site, Outdated: true})
		if err != nil {
			return RolloutView{}, err
		}
		var ms []inventory.Machine // the outdated machines sel picks, by their site config
		for _, m := range all {
			if sm := rel.Site.Machine(m.Name); sm != nil && sel.Matches(*sm) {
				ms = append(ms, m)
			}
		}
		if len(ms) == 0 {
			return RolloutView{}, fmt.Errorf("site %s: %s selects no outdated machine: %w", site, sel, ErrConflict)
		}
		r.next++
		now := r.now()
		ro := &RolloutView{ID: r.next, Site: site, Version: rel.Version.Commit, State: inventory.RolloutCanaryWait,
			Actor: actor, Selection: sel.String(), Created: now, Updated: now, Machines: []RolloutMachine{}}
		for i, m := range ms {
			state := "pending"
			if i == 0 {
				state = string(inventory.RebuildDone)
			}
			ro.Machines = append(ro.Machines, RolloutMachine{Name: m.Name, MAC: m.MAC, Role: m.Role, Batch: i, State: state})
		}
		if r.rollouts == nil {
			r.rollouts = map[string]*RolloutView{}
		}
		r.rollouts[site] = ro
		return *ro, nil
	}
	if cur == nil {
		return RolloutView{}, fmt.Errorf("site %s has no rollout to %s: %w", site, action, ErrNotFound)
	}
	from := map[string][]RolloutState{
		ActionPause:   {inventory.RolloutRunning, inventory.RolloutCanaryWait},
		ActionResume:  {inventory.RolloutPaused, inventory.RolloutHalted},
		ActionAbort:   {inventory.RolloutPlanned, inventory.RolloutRunning, inventory.RolloutCanaryWait, inventory.RolloutPaused, inventory.RolloutHalted},
		ActionConfirm: {inventory.RolloutCanaryWait},
	}[action]
	to := map[string]RolloutState{ActionPause: inventory.RolloutPaused, ActionResume: inventory.RolloutRunning, ActionAbort: inventory.RolloutAborted,
		ActionConfirm: inventory.RolloutRunning}[action]
	if !slices.Contains(from, cur.State) {
		return RolloutView{}, fmt.Errorf("cannot %s the rollout of %s: it is %s: %w", action, site, cur.State, ErrConflict)
	}
	cur.State, cur.Updated = to, r.now()
	return *cur, nil
}
