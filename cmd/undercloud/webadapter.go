package main

import (
	"context"
	"errors"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/rebuild"
	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/web"
)

var (
	_ web.Sites    = siteSource{}
	_ web.Rebuilds = rebuilds{}
)

// siteSource adapts the tracker to web.Sites.
type siteSource struct {
	*sites.Tracker
	refresh chan<- bool
}

// Refresh asks the tracker's loop for a refresh without waiting for it; a
// refresh already asked for covers this one.
func (s siteSource) Refresh(retryRejected bool) {
	select {
	case s.refresh <- retryRejected:
	default:
	}
}

func (s siteSource) FetchStatus() sites.FetchStatus { return s.Repo.Status() }

// rebuilds adapts the rebuild engine to web.Rebuilds.
type rebuilds struct{ e *rebuild.Engine }

func (r rebuilds) Rebuild(ctx context.Context, req web.RebuildRequest) (web.RebuildView, error) {
	rq, err := r.e.Rebuild(ctx, rebuild.Request{Site: req.Site, Machine: req.Machine, Actor: req.Actor, Force: req.Force})
	v := rebuildView(rq.Rebuild)
	v.Overrode = rq.Overrode
	return v, err
}

func (r rebuilds) MachineRebuilds(ctx context.Context, mac sites.MAC) ([]web.RebuildView, error) {
	rbs, err := r.e.Rebuilds(ctx, inventory.RebuildFilter{MAC: mac})
	out := make([]web.RebuildView, len(rbs))
	for i, rb := range rbs {
		out[i] = rebuildView(rb)
	}
	return out, err
}

func (r rebuilds) Rollout(ctx context.Context, site string) (web.RolloutView, bool, error) {
	ro, err := r.e.Rollout(ctx, site)
	if errors.Is(err, inventory.ErrNotFound) {
		return web.RolloutView{}, false, nil
	}
	return rolloutView(ro), err == nil, err
}

func (r rebuilds) RolloutAction(ctx context.Context, site, action, actor string, sel sites.Selection) (web.RolloutView, error) {
	start := func(ctx context.Context, site, actor string) (inventory.Rollout, error) {
		return r.e.StartRollout(ctx, site, sel, actor)
	}
	act := map[string]func(context.Context, string, string) (inventory.Rollout, error){
		web.ActionStart: start, web.ActionPause: r.e.Pause, web.ActionResume: r.e.Resume,
		web.ActionAbort: r.e.Abort, web.ActionConfirm: r.e.Confirm,
	}[action]
	if act == nil {
		return web.RolloutView{}, errors.Join(web.ErrBadRequest, errors.New("unknown rollout action "+action))
	}
	ro, err := act(ctx, site, actor)
	return rolloutView(ro), err
}

func rebuildView(rb inventory.Rebuild) web.RebuildView {
	return web.RebuildView{ID: rb.ID, Site: rb.Site, Machine: rb.Machine, MAC: rb.MAC, Version: rb.Target,
		State: rb.State, Reason: rb.Reason, Actor: rb.RequestedBy, Created: rb.Created, Updated: rb.Updated}
}

func rolloutView(ro inventory.Rollout) web.RolloutView {
	v := web.RolloutView{ID: ro.ID, Site: ro.Site, Version: ro.Target, State: ro.State,
		Reason: ro.Reason, Failures: ro.Failures, Actor: ro.StartedBy, Selection: ro.Selection, Created: ro.Created, Updated: ro.Updated}
	for _, m := range ro.Machines {
		rm := web.RolloutMachine{Name: m.Name, MAC: m.MAC, Role: m.Role, Batch: m.Batch, State: m.Progress(), Reason: m.Skipped}
		if m.Rebuild != nil && m.Rebuild.Reason != "" {
			rm.Reason = m.Rebuild.Reason
		}
		v.Machines = append(v.Machines, rm)
	}
	return v
}
