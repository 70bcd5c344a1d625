package inventory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
)

func version(commit string, tags ...string) sites.Version {
	return sites.Version{Commit: commit, Ref: "main", Tags: tags, Message: "change " + commit, Author: "ops <ops@example.com>",
		Time: time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)}
}

func TestSiteVersions(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	bad := sites.Problems{{File: "sites/lab/site.yaml", Field: "machines[1].ip", Line: 12, Message: "outside the subnet"}}

	// status returns commit -> status of lab's versions.
	status := func() map[string]VersionStatus {
		t.Helper()
		vs, err := db.SiteVersions(ctx, "lab", 0)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]VersionStatus{}
		for _, v := range vs {
			m[v.Version.Commit] = v.Status
		}
		return m
	}
	active := func() string {
		t.Helper()
		s, err := db.Site(ctx, "lab")
		if err != nil {
			t.Fatal(err)
		}
		if s.Active == nil {
			return ""
		}
		return s.Active.Version.Commit
	}
	steps := []struct {
		commit     string
		problems   sites.Problems
		wantStatus VersionStatus
		wantActive string
		want       map[string]VersionStatus
	}{
		{"c1", nil, VersionActive, "c1", map[string]VersionStatus{"c1": VersionActive}},
		{"c2", bad, VersionRejected, "c1", map[string]VersionStatus{"c1": VersionActive, "c2": VersionRejected}},
		{"c3", nil, VersionActive, "c3", map[string]VersionStatus{"c1": VersionSuperseded, "c2": VersionRejected, "c3": VersionActive}},
		// Re-validating the active version changes nothing.
		{"c3", nil, VersionActive, "c3", map[string]VersionStatus{"c1": VersionSuperseded, "c2": VersionRejected, "c3": VersionActive}},
		// A rejected version fixed by what it depends on (an artifact) is accepted on retry.
		{"c2", nil, VersionActive, "c2", map[string]VersionStatus{"c1": VersionSuperseded, "c2": VersionActive, "c3": VersionSuperseded}},
		// Going back to an old version.
		{"c1", nil, VersionActive, "c1", map[string]VersionStatus{"c1": VersionActive, "c2": VersionSuperseded, "c3": VersionSuperseded}},
		// The active version failing a re-validation stays active: the site serves it.
		{"c1", bad, VersionActive, "c1", map[string]VersionStatus{"c1": VersionActive, "c2": VersionSuperseded, "c3": VersionSuperseded}},
	}
	for i, s := range steps {
		clk.Advance(time.Minute)
		sv, err := db.RecordValidation(ctx, "lab", version(s.commit, "v"+s.commit), s.problems)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if sv.Status != s.wantStatus {
			t.Errorf("step %d: %s recorded as %s, want %s", i, s.commit, sv.Status, s.wantStatus)
		}
		if got := active(); got != s.wantActive {
			t.Errorf("step %d: active %q, want %q", i, got, s.wantActive)
		}
		if diff := cmp.Diff(s.want, status()); diff != "" {
			t.Errorf("step %d: statuses (-want +got):\n%s", i, diff)
		}
	}

	st, err := db.Site(ctx, "lab")
	if err != nil {
		t.Fatal(err)
	}
	want := SiteVersion{Site: "lab", Version: version("c1", "vc1"), Status: VersionActive,
		Reasons: []string{"sites/lab/site.yaml:machines[1].ip: outside the subnet (line 12)"}, ValidatedAt: clk.Now()}
	if diff := cmp.Diff(&want, st.Latest); diff != "" {
		t.Errorf("latest (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&want, st.Active); diff != "" {
		t.Errorf("active (-want +got):\n%s", diff)
	}
	if vs, err := db.SiteVersions(ctx, "lab", 2); err != nil || len(vs) != 2 || vs[0].Version.Commit != "c1" || vs[1].Version.Commit != "c2" {
		t.Errorf("latest two versions: %+v, %v", vs, err)
	}
}

func TestSiteRejectedFirst(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newClock())
	if _, err := db.Site(ctx, "lab"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown site: %v", err)
	}
	if _, err := db.RecordValidation(ctx, "lab", version("c1"), sites.Problems{{File: "f", Message: "m"}}); err != nil {
		t.Fatal(err)
	}
	s, err := db.Site(ctx, "lab")
	if err != nil {
		t.Fatal(err)
	}
	if s.Active != nil || s.Latest == nil || s.Latest.Status != VersionRejected || s.Latest.Reasons[0] != "f: m" {
		t.Errorf("site with only a rejected version: %+v", s)
	}
}

func TestMarkBootstrapped(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	if err := db.MarkBootstrapped(ctx, "lab"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown site: %v, want ErrNotFound", err)
	}
	for _, name := range []string{"lab", "paris-1"} {
		if _, err := db.RecordValidation(ctx, name, version("c1"), nil); err != nil {
			t.Fatal(err)
		}
	}
	t0 := clk.Now()
	if err := db.MarkBootstrapped(ctx, "lab"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if err := db.MarkBootstrapped(ctx, "lab"); err != nil {
		t.Fatal(err)
	}
	all, err := db.Sites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range all {
		got = append(got, s.Name)
		if s.Name == "lab" && (!s.Bootstrapped || !s.BootstrappedAt.Equal(t0)) {
			t.Errorf("lab: bootstrapped=%t at %s, want true at the first time %s", s.Bootstrapped, s.BootstrappedAt, t0)
		}
		if s.Name == "paris-1" && s.Bootstrapped {
			t.Error("paris-1 bootstrapped")
		}
	}
	if diff := cmp.Diff([]string{"lab", "paris-1"}, got); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}
}
