package provision

import (
	"context"
	"fmt"
	"time"

	"github.com/undercloud/undercloud/images"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// ReleaseHistory is what ArtifactsToKeep asks the tracker.
type ReleaseHistory interface {
	Releases() []*sites.Release
	ReleaseAt(ctx context.Context, site, commit string) (*sites.Release, error)
}

// VersionHistory is what ArtifactsToKeep asks the inventory.
type VersionHistory interface {
	Machines(ctx context.Context, f inventory.MachineFilter) ([]inventory.Machine, error)
	Sites(ctx context.Context) ([]inventory.SiteState, error)
	SiteVersions(ctx context.Context, site string, n int) ([]inventory.SiteVersion, error)
}

var _ VersionHistory = (*inventory.DB)(nil)

// ArtifactsToKeep returns the digest of every artifact a machine may still
// boot: those of each site's active release, of every version a machine is
// assigned, runs or is meant to run, and of every version a boot token
// issued since cutoff may name (each accepted since cutoff, and the one
// active at cutoff). Any version it cannot read is an error, so that the
// caller removes nothing rather than something a machine needs.
func ArtifactsToKeep(ctx context.Context, rs ReleaseHistory, h VersionHistory, cutoff time.Time) (map[string]bool, error) {
	keep := map[string]bool{}
	for _, r := range rs.Releases() {
		images.Digests(keep, r)
	}
	seen := map[string]bool{}
	add := func(site, commit string) error {
		if site == "" || commit == "" || seen[site+"@"+commit] {
			return nil
		}
		seen[site+"@"+commit] = true
		r, err := rs.ReleaseAt(ctx, site, commit)
		if err != nil {
			return fmt.Errorf("artifacts of %s at %s: %w", site, commit, err)
		}
		images.Digests(keep, r)
		return nil
	}
	ms, err := h.Machines(ctx, inventory.MachineFilter{})
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		for _, v := range []string{m.AssignedVersion, m.CurrentVersion, m.DesiredVersion} {
			if err := add(m.Site, v); err != nil {
				return nil, fmt.Errorf("machine %s: %w", m.MAC, err)
			}
		}
	}
	ss, err := h.Sites(ctx)
	if err != nil {
		return nil, err
	}
	for _, st := range ss {
		vs, err := h.SiteVersions(ctx, st.Name, 10000) // newest first
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if v.Status == inventory.VersionRejected {
				continue
			}
			if err := add(st.Name, v.Version.Commit); err != nil {
				return nil, err
			}
			if v.ValidatedAt.Before(cutoff) {
				break // the version active at cutoff: older ones were superseded before
			}
		}
	}
	return keep, nil
}
