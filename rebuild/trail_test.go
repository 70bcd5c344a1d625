package rebuild

import (
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
)

// A booted callback completes a rebuild only with the trail of its boot:
// forged callbacks (a machine powered off, a token used by someone else)
// leave it waiting until it times out; the real boot's report completes
// it even when many other events of the machine came in between.
func TestRebuildNeedsTheBootsTrail(t *testing.T) {
	f := newFixture(t, labRelease())
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	// The machine stays off; someone reports it booted, with a boot id of
	// its own but no script or config of that boot since the power cycle.
	f.bootSeq = 99
	f.event("lab-w1", event.Booted, newCommit)
	f.settle()
	if r := f.rebuild("lab-w1"); r.State != inventory.RebuildConfigServed {
		t.Fatalf("after a booted report alone: %s, want config-served (waiting for the trail)", r.State)
	}
	f.event("lab-w1", event.Booted, newCommit)
	f.event("lab-w1", event.Heartbeat, newCommit)
	f.settle()
	if r := f.rebuild("lab-w1"); r.State != inventory.RebuildConfigServed {
		t.Fatalf("after more booted reports alone: %s, want config-served", r.State)
	}

	// The real boot: its script, config and report, after a flood of
	// refused requests naming the machine.
	f.bootSeq = 1
	f.event("lab-w1", event.IPXEScript, newCommit)
	f.event("lab-w1", event.Ignition, newCommit)
	for range 50 {
		f.event("lab-w1", event.IPXEDenied, "")
	}
	f.event("lab-w1", event.Booted, newCommit)
	f.settle()
	if r := f.rebuild("lab-w1"); r.State != inventory.RebuildDone {
		t.Fatalf("after the boot with its trail: %s (%s), want done", r.State, r.Reason)
	}

	// And without the real boot, the forged report times out.
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w2", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.event("lab-w2", event.Booted, newCommit)
	f.settle()
	f.clk.Advance(4 * time.Minute)
	f.settle()
	if r := f.rebuild("lab-w2"); r.State != inventory.RebuildFailed {
		t.Errorf("a forged booted report, then nothing: %s, want failed", r.State)
	}
}
