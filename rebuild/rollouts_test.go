package rebuild

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/power"
	"github.com/undercloud/undercloud/sites"
)

// rollout returns the site's current rollout with each machine's progress.
func (f *fixture) rollout() (inventory.Rollout, []string) {
	f.t.Helper()
	ro, err := f.e.Rollout(f.ctx, "lab")
	if err != nil {
		f.t.Fatal(err)
	}
	var progress []string
	for _, m := range ro.Machines {
		progress = append(progress, m.Name+" "+m.Progress())
	}
	return ro, progress
}

// stepRollouts starts what the rollouts may start without taking the
// rebuilds: a server killed right after leaves them requested.
func (f *fixture) stepRollouts() {
	f.t.Helper()
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	if err := f.e.stepRebuilds(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.e.stepRollouts(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

// TestRolloutResumes runs the lab's rollout (1 master, 2 workers, batch 2)
// and kills the server twice: after the plan's first rebuild is stored, and
// with one worker done and one booting. Nothing is cycled twice.
func TestRolloutResumes(t *testing.T) {
	f := newFixture(t, labRelease())
	ro, err := f.e.StartRollout(f.ctx, "lab", sites.Selection{}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var batches []int
	for _, m := range ro.Machines {
		batches = append(batches, m.Batch)
	}
	if ro.State != inventory.RolloutPlanned || !cmp.Equal(batches, []int{1, 2, 2}) {
		t.Errorf("planned: %s, batches %v", ro.State, batches)
	}
	if _, err := f.e.StartRollout(f.ctx, "lab", sites.Selection{}, "bob"); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "rollout 1 to 222222222222 is already planned") {
		t.Errorf("second rollout: got %v, want ErrConflict", err)
	}

	f.stepRollouts() // the master's rebuild is stored, then the server dies
	f.restart()
	f.settle()
	if diff := cmp.Diff([]string{"lab-m1"}, f.bmc.cycled()); diff != "" {
		t.Fatalf("cycled (-want +got):\n%s", diff)
	}
	_, progress := f.rollout()
	if diff := cmp.Diff([]string{"lab-m1 booting", "lab-w1 pending", "lab-w2 pending"}, progress); diff != "" {
		t.Errorf("master first (-want +got):\n%s", diff)
	}

	f.boot("lab-m1", newCommit)
	f.settle()
	if diff := cmp.Diff([]string{"lab-m1", "lab-w1", "lab-w2"}, f.bmc.cycled()); diff != "" {
		t.Fatalf("cycled after the master (-want +got):\n%s", diff)
	}
	f.boot("lab-w1", newCommit)
	f.settle()

	f.restart()
	f.settle()
	if len(f.bmc.calls) != 0 {
		t.Errorf("bmc calls after the restart: %v", f.bmc.calls)
	}
	_, progress = f.rollout()
	if diff := cmp.Diff([]string{"lab-m1 done", "lab-w1 done", "lab-w2 booting"}, progress); diff != "" {
		t.Errorf("after the restart (-want +got):\n%s", diff)
	}
	f.boot("lab-w2", newCommit)
	f.settle()
	ro, progress = f.rollout()
	if ro.State != inventory.RolloutDone || len(f.bmc.calls) != 0 {
		t.Errorf("rollout %s, bmc calls %v; want done, none", ro.State, f.bmc.calls)
	}
	if diff := cmp.Diff([]string{"lab-m1 done", "lab-w1 done", "lab-w2 done"}, progress); diff != "" {
		t.Errorf("done (-want +got):\n%s", diff)
	}
	if _, err := f.e.StartRollout(f.ctx, "lab", sites.Selection{}, "alice"); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "no outdated machine") {
		t.Errorf("rollout with nothing outdated: got %v, want ErrConflict", err)
	}
}

// TestRolloutFailureHalts: max_failures 1; the first batch's failure halts
// the rollout; its batch mate finishes; the next batch is never touched.
func TestRolloutFailureHalts(t *testing.T) {
	f := newFixture(t, labRelease(machine("lab-w3", sites.RoleWorker)))
	f.boot("lab-m1", newCommit) // current: not in the plan
	f.bmc.fail["lab-w1"] = fmt.Errorf("ipmi 10.0.0.5:623: no answer after 3 attempts: %w", power.ErrUnreachable)
	if _, err := f.e.StartRollout(f.ctx, "lab", sites.Selection{}, "alice"); err != nil {
		t.Fatal(err)
	}
	f.settle()
	ro, progress := f.rollout()
	if ro.State != inventory.RolloutHalted || ro.Failures != 1 ||
		!strings.Contains(ro.Reason, "lab-w1: power cycle failed: pxe reboot: set next boot to pxe: ipmi 10.0.0.5:623: no answer") {
		t.Errorf("rollout %s, %d failures (%s); want halted naming lab-w1", ro.State, ro.Failures, ro.Reason)
	}
	if diff := cmp.Diff([]string{"lab-w1 failed", "lab-w2 booting", "lab-w3 pending"}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	f.boot("lab-w2", newCommit)
	f.clk.Advance(time.Hour)
	f.settle()
	if diff := cmp.Diff([]string{"lab-w2"}, f.bmc.cycled()); diff != "" {
		t.Errorf("cycled (-want +got):\n%s", diff)
	}
	_, progress = f.rollout()
	if diff := cmp.Diff([]string{"lab-w1 failed", "lab-w2 done", "lab-w3 pending"}, progress); diff != "" {
		t.Errorf("progress at the end (-want +got):\n%s", diff)
	}
}

func TestRolloutPauseResumeAbort(t *testing.T) {
	f := newFixture(t, labRelease())
	if _, err := f.e.StartRollout(f.ctx, "lab", sites.Selection{}, "alice"); err != nil {
		t.Fatal(err)
	}
	ro, err := f.e.Pause(f.ctx, "lab", "alice")
	if err != nil || ro.State != inventory.RolloutPaused || ro.Reason != "paused by alice" {
		t.Fatalf("pause: %v, %s (%s)", err, ro.State, ro.Reason)
	}
	f.settle()
	if len(f.bmc.calls) != 0 {
		t.Fatalf("bmc calls while paused: %v", f.bmc.calls)
	}
	if _, err := f.e.Resume(f.ctx, "lab", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.Resume(f.ctx, "lab", "bob"); !errors.Is(err, ErrConflict) {
		t.Errorf("resume of a running rollout: got %v, want ErrConflict", err)
	}
	f.settle()
	if diff := cmp.Diff([]string{"lab-m1"}, f.bmc.cycled()); diff != "" {
		t.Fatalf("cycled after resume (-want +got):\n%s", diff)
	}
	// The master boots; its workers are started but not yet power-cycled
	// when the operator aborts.
	f.boot("lab-m1", newCommit)
	f.stepRollouts()
	if _, progress := f.rollout(); !cmp.Equal(progress, []string{"lab-m1 done", "lab-w1 requested", "lab-w2 requested"}) {
		t.Fatalf("before the abort: %v", progress)
	}
	ro, err = f.e.Abort(f.ctx, "lab", "carol")
	if err != nil || ro.State != inventory.RolloutAborted {
		t.Fatalf("abort: %v, %s", err, ro.State)
	}
	f.settle()
	ro, progress := f.rollout()
	if diff := cmp.Diff([]string{"lab-m1 done", "lab-w1 canceled", "lab-w2 canceled"}, progress); diff != "" {
		t.Errorf("after the abort (-want +got):\n%s", diff)
	}
	if ro.State != inventory.RolloutAborted || ro.Reason != "aborted by carol" {
		t.Errorf("rollout %s (%s)", ro.State, ro.Reason)
	}
	if diff := cmp.Diff([]string{"lab-m1"}, f.bmc.cycled()); diff != "" {
		t.Errorf("cycled (-want +got):\n%s", diff)
	}
	if _, err := f.e.Resume(f.ctx, "lab", "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("resume after the abort: got %v, want ErrNotFound", err)
	}
}

func TestRolloutCanary(t *testing.T) {
	for name, soak := range map[string]time.Duration{"confirm": 0, "soak": 10 * time.Minute} {
		t.Run(name, func(t *testing.T) {
			rel := labRelease()
			rel.Site.Rollout.Canary, rel.Site.Rollout.CanarySoak = 1, sites.Duration(soak)
			f := newFixture(t, rel)
			if _, err := f.e.StartRollout(f.ctx, "lab", sites.Selection{}, "alice"); err != nil {
				t.Fatal(err)
			}
			f.settle()
			if _, err := f.e.Confirm(f.ctx, "lab", "bob"); !errors.Is(err, ErrConflict) {
				t.Errorf("confirm while the canary runs: got %v, want ErrConflict", err)
			}
			f.boot("lab-m1", newCommit)
			f.settle()
			if ro, _ := f.rollout(); ro.State != inventory.RolloutCanaryWait {
				t.Fatalf("after the canary: %s, want canary-wait", ro.State)
			}
			f.clk.Advance(soak / 2)
			f.settle()
			if diff := cmp.Diff([]string{"lab-m1"}, f.bmc.cycled()); diff != "" {
				t.Fatalf("cycled during the wait (-want +got):\n%s", diff)
			}
			if soak == 0 {
				if _, err := f.e.Confirm(f.ctx, "lab", "bob"); err != nil {
					t.Fatal(err)
				}
			} else {
				f.clk.Advance(soak / 2)
			}
			f.settle()
			if diff := cmp.Diff([]string{"lab-m1", "lab-w1", "lab-w2"}, f.bmc.cycled()); diff != "" {
				t.Errorf("cycled after the wait (-want +got):\n%s", diff)
			}
			if ro, _ := f.rollout(); ro.State != inventory.RolloutRunning {
				t.Errorf("rollout %s, want running", ro.State)
			}
		})
	}
}

// TestActivated: under start: auto a version's activation starts one
// rollout of it; a newer one supersedes it and retargets the rebuild whose
// machine has not fetched its script yet.
func TestActivated(t *testing.T) {
	rel := labRelease()
	rel.Site.Rollout.Start = "auto"
	f := newFixture(t, rel)
	for range 2 { // the second is a restart: no second rollout
		if err := f.e.Activated(f.ctx, "lab"); err != nil {
			t.Fatal(err)
		}
	}
	if ros, err := f.db.Rollouts(f.ctx, inventory.RolloutFilter{Site: "lab"}); err != nil || len(ros) != 1 || ros[0].StartedBy != "auto" {
		t.Fatalf("rollouts after activation: %v, %v", ros, err)
	}
	f.settle() // lab-m1 power-cycled, booting, no script yet

	v3 := labRelease()
	v3.Site.Rollout.Start = "auto"
	v3.Version = sites.Version{Commit: "3333333333333333333333333333333333333333", Tags: []string{"v3"}}
	f.sites.set(v3)
	if err := f.e.Activated(f.ctx, "lab"); err != nil {
		t.Fatal(err)
	}
	ros, err := f.db.Rollouts(f.ctx, inventory.RolloutFilter{Site: "lab"})
	if err != nil || len(ros) != 2 {
		t.Fatalf("rollouts: %v, %v", ros, err)
	}
	if old := ros[1]; old.State != inventory.RolloutAborted || old.Reason != "superseded by version v3" {
		t.Errorf("old rollout %s (%s), want aborted, superseded", old.State, old.Reason)
	}
	if r := f.rebuild("lab-m1"); r.Target != v3.Version.Commit || r.State != inventory.RebuildBooting {
		t.Errorf("lab-m1's rebuild: %s to %s, want booting to v3", r.State, r.Target)
	}
	f.boot("lab-m1", v3.Version.Commit)
	f.settle()
	ro, progress := f.rollout()
	if ro.ID != ros[0].ID || ro.Target != v3.Version.Commit {
		t.Errorf("current rollout %d to %s, want %d to v3", ro.ID, ro.Target, ros[0].ID)
	}
	if diff := cmp.Diff([]string{"lab-m1 skipped", "lab-w1 booting", "lab-w2 booting"}, progress); diff != "" {
		t.Errorf("v3 rollout (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"lab-m1", "lab-w1", "lab-w2"}, f.bmc.cycled()); diff != "" {
		t.Errorf("cycled (-want +got):\n%s", diff)
	}
}

// TestRestartAfterAbort: the server died after storing the abort, before
// canceling the rebuilds it had started: the next one cancels them rather
// than power-cycling.
func TestRestartAfterAbort(t *testing.T) {
	f := newFixture(t, labRelease())
	if _, err := f.e.StartRollout(f.ctx, "lab", sites.Selection{}, "alice"); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.boot("lab-m1", newCommit)
	f.stepRollouts()
	ro, _ := f.rollout()
	ro.State = inventory.RolloutAborted
	if _, err := f.db.UpdateRollout(f.ctx, ro, inventory.RolloutRunning); err != nil {
		t.Fatal(err)
	}
	f.restart()
	f.settle()
	if len(f.bmc.calls) != 0 {
		t.Errorf("bmc calls after the restart: %v", f.bmc.calls)
	}
	_, progress := f.rollout()
	if diff := cmp.Diff([]string{"lab-m1 done", "lab-w1 canceled", "lab-w2 canceled"}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if r := f.rebuild("lab-w1"); r.Reason != "rollout 1 is aborted" {
		t.Errorf("reason %q", r.Reason)
	}
}

// TestPartialRollout rolls only the machines a selection picks; the others
// keep their version, and the rollout records the selection.
func TestPartialRollout(t *testing.T) {
	rel := labRelease()
	for i, rack := range []string{"r1", "r1", "r2"} { // lab-m1, lab-w1, lab-w2
		rel.Site.Machines[i].Labels = map[string]string{"rack": rack}
	}
	f := newFixture(t, rel)
	selector := func(s string) sites.Selector {
		sel, err := sites.ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		return sel
	}
	refused := map[string]struct {
		sel  sites.Selection
		kind error
		want string
	}{
		"unknown machines": {sites.Selection{Machines: []string{"lab-w1", "lab-x", "lab-y"}}, ErrNotFound,
			"site lab has no machine lab-x, lab-y at version v2"},
		"named but not selected": {sites.Selection{Selector: selector("rack=r2"), Machines: []string{"lab-w1", "lab-w2"}}, ErrConflict,
			"site lab: machine lab-w1 does not match the selector rack=r2"},
		"selector matches nothing": {sites.Selection{Selector: selector("rack=r9")}, ErrConflict,
			"site lab: rack=r9 selects no outdated machine that can be rebuilt at version v2"},
	}
	for name, tc := range refused {
		t.Run(name, func(t *testing.T) {
			if _, err := f.e.StartRollout(f.ctx, "lab", tc.sel, "alice"); !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %v with %q", err, tc.kind, tc.want)
			}
		})
	}
	if ros, err := f.db.Rollouts(f.ctx, inventory.RolloutFilter{Site: "lab"}); err != nil || len(ros) != 0 {
		t.Fatalf("refused starts stored rollouts: %v %v", ros, err)
	}

	ro, err := f.e.StartRollout(f.ctx, "lab", sites.Selection{Selector: selector("rack=r2")}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if ro.Selection != "rack=r2" {
		t.Errorf("selection %q, want rack=r2", ro.Selection)
	}
	f.settle()
	f.boot("lab-w2", newCommit)
	f.settle()
	ro, progress := f.rollout()
	if diff := cmp.Diff([]string{"lab-w2 done"}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if ro.State != inventory.RolloutDone || ro.Selection != "rack=r2" {
		t.Errorf("stored rollout %s, selection %q; want done, rack=r2", ro.State, ro.Selection)
	}
	if diff := cmp.Diff([]string{"lab-w2"}, f.bmc.cycled()); diff != "" {
		t.Errorf("cycled (-want +got):\n%s", diff)
	}
	if _, err := f.e.StartRollout(f.ctx, "lab", sites.Selection{Selector: selector("rack=r2")}, "alice"); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "rack=r2 selects no outdated machine") {
		t.Errorf("rack r2 again: got %v, want ErrConflict", err)
	}
	// By name: the master alone.
	ro, err = f.e.StartRollout(f.ctx, "lab", sites.Selection{Machines: []string{"lab-m1"}}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if ro.Selection != "machines=lab-m1" || len(ro.Machines) != 1 || ro.Machines[0].Name != "lab-m1" {
		t.Errorf("by name: selection %q, plan %v", ro.Selection, ro.Machines)
	}
}
