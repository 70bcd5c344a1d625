package inventory

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
)

func testRollout() Rollout {
	return Rollout{
		Site: "lab", Target: "c2", StartedBy: "alice", Selection: "rack=r1",
		Policy: sites.RolloutPolicy{Canary: 1, CanarySoak: sites.Duration(5 * time.Minute), Soak: sites.Duration(time.Minute)}.WithDefaults(),
		Machines: []RolloutMachine{
			{Name: "m1", MAC: testMAC(1), Role: sites.RoleMaster, Batch: 1, Canary: true},
			{Name: "w1", MAC: testMAC(2), Role: sites.RoleWorker, Batch: 2},
			{Name: "w2", MAC: testMAC(3), Role: sites.RoleWorker, Batch: 2},
			{Name: "w3", MAC: testMAC(4), Role: sites.RoleWorker, Skipped: "no bmc"},
		},
	}
}

func TestRolloutLifecycle(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	ro, err := db.CreateRollout(ctx, testRollout())
	if err != nil {
		t.Fatal(err)
	}
	want := testRollout()
	want.ID, want.State, want.Created, want.Updated = ro.ID, RolloutPlanned, clk.Now(), clk.Now()
	for i := range want.Machines {
		want.Machines[i].Position = i
	}
	if diff := cmp.Diff(want, ro); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	got, err := db.Rollouts(ctx, RolloutFilter{Site: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Rollout{want}, got); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}

	if _, err := db.CreateRollout(ctx, testRollout()); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "rollout 1 is planned") {
		t.Errorf("second live rollout: got %v, want ErrConflict naming rollout 1", err)
	}

	// Start the master: its rebuild is linked; it cannot start twice.
	clk.Advance(time.Second)
	r, err := db.StartRolloutMachine(ctx, ro.ID, 0, Rebuild{Site: "lab", Machine: "m1", MAC: testMAC(1), Role: sites.RoleMaster, Target: "c2"})
	if err != nil {
		t.Fatal(err)
	}
	if r.RolloutID != ro.ID || r.State != RebuildRequested {
		t.Errorf("started rebuild: %+v", r)
	}
	if _, err := db.StartRolloutMachine(ctx, ro.ID, 0, Rebuild{Site: "lab", Machine: "m1", MAC: testMAC(1), Target: "c2"}); !errors.Is(err, ErrConflict) {
		t.Errorf("second start: got %v, want ErrConflict", err)
	}
	if err := db.SkipRolloutMachine(ctx, ro.ID, 0, "already on c2"); !errors.Is(err, ErrConflict) {
		t.Errorf("skip of a started machine: got %v, want ErrConflict", err)
	}
	// w1 is rebuilding outside the rollout: starting it conflicts and
	// leaves it unstarted.
	if _, err := db.CreateRebuild(ctx, Rebuild{Site: "lab", Machine: "w1", MAC: testMAC(2), Target: "c2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartRolloutMachine(ctx, ro.ID, 1, Rebuild{Site: "lab", Machine: "w1", MAC: testMAC(2), Target: "c2"}); !errors.Is(err, ErrConflict) {
		t.Errorf("start of a busy machine: got %v, want ErrConflict", err)
	}
	if err := db.SkipRolloutMachine(ctx, ro.ID, 2, "already on c2"); err != nil {
		t.Fatal(err)
	}

	next := ro
	next.State, next.Failures, next.Reason, next.ConfirmedBy = RolloutRunning, 1, "waiting", "bob"
	if _, err := db.UpdateRollout(ctx, next, RolloutPlanned); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateRollout(ctx, next, RolloutPlanned); !errors.Is(err, ErrConflict) {
		t.Errorf("stale update: got %v, want ErrConflict", err)
	}

	got, err = db.Rollouts(ctx, RolloutFilter{ID: ro.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d rollouts, want 1", len(got))
	}
	g := got[0]
	progress := []string{}
	for _, m := range g.Machines {
		progress = append(progress, m.Progress())
	}
	if diff := cmp.Diff([]string{"requested", "pending", "skipped", "skipped"}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if g.State != RolloutRunning || g.Failures != 1 || g.Reason != "waiting" || g.ConfirmedBy != "bob" ||
		g.Machines[0].Rebuild.ID != r.ID || g.Machines[2].Skipped != "already on c2" {
		t.Errorf("stored rollout: %+v", g)
	}

	live, err := db.Rollouts(ctx, RolloutFilter{Live: true})
	if err != nil || len(live) != 1 {
		t.Fatalf("live rollouts: %v, %v", live, err)
	}
	done := g
	done.State = RolloutDone
	if _, err := db.UpdateRollout(ctx, done, RolloutRunning); err != nil {
		t.Fatal(err)
	}
	if live, err := db.Rollouts(ctx, RolloutFilter{Live: true}); err != nil || len(live) != 0 {
		t.Errorf("live rollouts after done: %v, %v", live, err)
	}
	if _, err := db.CreateRollout(ctx, testRollout()); err != nil {
		t.Errorf("rollout after a finished one: %v", err)
	}
}
