package rebuild

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// The master quorum rule. etcd runs on every master and needs a majority of
// them up to accept a write, so at most floor((masters-1)/2) masters may be
// down at once, counting the one about to be rebuilt. A site with one
// master may rebuild it: it cannot keep quorum through any reboot anyway.
// A site with two can never take one down without losing quorum. Rollouts
// (Decide) and one-off rebuilds (Engine.Rebuild) both ask quorumBlock; only
// what counts as down differs, and each caller says.

// quorumBlock returns why master candidate of a site with masters masters
// may not go down now, "" if it may. down holds the masters down already,
// with why ("lab-m3 failed"); the candidate's own entry, if any, is not
// counted twice. It is pure.
func quorumBlock(masters int, down map[sites.MAC]string, candidate sites.MAC) string {
	if masters <= 1 {
		return ""
	}
	var others []string
	for mac, why := range down {
		if mac != candidate {
			others = append(others, why)
		}
	}
	if len(others)+1 <= (masters-1)/2 {
		return ""
	}
	slices.Sort(others)
	why := fmt.Sprintf("rebuilding it would leave %d of %d masters up (etcd needs %d)",
		max(masters-len(others)-1, 0), masters, masters/2+1)
	if len(others) > 0 {
		why += ": " + strings.Join(others, ", ")
	}
	return why
}

// quorumNever reports whether a master of a site with masters masters can
// never go down without breaking quorum, even with every other master up.
func quorumNever(masters int) bool {
	return quorumBlock(masters, nil, "") != ""
}

// oneOffDown returns the masters that are down for a one-off rebuild, with
// why, naming each master: those with a rebuild in flight (inflight, the
// site's), and those not provisioned on their assigned version by the
// inventory (ms, by MAC): booting, failed, never booted, or last booted on
// another version than the one assigned. Stricter than a rollout's view
// (which counts only booting and failed machines): an operator acting by
// hand is stopped by anything that is not plainly up, and can force. It is
// pure.
func oneOffDown(masters []sites.Machine, ms map[sites.MAC]inventory.Machine, inflight []inventory.Rebuild) map[sites.MAC]string {
	rebuilding := map[sites.MAC]inventory.Rebuild{}
	for _, r := range inflight {
		rebuilding[r.MAC] = r
	}
	down := map[sites.MAC]string{}
	for _, m := range masters {
		im, seen := ms[m.MAC]
		switch r, busy := rebuilding[m.MAC]; {
		case busy:
			down[m.MAC] = fmt.Sprintf("%s rebuilding (rebuild %d, %s)", m.Name, r.ID, r.State)
		case !seen:
			down[m.MAC] = m.Name + " not in the inventory"
		case im.State == inventory.StateKnown:
			down[m.MAC] = m.Name + " never booted"
		case im.State != inventory.StateProvisioned:
			down[m.MAC] = fmt.Sprintf("%s %s", m.Name, im.State)
		case im.AssignedVersion != "" && im.CurrentVersion != im.AssignedVersion:
			down[m.MAC] = fmt.Sprintf("%s runs %s, not its assigned %s", m.Name,
				sites.Version{Commit: im.CurrentVersion}.Short(), sites.Version{Commit: im.AssignedVersion}.Short())
		}
	}
	return down
}

// oneOffQuorum returns why a one-off rebuild of master m of site, whose
// active release is rel, breaks the quorum rule; "" if it does not (or m is
// no master).
func (e *Engine) oneOffQuorum(ctx context.Context, site string, rel *sites.Release, m sites.Machine) (string, error) {
	if m.Role != sites.RoleMaster {
		return "", nil
	}
	ims, err := e.Store.Machines(ctx, inventory.MachineFilter{Site: site})
	if err != nil {
		return "", err
	}
	inflight, err := e.Store.Rebuilds(ctx, inventory.RebuildFilter{Site: site, InFlight: true, Limit: 10000})
	if err != nil {
		return "", err
	}
	byMAC := make(map[sites.MAC]inventory.Machine, len(ims))
	for _, im := range ims {
		byMAC[im.MAC] = im
	}
	masters := rel.Site.Masters()
	why := quorumBlock(len(masters), oneOffDown(masters, byMAC, inflight), m.MAC)
	if why == "" {
		return "", nil
	}
	return fmt.Sprintf("%s/%s is a master: %s", site, m.Name, why), nil
}
