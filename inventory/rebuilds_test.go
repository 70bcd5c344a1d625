package inventory

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// rebuildOf returns a rebuild request of machine i of site lab to commit c2.
func rebuildOf(i int, name string) Rebuild {
	return Rebuild{Site: "lab", Machine: name, MAC: testMAC(i), Role: sites.RoleWorker, Target: "c2", RequestedBy: "alice"}
}

// rebuildEvents returns the details of the rebuild events of mac, oldest first.
func rebuildEvents(t *testing.T, db *DB, mac sites.MAC) []string {
	t.Helper()
	evs, err := db.Events(context.Background(), mac, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == event.Rebuild {
			out = append(out, evs[i].Detail)
		}
	}
	return out
}

func TestRebuildLifecycle(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	if err := db.DeclareMachines(ctx, &sites.Release{
		Site:    &sites.Site{Name: "lab", Machines: []sites.Machine{{Name: "w1", MAC: testMAC(1), Role: sites.RoleWorker}}},
		Version: sites.Version{Commit: "c2"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordSync(ctx, Event{MAC: testMAC(1), Kind: event.Booted, Version: "c1"}); err != nil {
		t.Fatal(err)
	}
	seen := clk.Now()

	clk.Advance(time.Minute)
	r, err := db.CreateRebuild(ctx, rebuildOf(1, "w1"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := clk.Now()
	want := rebuildOf(1, "w1")
	want.ID, want.State, want.Created, want.Updated, want.StageStarted = r.ID, RebuildRequested, t0, t0, t0
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}

	_, err = db.CreateRebuild(ctx, rebuildOf(1, "w1"))
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "lab/w1 is already rebuilding (rebuild 1, requested)") {
		t.Errorf("second rebuild: got %v, want ErrConflict naming rebuild 1", err)
	}

	// Compare and set: the first writer from requested wins.
	clk.Advance(time.Second)
	cycling := r
	cycling.State, cycling.StageStarted = RebuildPowerCycling, clk.Now()
	if _, err := db.UpdateRebuild(ctx, cycling, RebuildRequested); err != nil {
		t.Fatal(err)
	}
	canceled := r
	canceled.State = RebuildCanceled
	if _, err := db.UpdateRebuild(ctx, canceled, RebuildRequested); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "is power-cycling, not requested") {
		t.Errorf("stale update: got %v, want ErrConflict", err)
	}
	if _, err := db.UpdateRebuild(ctx, Rebuild{ID: 99, State: RebuildDone}, RebuildBooted); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of rebuild 99: got %v, want ErrNotFound", err)
	}

	// Progress without a state change records no event.
	clk.Advance(time.Second)
	booting := cycling
	booting.State, booting.PowerCycledAt, booting.StageStarted = RebuildBooting, clk.Now(), clk.Now()
	if _, err := db.UpdateRebuild(ctx, booting, RebuildPowerCycling); err != nil {
		t.Fatal(err)
	}
	booting.LastEvent = EventRef{ID: 7, Kind: event.IPXEScript, At: clk.Now(), Version: "c2"}
	booting.BootStartedAt = clk.Now()
	if _, err := db.UpdateRebuild(ctx, booting, RebuildBooting); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Minute)
	failed := booting
	failed.State, failed.Reason, failed.StageStarted = RebuildFailed, "no config fetched", clk.Now()
	got, err := db.UpdateRebuild(ctx, failed, RebuildBooting)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := db.Rebuilds(ctx, RebuildFilter{MAC: testMAC(1)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Rebuild{got}, rs); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	if rs[0].LastEvent.ID != 7 || rs[0].PowerCycledAt.IsZero() || rs[0].Created != t0 {
		t.Errorf("stored fields lost: %+v", rs[0])
	}

	// The timeline shows every transition; the machine is failed but was
	// not "seen" by the rebuild's events.
	wantEvents := []string{"requested", "power-cycling", "booting", "failed: no config fetched"}
	if diff := cmp.Diff(wantEvents, rebuildEvents(t, db, testMAC(1))); diff != "" {
		t.Errorf("rebuild events (-want +got):\n%s", diff)
	}
	m, err := db.Machine(ctx, testMAC(1))
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateFailed || !m.LastSeen.Equal(seen) {
		t.Errorf("machine: state %s last seen %s, want failed, %s", m.State, m.LastSeen, seen)
	}

	// Finished: another rebuild may start.
	if _, err := db.CreateRebuild(ctx, rebuildOf(1, "w1")); err != nil {
		t.Errorf("rebuild after a failed one: %v", err)
	}
}

func TestRebuildsFilter(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newClock())
	var rs []Rebuild
	for i, name := range []string{"w1", "w2", "w3"} {
		r := rebuildOf(i+1, name)
		if i == 2 {
			r.Site = "other"
		}
		r, err := db.CreateRebuild(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	ids := []int64{rs[0].ID, rs[1].ID, rs[2].ID}
	done := rs[1]
	done.State = RebuildDone
	if _, err := db.UpdateRebuild(ctx, done, RebuildRequested); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		f    RebuildFilter
		want []int64
	}{
		"all":              {RebuildFilter{}, []int64{ids[2], ids[1], ids[0]}},
		"site":             {RebuildFilter{Site: "lab"}, []int64{ids[1], ids[0]}},
		"in flight":        {RebuildFilter{InFlight: true}, []int64{ids[2], ids[0]}},
		"mac":              {RebuildFilter{MAC: testMAC(2)}, []int64{ids[1]}},
		"site in flight":   {RebuildFilter{Site: "lab", InFlight: true}, []int64{ids[0]}},
		"limit":            {RebuildFilter{Limit: 1}, []int64{ids[2]}},
		"rollout, no such": {RebuildFilter{RolloutID: 5}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			rs, err := db.Rebuilds(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, r := range rs {
				got = append(got, r.ID)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventsSince(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	record := func(kind event.Kind) Event {
		t.Helper()
		ev, err := db.RecordSync(ctx, Event{MAC: testMAC(1), Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		return ev
	}
	record(event.DHCPAck) // before the cycle
	since := clk.Now()
	if _, err := db.CreateRebuild(ctx, rebuildOf(1, "w1")); err != nil { // a rebuild event: left out
		t.Fatal(err)
	}
	discover := record(event.DHCPDiscover)
	script := record(event.IPXEScript)
	if _, err := db.RecordSync(ctx, Event{MAC: testMAC(2), Kind: event.DHCPDiscover}); err != nil { // another machine
		t.Fatal(err)
	}
	kinds := func(evs []Event) []event.Kind {
		var ks []event.Kind
		for _, ev := range evs {
			ks = append(ks, ev.Kind)
		}
		return ks
	}
	got, err := db.EventsSince(ctx, testMAC(1), since, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]event.Kind{event.DHCPDiscover, event.IPXEScript}, kinds(got)); diff != "" {
		t.Errorf("since the cycle (-want +got):\n%s", diff)
	}
	got, err = db.EventsSince(ctx, testMAC(1), since, discover.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != script.ID {
		t.Errorf("after the discover: got %v, want the script only", kinds(got))
	}
}
