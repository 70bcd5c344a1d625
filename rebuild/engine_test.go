package rebuild

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/power"
	"github.com/undercloud/undercloud/sites"
)

func TestRebuildToDone(t *testing.T) {
	f := newFixture(t, labRelease())
	req, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	r := req.Rebuild
	if r.State != inventory.RebuildRequested || r.Target != newCommit || r.RequestedBy != "alice" {
		t.Errorf("requested: %+v", r)
	}
	if !f.e.RebuildPending(f.ctx, macOf("lab-w1")) {
		t.Error("RebuildPending = false while requested")
	}

	f.settle()
	if diff := cmp.Diff([]string{"lab-w1 pxe-once", "lab-w1 cycle"}, f.bmc.calls); diff != "" {
		t.Errorf("bmc calls (-want +got):\n%s", diff)
	}
	r = f.rebuild("lab-w1")
	if r.State != inventory.RebuildBooting || !r.PowerCycledAt.Equal(f.clk.Now()) {
		t.Errorf("after the power cycle: %s, power cycled at %s", r.State, r.PowerCycledAt)
	}
	_, err = f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "bob"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), fmt.Sprintf("lab/lab-w1 is already rebuilding (rebuild %d, booting)", r.ID)) {
		t.Errorf("second rebuild: got %v, want ErrConflict naming the rebuild", err)
	}

	// The script and artifacts move nothing; the config of the target does.
	f.event("lab-w1", event.DHCPDiscover, "")
	f.event("lab-w1", event.IPXEScript, newCommit)
	f.settle()
	if r = f.rebuild("lab-w1"); r.State != inventory.RebuildBooting || r.LastEvent.Kind != event.IPXEScript {
		t.Errorf("after the script: %s, last event %s", r.State, r.LastEvent)
	}
	f.event("lab-w1", event.Ignition, newCommit)
	f.settle()
	if r = f.rebuild("lab-w1"); r.State != inventory.RebuildConfigServed {
		t.Errorf("after the config: %s", r.State)
	}
	if f.e.RebuildPending(f.ctx, macOf("lab-w1")) {
		t.Error("RebuildPending = true once the config was served: an install image would loop")
	}
	// Its old disk reporting in is not success.
	f.event("lab-w1", event.Booted, oldCommit)
	f.settle()
	if r = f.rebuild("lab-w1"); r.State != inventory.RebuildConfigServed {
		t.Errorf("after booted on the old version: %s", r.State)
	}
	f.event("lab-w1", event.Booted, newCommit)
	f.settle()
	want := []string{"requested", "power-cycling", "booting", "config-served", "booted", "done"}
	if diff := cmp.Diff(want, f.states("lab-w1")); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if st := f.machineState("lab-w1"); st != inventory.StateProvisioned {
		t.Errorf("machine state %s, want provisioned", st)
	}
	if len(f.bmc.calls) != 2 {
		t.Errorf("bmc calls %v, want the one power cycle", f.bmc.calls)
	}
}

