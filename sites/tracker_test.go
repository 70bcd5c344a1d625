package sites_test

import (
	"context"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	siterepo "github.com/undercloud/undercloud/examples/site-repo"
	"github.com/undercloud/undercloud/sites"
)

// memStore is an in-memory VersionStore that keeps every decision.
type memStore struct {
	mu        sync.Mutex
	active    map[string]string
	accepted  map[string]bool // site@commit
	decisions []string
}

func (m *memStore) Accepted(_ context.Context, site, commit string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.accepted[site+"@"+commit], nil
}

func (m *memStore) ActiveCommit(_ context.Context, site string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active[site], nil
}

func (m *memStore) RecordVersion(_ context.Context, site string, v sites.Version, ps sites.Problems) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active == nil {
		m.active = map[string]string{}
	}
	verdict := "accepted"
	if len(ps) > 0 {
		verdict = "rejected: " + ps.Error()
	} else {
		m.active[site] = v.Commit
		if m.accepted == nil {
			m.accepted = map[string]bool{}
		}
		m.accepted[site+"@"+v.Commit] = true
	}
	m.decisions = append(m.decisions, site+" "+v.Label()+" "+verdict)
	return nil
}

func activeLabel(t *testing.T, tr *sites.Tracker, site string) string {
	t.Helper()
	r := tr.Release(site)
	if r == nil {
		return "<none>"
	}
	return r.Version.Label()
}

func statusOf(tr *sites.Tracker, site string) sites.SiteStatus {
	for _, s := range tr.Status() {
		if s.Site == site {
			return s
		}
	}
	return sites.SiteStatus{}
}

func TestTrackerRejectsBrokenVersionAndKeepsServing(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	ex, err := siterepo.Build(filepath.Join(tmp, "repo"), siterepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &memStore{}
	tr := &sites.Tracker{Repo: &sites.Repo{URL: ex.Dir, Dir: filepath.Join(tmp, "mirror")}, Store: store}
	if err := tr.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := activeLabel(t, tr, "lab"); got != "v1" {
		t.Fatalf("lab active = %s, want v1", got)
	}
	if got := activeLabel(t, tr, "second"); got != "v1" {
		t.Fatalf("second active = %s, want v1", got)
	}

	// The binding moves to a broken version: rejected with its reasons, v1 stays.
	if _, err := ex.Bind("lab", "v3-broken"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := activeLabel(t, tr, "lab"); got != "v1" {
		t.Fatalf("after binding a broken version lab active = %s, want v1 still", got)
	}
	st := statusOf(tr, "lab")
	if st.Pending == nil || st.Pending.Label() != "v3-broken" || len(st.Problems) != 1 ||
		!strings.Contains(st.Problems[0], "sites/lab/site.yaml:machines: 2 masters: etcd needs an odd number") {
		t.Fatalf("status does not show the rejection: %+v", st)
	}
	if _, err := tr.ReleaseAt(context.Background(), "lab", st.Pending.Commit); err == nil {
		t.Fatal("ReleaseAt served a rejected version")
	}
	last := store.decisions[len(store.decisions)-1]
	if !strings.HasPrefix(last, "lab v3-broken rejected: sites/lab/site.yaml:machines: 2 masters") {
		t.Fatalf("rejection not persisted with reasons: %q", last)
	}

	// A good version is accepted.
	if _, err := ex.Bind("lab", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := activeLabel(t, tr, "lab"); got != "v2" {
		t.Fatalf("lab active = %s, want v2", got)
	}

	// The remote goes away: the last good version keeps being served.
	if err := os.Rename(ex.Dir, ex.Dir+".gone"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Refresh(ctx, false); err == nil {
		t.Fatal("refresh with the remote gone reported no error")
	}
	if got := activeLabel(t, tr, "lab"); got != "v2" {
		t.Fatalf("with the remote down lab active = %s, want v2", got)
	}
	if fs := tr.Repo.Status(); fs.Error == "" || fs.LastSuccess.IsZero() {
		t.Fatalf("fetch status does not say the remote is down: %+v", fs)
	}
}

// TestTrackerHTTPRemoteDown serves the repo over git's smart HTTP protocol
// (the real git http-backend), then takes the server down and restarts the
// tracker: it must come back on the persisted version from its mirror alone.
func TestTrackerHTTPRemoteDown(t *testing.T) {
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git http-backend missing (Debian package git): %v", err)
	}
	ctx := context.Background()
	tmp := t.TempDir()
	ex, err := siterepo.Build(filepath.Join(tmp, "repo"), siterepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&cgi.Handler{Path: backend, Env: []string{
		"GIT_PROJECT_ROOT=" + tmp, "GIT_HTTP_EXPORT_ALL=1",
	}})
	url := srv.URL + "/repo/.git"
	store := &memStore{}
	mirror := filepath.Join(tmp, "mirror")
	tr := &sites.Tracker{Repo: &sites.Repo{URL: url, Dir: mirror}, Store: store}
	if err := tr.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Bind("lab", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := activeLabel(t, tr, "lab"); got != "v2" {
		t.Fatalf("lab active = %s, want v2", got)
	}
	srv.Close()
	if err := tr.Refresh(ctx, false); err == nil || !strings.Contains(err.Error(), "fetch site repo "+url) {
		t.Fatalf("refresh against a dead remote: %v", err)
	}
	if got := activeLabel(t, tr, "lab"); got != "v2" {
		t.Fatalf("with the remote down lab active = %s, want v2", got)
	}

	// Restart: a new tracker with the same mirror and store, remote still down.
	tr2 := &sites.Tracker{Repo: &sites.Repo{URL: url, Dir: mirror}, Store: store}
	if err := tr2.Restore(ctx, []string{"lab", "second"}); err != nil {
		t.Fatal(err)
	}
	if err := tr2.Refresh(ctx, false); err == nil {
		t.Fatal("refresh against a dead remote reported no error")
	}
	if got := activeLabel(t, tr2, "lab"); got != "v2" {
		t.Fatalf("after restart with the remote down lab active = %s, want v2", got)
	}
	// v1 was accepted by the first run and superseded: machines still
	// assigned to it (or booting with a token naming it) are served it.
	v1, err := tr2.Repo.Resolve("v1")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := tr2.ReleaseAt(ctx, "lab", v1.Commit)
	if err != nil {
		t.Fatalf("after restart, the superseded v1 cannot be served: %v", err)
	}
	if rel.Version.Label() != "v1" || rel.Site.Name != "lab" {
		t.Fatalf("ReleaseAt(v1) = %s of %s", rel.Version.Label(), rel.Site.Name)
	}
	v3, err := tr2.Repo.Resolve("v3-broken")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr2.ReleaseAt(ctx, "lab", v3.Commit); err == nil {
		t.Fatal("after restart, ReleaseAt served a version never accepted")
	}
}
