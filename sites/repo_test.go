package sites_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	siterepo "github.com/undercloud/undercloud/examples/site-repo"
	"github.com/undercloud/undercloud/sites"
)

// A site repo's CI validates what it has checked out: HEAD, a revision
// relative to it, or a detached commit on no branch.
func TestResolveRevisions(t *testing.T) {
	tmp := t.TempDir()
	ex, err := siterepo.Build(filepath.Join(tmp, "repo"), siterepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", ex.Dir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// Detach HEAD at v2, then commit on it: HEAD names no branch.
	git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", "v2")
	// A commit on no branch at all, as a CI job's merge commit is.
	git("-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-q", "--allow-empty", "-m", "ci merge")
	repo, err := sites.OpenLocal(ex.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Fetch(context.Background()); err != nil {
		t.Fatalf("Fetch of a repo opened in place: %v", err)
	}
	for ref, want := range map[string]string{
		"HEAD":   git("rev-parse", "HEAD"),
		"HEAD~1": git("rev-parse", "v2^{commit}"),
		"v2":     git("rev-parse", "v2^{commit}"),
		"v2^":    git("rev-parse", "v2^{commit}^"),
		"main":   git("rev-parse", "main"),
	} {
		v, err := repo.Resolve(ref)
		if err != nil || v.Commit != want {
			t.Errorf("Resolve(%q) = %s, %v; want %s", ref, v.Commit, err, want)
		}
	}
	if _, err := repo.Resolve("HEADS"); err == nil || !strings.Contains(err.Error(), `"HEADS" is not a tag, branch or commit`) {
		t.Errorf("Resolve(HEADS): %v", err)
	}
}