func TestRebuildRefused(t *testing.T) {
	noBMC := machine("lab-w3", sites.RoleWorker)
	noBMC.BMC = nil
	noCreds := machine("lab-w4", sites.RoleWorker)
	noCreds.BMC.Credentials = "missing"
	f := newFixture(t, labRelease(noBMC, noCreds))
	for name, tc := range map[string]struct {
		site, machine string
		kind          error
		msg           string
	}{
		"unknown site":    {"paris", "lab-w1", ErrNotFound, "site paris: no such site"},
		"unknown machine": {"lab", "lab-w9", ErrNotFound, "lab/lab-w9: no such machine at version v2"},
		"no bmc":          {"lab", "lab-w3", ErrConflict, "lab/lab-w3 has no bmc in its site config"},
		"no credentials":  {"lab", "lab-w4", ErrConflict, `lab/lab-w4 cannot be power-cycled: bmc ipmi: no credentials "missing"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.e.Rebuild(f.ctx, Request{Site: tc.site, Machine: tc.machine, Actor: "alice"})
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want %v with %q", err, tc.kind, tc.msg)
			}
		})
	}
	if rs, _ := f.db.Rebuilds(f.ctx, inventory.RebuildFilter{}); len(rs) != 0 {
		t.Errorf("rebuilds stored: %v", rs)
	}
}

func TestRebuildBMCFails(t *testing.T) {
	f := newFixture(t, labRelease())
	f.bmc.fail["lab-w1"] = fmt.Errorf("ipmi 10.0.0.5:623: chassis bootdev pxe: no answer after 3 attempts (20s each): timeout: %w", power.ErrUnreachable)
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	r := f.rebuild("lab-w1")
	if r.State != inventory.RebuildFailed || !strings.Contains(r.Reason, "ipmi 10.0.0.5:623: chassis bootdev pxe: no answer after 3 attempts") {
		t.Errorf("got %s (%s), want failed with the driver's message", r.State, r.Reason)
	}
	if st := f.machineState("lab-w1"); st != inventory.StateFailed {
		t.Errorf("machine state %s, want failed", st)
	}
	if diff := cmp.Diff([]string{"requested", "power-cycling", "failed: " + r.Reason}, f.states("lab-w1")); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if len(f.bmc.cycled()) != 0 {
		t.Errorf("cycled %v after PXEOnce failed", f.bmc.cycled())
	}
}

func TestRebuildBMCTimeout(t *testing.T) {
	rel := labRelease()
	rel.Site.Rollout.Timeouts.PowerCycle = sites.Duration(50 * time.Millisecond)
	f := newFixture(t, rel)
	f.bmc.block["lab-w1"] = true
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	if r := f.rebuild("lab-w1"); r.State != inventory.RebuildFailed ||
		!strings.Contains(r.Reason, "the bmc did not accept the power cycle within 50ms") {
		t.Errorf("got %s (%s), want failed on the power_cycle timeout", r.State, r.Reason)
	}
}

func TestRebuildStageTimeout(t *testing.T) {
	rel := labRelease()
	rel.Site.Rollout.Timeouts.Stall = sites.Duration(time.Hour) // the config timeout comes first
	f := newFixture(t, rel)
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.event("lab-w1", event.DHCPDiscover, "")
	f.event("lab-w1", event.IPXEScript, newCommit)
	f.settle()
	f.clk.Advance(3*time.Minute - time.Second) // the discover was a second before the script
	f.settle()
	if r := f.rebuild("lab-w1"); r.State != inventory.RebuildBooting {
		t.Fatalf("3m after the first step: %s (%s), want still booting", r.State, r.Reason)
	}
	f.clk.Advance(time.Millisecond)
	f.settle()
	r := f.rebuild("lab-w1")
	if r.State != inventory.RebuildFailed || !strings.HasPrefix(r.Reason, "no config of version 222222222222 fetched within 3m0s") ||
		!strings.Contains(r.Reason, "last boot event: ipxe-script at") {
		t.Errorf("got %s (%s), want failed on the config timeout", r.State, r.Reason)
	}
}

// TestRebuildStalledBoot: a boot that stops in the middle (its iPXE lost
// the server to a restart and gave up) is power-cycled again after the
// stall time, each time an event naming the attempt, and a boot after that
// completes the rebuild.
func TestRebuildStalledBoot(t *testing.T) {
	f := newFixture(t, labRelease()) // stall 90s, config 3m
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.event("lab-w1", event.DHCPDiscover, "")
	f.event("lab-w1", event.DHCPAck, "")
	ack := f.clk.Now()
	f.settle()
	f.clk.Advance(90 * time.Second)
	f.settle()
	if r := f.rebuild("lab-w1"); r.State != inventory.RebuildBooting || len(f.bmc.cycled()) != 1 {
		t.Fatalf("90s after the last step: %s, cycled %v; want booting, cycled once", r.State, f.bmc.cycled())
	}
	f.clk.Advance(time.Millisecond)
	f.settle()
	r := f.rebuild("lab-w1")
	if r.State != inventory.RebuildBooting || !r.BootStartedAt.IsZero() || !r.PowerCycledAt.Equal(f.clk.Now()) {
		t.Errorf("after the stall: %s, boot started %s, power cycled at %s; want booting anew, cycled now", r.State, r.BootStartedAt, r.PowerCycledAt)
	}
	if diff := cmp.Diff([]string{"lab-w1", "lab-w1"}, f.bmc.cycled()); diff != "" {
		t.Errorf("cycled (-want +got):\n%s", diff)
	}
	f.boot("lab-w1", newCommit)
	f.settle()
	if r = f.rebuild("lab-w1"); r.State != inventory.RebuildDone {
		t.Fatalf("after a whole boot: %s (%s), want done", r.State, r.Reason)
	}
	want := []string{"requested", "power-cycling", "booting",
		"power-cycling again: no boot step for 1m30s after dhcp-ack at " + stamp(ack) + " (attempt 2 of 3)",
		"booting", "config-served", "booted", "done"}
	if diff := cmp.Diff(want, f.states("lab-w1")); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

// TestRebuildStallBounded: a boot that stalls every time is power-cycled
// again at most MaxStallCycles times; then the config timeout fails it.
func TestRebuildStallBounded(t *testing.T) {
	f := newFixture(t, labRelease()) // stall 90s, config 3m
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	for range MaxStallCycles + 1 {
		f.event("lab-w1", event.DHCPDiscover, "")
		f.settle()
		f.clk.Advance(91 * time.Second)
		f.settle()
	}
	if got, want := len(f.bmc.cycled()), MaxStallCycles+1; got != want {
		t.Errorf("cycled %d times, want %d", got, want)
	}
	r := f.rebuild("lab-w1")
	if r.State != inventory.RebuildBooting || Attempt(r) != MaxStallCycles+1 {
		t.Errorf("after the last attempt stalled: %s, attempt %d (%s); want booting, attempt %d", r.State, Attempt(r), r.Reason, MaxStallCycles+1)
	}
	f.clk.Advance(2 * time.Minute)
	f.settle()
	if r = f.rebuild("lab-w1"); r.State != inventory.RebuildFailed || !strings.HasPrefix(r.Reason, "no config of version") {
		t.Errorf("got %s (%s), want failed on the config timeout", r.State, r.Reason)
	}
	var again []string
	for _, st := range f.states("lab-w1") {
		if strings.HasPrefix(st, "power-cycling again: ") {
			again = append(again, st[strings.LastIndex(st, "("):])
		}
	}
	if diff := cmp.Diff([]string{"(attempt 2 of 3)", "(attempt 3 of 3)"}, again); diff != "" {
		t.Errorf("power cycles made again (-want +got):\n%s", diff)
	}
}

// TestRestartInPowerCycling: the server died around the BMC call. If the
// machine booted since, the cycle happened; if not, it is cycled again.
func TestRestartInPowerCycling(t *testing.T) {
	for name, booted := range map[string]bool{"booted since": true, "never booted": false} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, labRelease())
			r, err := f.db.CreateRebuild(f.ctx, inventory.Rebuild{Site: "lab", Machine: "lab-w1", MAC: macOf("lab-w1"),
				Role: sites.RoleWorker, Target: newCommit, StageStarted: f.clk.Now()})
			if err != nil {
				t.Fatal(err)
			}
			r.State, r.StageStarted = inventory.RebuildPowerCycling, f.clk.Now()
			if _, err := f.db.UpdateRebuild(f.ctx, r, inventory.RebuildRequested); err != nil {
				t.Fatal(err)
			}
			if booted {
				f.event("lab-w1", event.DHCPDiscover, "")
			}
			f.restart()
			f.settle()
			var want []string
			if !booted {
				want = []string{"lab-w1"}
			}
			if diff := cmp.Diff(want, f.bmc.cycled()); diff != "" {
				t.Errorf("cycled (-want +got):\n%s", diff)
			}
			got := f.rebuild("lab-w1")
			if got.State != inventory.RebuildBooting {
				t.Errorf("state %s, want booting", got.State)
			}
			if booted && got.LastEvent.Kind != event.DHCPDiscover {
				t.Errorf("last event %s, want the discover that proved the cycle", got.LastEvent)
			}
		})
	}
}

// TestShutdownDuringBMCCall: a BMC call cut short by a shutdown stores
// nothing; the next engine cycles the machine again.
func TestShutdownDuringBMCCall(t *testing.T) {
	f := newFixture(t, labRelease())
	f.bmc.block["lab-w1"] = true
	ctx, cancel := context.WithCancel(f.ctx)
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := f.e.pass(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	f.e.cycles.Wait()
	if r := f.rebuild("lab-w1"); r.State != inventory.RebuildPowerCycling {
		t.Fatalf("after the shutdown: %s (%s), want power-cycling", r.State, r.Reason)
	}
	f.restart()
	f.settle()
	if diff := cmp.Diff([]string{"lab-w1"}, f.bmc.cycled()); diff != "" {
		t.Errorf("cycled after the restart (-want +got):\n%s", diff)
	}
	if r := f.rebuild("lab-w1"); r.State != inventory.RebuildBooting {
		t.Errorf("after the restart: %s, want booting", r.State)
	}
}

// TestRunNotify: Run takes a request at once and a notification moves a
// rebuild on without waiting for the tick.
func TestRunNotify(t *testing.T) {
	f := newFixture(t, labRelease())
	f.e.Tick = time.Hour
	f.runEngine()
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-w1", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	f.waitRebuild("lab-w1", inventory.RebuildBooting)
	f.boot("lab-w1", newCommit)
	f.e.Notify(macOf("lab-w1"))
	f.waitRebuild("lab-w1", inventory.RebuildDone)
}
