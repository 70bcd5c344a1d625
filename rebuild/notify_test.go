package rebuild

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// TestStepReachesEngineAfterCommit wires the engine as serve does -- told
// by the inventory after each commit which MACs had boot steps stored --
// and measures how long a step takes from its commit to the rebuild's
// transition, for three rebuilds; the median must be within 100 ms. The
// tick is an hour, so only the commit notification can move a rebuild; an
// engine told before the commit reads nothing new and waits for the tick.
func TestStepReachesEngineAfterCommit(t *testing.T) {
	f := newFixture(t, labRelease())
	f.e.Tick = time.Hour
	var mu sync.Mutex
	storedAt := map[sites.MAC]time.Time{}
	f.db.Stored = func(macs []sites.MAC) {
		now := time.Now()
		mu.Lock()
		for _, mac := range macs {
			storedAt[mac] = now
		}
		mu.Unlock()
		for _, mac := range macs {
			f.e.Notify(mac)
		}
	}
	served := make(chan inventory.Rebuild, 4)
	f.e.Changed = func(r *inventory.Rebuild, _ *inventory.Rollout) {
		if r != nil && r.State == inventory.RebuildConfigServed {
			served <- *r
		}
	}
	f.runEngine()
	var latencies []time.Duration
	for _, name := range []string{"lab-w1", "lab-w2", "lab-m1"} {
		if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: name, Actor: "alice"}); err != nil {
			t.Fatal(err)
		}
		f.waitRebuild(name, inventory.RebuildBooting)
		f.clk.Advance(time.Second)
		// Record, not RecordSync: the boot path queues its events and the
		// writer commits them in a batch a few milliseconds later.
		if err := f.db.Record(f.ctx, inventory.Event{MAC: macOf(name), Site: "lab", Kind: event.Ignition, Version: newCommit}); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-served:
			at := time.Now()
			mu.Lock()
			latency := at.Sub(storedAt[r.MAC])
			mu.Unlock()
			latencies = append(latencies, latency)
		case <-time.After(5 * time.Second):
			t.Fatalf("the rebuild of %s did not move within 5s of the step (state %s): the engine was not told after the commit",
				name, f.rebuild(name).State)
		}
	}
	t.Logf("step latency, commit to rebuild transition: %v", latencies)
	slices.Sort(latencies)
	if median := latencies[len(latencies)/2]; median > 100*time.Millisecond {
		t.Errorf("median step latency %v (of %v), want within 100ms", median, latencies)
	}
}
