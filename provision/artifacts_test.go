package provision

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// keepReleases has one release per commit; its image's kernel is named
// after the commit.
type keepReleases struct {
	active []string // site@commit
	broken string   // a commit ReleaseAt fails on
}

func keepRelease(commit string) *sites.Release {
	a := sites.Artifact{SHA256: strings.Repeat(commit[:1], 64)}
	return &sites.Release{Image: &sites.Image{Artifacts: sites.Artifacts{Kernel: a, Initrd: a}}, Version: sites.Version{Commit: commit}}
}

func (f keepReleases) Releases() []*sites.Release {
	var out []*sites.Release
	for _, c := range f.active {
		out = append(out, keepRelease(c))
	}
	return out
}

func (f keepReleases) ReleaseAt(_ context.Context, site, commit string) (*sites.Release, error) {
	if commit == f.broken {
		return nil, errors.New("not in the mirror")
	}
	return keepRelease(commit), nil
}

type fakeHistory struct {
	machines []inventory.Machine
	versions []inventory.SiteVersion // newest first, site lab
}

func (f fakeHistory) Machines(context.Context, inventory.MachineFilter) ([]inventory.Machine, error) {
	return f.machines, nil
}

func (f fakeHistory) Sites(context.Context) ([]inventory.SiteState, error) {
	return []inventory.SiteState{{Name: "lab"}}, nil
}

func (f fakeHistory) SiteVersions(context.Context, string, int) ([]inventory.SiteVersion, error) {
	return f.versions, nil
}

// The artifacts kept are those of every version a machine may still boot:
// active, assigned, current or desired on a machine, accepted since the
// cutoff, and the one active at the cutoff; not older superseded ones nor
// rejected ones.
func TestArtifactKeep(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cutoff := now.Add(-24 * time.Hour)
	v := func(commit string, status inventory.VersionStatus, age time.Duration) inventory.SiteVersion {
		return inventory.SiteVersion{Site: "lab", Version: sites.Version{Commit: commit}, Status: status, ValidatedAt: now.Add(-age)}
	}
	h := fakeHistory{
		machines: []inventory.Machine{
			{Site: "lab", AssignedVersion: "a1", CurrentVersion: "c1", DesiredVersion: "d1"},
			{Discovered: true},
		},
		versions: []inventory.SiteVersion{
			v("d1", inventory.VersionActive, time.Hour),
			v("r1", inventory.VersionRejected, 2*time.Hour),
			v("s1", inventory.VersionSuperseded, 3*time.Hour),  // accepted within the window
			v("e1", inventory.VersionSuperseded, 30*time.Hour), // active at the cutoff
			v("o1", inventory.VersionSuperseded, 40*time.Hour), // superseded before the cutoff
		},
	}
	keep, err := ArtifactsToKeep(context.Background(), keepReleases{active: []string{"d1"}}, h, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, c := range []string{"a", "c", "d", "s", "e"} {
		want[strings.Repeat(c, 64)] = true
	}
	if diff := cmp.Diff(want, keep); diff != "" {
		t.Errorf("keep (-want +got):\n%s", diff)
	}
	// A version that cannot be read stops the collection: nothing is
	// removed rather than something a machine needs.
	if _, err := ArtifactsToKeep(context.Background(), keepReleases{active: []string{"d1"}, broken: "a1"}, h, cutoff); err == nil {
		t.Error("artifactKeep succeeded without the artifacts of an assigned version")
	}
}
