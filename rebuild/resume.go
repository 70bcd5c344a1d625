package rebuild

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// resume logs, once as the engine starts, every rollout and rebuild it
// takes over from the inventory, so that after a restart the operator
// reads which ones it carries on and where each stood: "resuming rebuild 7
// of lab/lab-w1 (booting, target v2 (abcdef123456))". It changes nothing;
// the first pass moves them on.
func (e *Engine) resume(ctx context.Context) {
	log := e.log()
	ros, err := e.Store.Rollouts(ctx, inventory.RolloutFilter{Live: true, Limit: 10000})
	if err != nil {
		log.Warn("list the rollouts to resume", "err", err)
	}
	slices.SortFunc(ros, func(a, b inventory.Rollout) int { return cmp.Compare(a.ID, b.ID) })
	for _, ro := range ros {
		log.Info(fmt.Sprintf("resuming rollout %d of %s (%s, target %s)", ro.ID, ro.Site, ro.State, e.versionName(ro.Site, ro.Target)),
			"site", ro.Site, "rollout", ro.ID, "state", string(ro.State), "version", ro.Target)
	}
	rs, err := e.Store.Rebuilds(ctx, inventory.RebuildFilter{InFlight: true, Limit: 10000})
	if err != nil {
		log.Warn("list the rebuilds to resume", "err", err)
	}
	slices.SortFunc(rs, func(a, b inventory.Rebuild) int { return cmp.Compare(a.ID, b.ID) })
	for _, r := range rs {
		of := ""
		if r.RolloutID != 0 {
			of = fmt.Sprintf(", of rollout %d", r.RolloutID)
		}
		log.Info(fmt.Sprintf("resuming rebuild %d of %s/%s (%s, target %s%s)", r.ID, r.Site, r.Machine, r.State, e.versionName(r.Site, r.Target), of),
			"site", r.Site, "rebuild", r.ID, "machine", r.Machine, "mac", string(r.MAC), "state", string(r.State), "version", r.Target)
	}
}

// versionName names a commit the way the operator wrote it where the
// engine knows its tag (the site's active version): sites.Version.String.
func (e *Engine) versionName(site, commit string) string {
	if rel := e.Sites.Release(site); rel != nil && rel.Version.Commit == commit {
		return rel.Version.String()
	}
	return sites.Version{Commit: commit}.String()
}
