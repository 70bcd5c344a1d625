package web

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRunningVersions: the overview counts each site's machines by the
// version they run, labelled by tag also for a version no longer active
// (v1, from the validation history).
func TestRunningVersions(t *testing.T) {
	f := newFixture(t, nil)
	var lab SiteView
	f.getJSON("/api/v1/sites/lab", &lab)
	want := []RunningView{
		{Commit: "", Label: "none", Machines: 2},
		{Commit: f.versions["v1"], Label: "v1 (" + short(f.versions["v1"]) + ")", Machines: 1},
	}
	if diff := cmp.Diff(want, lab.Running); diff != "" {
		t.Errorf("running (-want +got):\n%s", diff)
	}
	f.bootFully(macW1, "lab", f.versions["v2"], "boot-w1")
	f.getJSON("/api/v1/sites/lab", &lab)
	want = []RunningView{
		{Commit: f.versions["v2"], Label: "v2 (" + short(f.versions["v2"]) + ")", Active: true, Machines: 1},
		{Commit: "", Label: "none", Machines: 1},
		{Commit: f.versions["v1"], Label: "v1 (" + short(f.versions["v1"]) + ")", Machines: 1},
	}
	if diff := cmp.Diff(want, lab.Running); diff != "" {
		t.Errorf("running after lab-w1 booted v2 (-want +got):\n%s", diff)
	}
	_, page := f.login(viewerSecret).get("/")
	for _, w := range []string{`class="warn">1 on v1 (` + short(f.versions["v1"]) + `)</span>`, `1 on none`, `<span data-version="` + f.versions["v2"] + `">1 on v2 (` + short(f.versions["v2"]) + `)</span>`} {
		if !strings.Contains(page, w) {
			t.Errorf("overview lacks %q", w)
		}
	}
}
