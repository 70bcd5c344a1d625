package rebuild

import (
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
// transition. The tick is an hour, so only the commit notification can
// move the rebuild; an engine told before the commit reads nothing new and
// waits for the tick.
func TestStepReachesEngineAfterCommit(t *testing.T) {
	f := newFixture(t, labRelease())
	f.e.Tick = time.Hour
	var mu sync.Mutex
	var storedAt time.Time
	f.db.Stored = func(macs []sites.MAC) {
		mu.Lock()
		storedAt = time.Now()
		mu.Unlock()
		for _, mac := range macs {
			f.e.Notify(mac)
		}
	}
	served := make(chan time.Time, 1)
	f.e.Changed = func(r *inventory.Rebuild, _ *inventory.Rollout) {
		if r != nil && r.State == inventory.RebuildConfigServed {
			served <- time.Now()
		}
	}
	f.runEngine()
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	f.waitRebuild("lab-w1", inventory.RebuildBooting)
	f.clk.Advance(time.Second)
	// Record, not RecordSync: the boot path queues its events and the
	// writer commits them in a batch a few milliseconds later.
	if err := f.db.Record(f.ctx, inventory.Event{MAC: macOf("lab-w1"), Site: "lab", Kind: event.Ignition, Version: newCommit}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-served:
		mu.Lock()
		latency := at.Sub(storedAt)
		mu.Unlock()
		t.Logf("step latency, commit to rebuild transition: %v", latency)
		if latency > 100*time.Millisecond {
			t.Errorf("the rebuild moved %v after the step was committed, want within 100ms", latency)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the rebuild did not move within 5s of the step (state %s): the engine was not told after the commit",
			f.rebuild("lab-w1").State)
	}
}
