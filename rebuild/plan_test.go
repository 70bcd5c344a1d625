package rebuild

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// machine returns a machine of role with a BMC, its MAC derived from name.
func machine(name string, role sites.Role) sites.Machine {
	return sites.Machine{Name: name, MAC: macOf(name), Role: role,
		BMC: &sites.BMC{Driver: "ipmi", Address: "10.0.0.5:623", Credentials: "lab-bmc"}}
}

// macOf derives a distinct MAC from a machine name.
func macOf(name string) sites.MAC {
	var sum byte
	for i := range len(name) {
		sum = sum*31 + name[i]
	}
	return sites.MAC(fmt.Sprintf("52:54:00:00:%02x:%02x", len(name), sum))
}

// planned is the short form of a plan entry: name, batch, canary, skipped.
type planned struct {
	Name    string
	Batch   int
	Canary  bool
	Skipped bool
}

func TestPlanMachines(t *testing.T) {
	m1, m2, m3 := machine("m1", sites.RoleMaster), machine("m2", sites.RoleMaster), machine("m3", sites.RoleMaster)
	w := func(i int) sites.Machine { return machine(fmt.Sprintf("w%d", i), sites.RoleWorker) }
	noBMC := w(9)
	noBMC.BMC = nil
	rack := func(m sites.Machine, r string) sites.Machine { m.Labels = map[string]string{"rack": r}; return m }
	selector := func(s string) sites.Selector {
		sel, err := sites.ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		return sel
	}
	tests := map[string]struct {
		machines []sites.Machine
		sel      sites.Selection
		current  map[sites.MAC]string
		policy   sites.RolloutPolicy
		want     []planned
	}{
		"1 master, 2 workers, batch 2": {
			machines: []sites.Machine{m1, w(1), w(2)}, policy: sites.RolloutPolicy{BatchSize: 2},
			want: []planned{{"m1", 1, false, false}, {"w1", 2, false, false}, {"w2", 2, false, false}},
		},
		"5 workers in batches of 2": {
			machines: []sites.Machine{w(1), w(2), w(3), w(4), w(5)}, policy: sites.RolloutPolicy{BatchSize: 2},
			want: []planned{{"w1", 1, false, false}, {"w2", 1, false, false}, {"w3", 2, false, false},
				{"w4", 2, false, false}, {"w5", 3, false, false}},
		},
		"masters first in file order, each its own batch; default batch 1": {
			machines: []sites.Machine{w(1), m2, w(2), m1},
			want:     []planned{{"m2", 1, false, false}, {"m1", 2, false, false}, {"w1", 3, false, false}, {"w2", 4, false, false}},
		},
		"canary master": {
			machines: []sites.Machine{m1, m2, m3, w(1), w(2)}, policy: sites.RolloutPolicy{Canary: 1, BatchSize: 2},
			want: []planned{{"m1", 1, true, false}, {"m2", 2, false, false}, {"m3", 3, false, false},
				{"w1", 4, false, false}, {"w2", 4, false, false}},
		},
		"canary workers never share a batch with the rest": {
			machines: []sites.Machine{w(1), w(2), w(3), w(4)}, policy: sites.RolloutPolicy{Canary: 2, BatchSize: 3},
			want: []planned{{"w1", 1, true, false}, {"w2", 1, true, false}, {"w3", 2, false, false}, {"w4", 2, false, false}},
		},
		"current machines are left out; no bmc is skipped in no batch": {
			machines: []sites.Machine{m1, w(1), noBMC, w(2), w(3)},
			current:  map[sites.MAC]string{m1.MAC: newCommit, w(2).MAC: newCommit, w(3).MAC: oldCommit},
			policy:   sites.RolloutPolicy{Canary: 1, BatchSize: 2},
			want:     []planned{{"w1", 1, true, false}, {"w9", 0, false, true}, {"w3", 2, false, false}},
		},
		"selected by label: the others are left out": {
			machines: []sites.Machine{rack(m1, "r1"), rack(w(1), "r1"), rack(w(2), "r2"), rack(w(3), "r1")},
			sel:      sites.Selection{Selector: selector("rack=r1")}, policy: sites.RolloutPolicy{Canary: 1, BatchSize: 2},
			want: []planned{{"m1", 1, true, false}, {"w1", 2, false, false}, {"w3", 2, false, false}},
		},
		"selected by label and role, current ones still left out": {
			machines: []sites.Machine{rack(m1, "r1"), rack(w(1), "r1"), rack(w(2), "r2"), rack(w(3), "r1")},
			sel:      sites.Selection{Selector: selector("rack=r1,role=worker")},
			current:  map[sites.MAC]string{w(1).MAC: newCommit},
			want:     []planned{{"w3", 1, false, false}},
		},
		"selected by name": {
			machines: []sites.Machine{m1, w(1), w(2), w(3)}, sel: sites.Selection{Machines: []string{"w3", "m1"}},
			policy: sites.RolloutPolicy{BatchSize: 2},
			want:   []planned{{"m1", 1, false, false}, {"w3", 2, false, false}},
		},
		"selection matches nothing": {
			machines: []sites.Machine{rack(w(1), "r1")}, sel: sites.Selection{Selector: selector("rack=r9")},
		},
		"everything current": {
			machines: []sites.Machine{m1}, current: map[sites.MAC]string{m1.MAC: newCommit},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			plan := PlanMachines(&sites.Site{Name: "lab", Machines: tc.machines}, tc.sel, tc.current, newCommit, tc.policy)
			var got []planned
			for i, m := range plan {
				if m.Position != i || m.MAC != macOf(m.Name) {
					t.Errorf("entry %d: position %d, MAC %s", i, m.Position, m.MAC)
				}
				got = append(got, planned{m.Name, m.Batch, m.Canary, m.Skipped != ""})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

// member is a machine of a plan in a Decide test; state is "" (pending),
// "skipped", or its rebuild's state, finished at t0+finished.
type member struct {
	name     string
	batch    int
	canary   bool
	state    string
	finished time.Duration
}

// rollout builds a rollout to newCommit of members in state s.
func rollout(s inventory.RolloutState, p sites.RolloutPolicy, members ...member) inventory.Rollout {
	ro := inventory.Rollout{ID: 3, Site: "lab", Target: newCommit, State: s, Policy: p}
	for i, m := range members {
		role := sites.RoleWorker
		if m.name[0] == 'm' {
			role = sites.RoleMaster
		}
		rm := inventory.RolloutMachine{Position: i, Name: m.name, MAC: macOf(m.name), Role: role, Batch: m.batch, Canary: m.canary}
		switch m.state {
		case "":
		case "skipped":
			rm.Skipped = "no bmc"
		default:
			rm.Rebuild = &inventory.Rebuild{ID: int64(10 + i), State: inventory.RebuildState(m.state), Updated: at(m.finished)}
			if m.state == "failed" {
				rm.Rebuild.Reason = "no config fetched"
			}
		}
		ro.Machines = append(ro.Machines, rm)
	}
	return ro
}

func TestDecide(t *testing.T) {
	const (
		planned   = inventory.RolloutPlanned
		running   = inventory.RolloutRunning
		paused    = inventory.RolloutPaused
		halted    = inventory.RolloutHalted
		aborted   = inventory.RolloutAborted
		done      = inventory.RolloutDone
		canaryWt  = inventory.RolloutCanaryWait
		confirmed = "bob"
	)
	batch2 := sites.RolloutPolicy{BatchSize: 2}
	max2 := sites.RolloutPolicy{BatchSize: 2, MaxFailures: 2}
	soak := sites.RolloutPolicy{BatchSize: 2, Canary: 1, CanarySoak: sites.Duration(10 * time.Minute)}
	confirm := sites.RolloutPolicy{BatchSize: 2, Canary: 1}
	// Soaking 5m between batches of one worker; with a canary soaked 10m.
	soakBatches := sites.RolloutPolicy{Soak: sites.Duration(5 * time.Minute)}
	soakAfterCanary := sites.RolloutPolicy{Canary: 1, CanarySoak: sites.Duration(10 * time.Minute), Soak: sites.Duration(5 * time.Minute)}
	// Workers w1, w2, w3 in batches 1, 2, 3; w1 finished at t0+1m, w2 at
	// t0+3m when done; canary marks w1 the canary.
	soaked := func(s inventory.RolloutState, p sites.RolloutPolicy, w1, w2, w3 string) inventory.Rollout {
		return rollout(s, p, member{"w1", 1, p.Canary > 0, w1, time.Minute}, member{"w2", 2, false, w2, 3 * time.Minute},
			member{"w3", 3, false, w3, 0})
	}
	// The lab: one master, two workers.
	lab := func(s inventory.RolloutState, p sites.RolloutPolicy, m1, w1, w2 string) inventory.Rollout {
		return rollout(s, p, member{"m1", 1, p.Canary > 0, m1, time.Minute}, member{"w1", 2, false, w1, 0}, member{"w2", 2, false, w2, 0})
	}
	five := func(s inventory.RolloutState, states ...string) inventory.Rollout {
		var ms []member
		for i, st := range states {
			ms = append(ms, member{fmt.Sprintf("w%d", i+1), i/2 + 1, false, st, 0})
		}
		return rollout(s, batch2, ms...)
	}
	three := func(m1, m2 string) inventory.Rollout { // m3 runs the target already: not in the plan
		return rollout(running, batch2, member{"m1", 1, false, m1, 0}, member{"m2", 2, false, m2, 0})
	}
	confirmedBy := func(ro inventory.Rollout) inventory.Rollout { ro.ConfirmedBy = confirmed; return ro }
	tests := map[string]struct {
		s    Situation
		want Decision
	}{
		"planned: the master starts alone": {
			s:    Situation{Rollout: lab(planned, batch2, "", "", ""), Masters: 1},
			want: Decision{State: running, Start: []int{0}},
		},
		"the master in flight: the workers wait": {
			s:    Situation{Rollout: lab(running, batch2, "booting", "", ""), Masters: 1, Down: map[sites.MAC]string{macOf("m1"): "m1 rebuilding"}},
			want: Decision{State: running},
		},
		"the master done: both workers start (batch 2)": {
			s:    Situation{Rollout: lab(running, batch2, "done", "", ""), Masters: 1},
			want: Decision{State: running, Start: []int{1, 2}},
		},
		"5 workers, batch 2: the first batch": {
			s: Situation{Rollout: five(running, "", "", "", "", "")}, want: Decision{State: running, Start: []int{0, 1}},
		},
		"5 workers, batch 2: half the batch done, the next waits": {
			s: Situation{Rollout: five(running, "done", "config-served", "", "", "")}, want: Decision{State: running},
		},
		"5 workers, batch 2: the second batch": {
			s: Situation{Rollout: five(running, "done", "done", "", "", "")}, want: Decision{State: running, Start: []int{2, 3}},
		},
		"5 workers, batch 2: the last alone": {
			s: Situation{Rollout: five(running, "done", "done", "done", "done", "")}, want: Decision{State: running, Start: []int{4}},
		},
		"5 workers, batch 2: done": {
			s: Situation{Rollout: five(running, "done", "done", "done", "done", "done")}, want: Decision{State: done},
		},
		"3 masters, one down already: the next master waits": {
			s: Situation{Rollout: three("", ""), Masters: 3, Down: map[sites.MAC]string{macOf("m3"): "m3 failed"}},
			want: Decision{State: running,
				Reason: "waiting: master m1 waits: rebuilding it would leave 1 of 3 masters up (etcd needs 2): m3 failed"},
		},
		"3 masters, the one to rebuild is the one down": {
			s:    Situation{Rollout: three("", ""), Masters: 3, Down: map[sites.MAC]string{macOf("m1"): "m1 booting"}},
			want: Decision{State: running, Start: []int{0}},
		},
		"3 masters, none down: one at a time": {
			s:    Situation{Rollout: three("done", ""), Masters: 3},
			want: Decision{State: running, Start: []int{1}},
		},
		"5 masters, one down: two may be": {
			s:    Situation{Rollout: three("", ""), Masters: 5, Down: map[sites.MAC]string{macOf("m3"): "m3 failed"}},
			want: Decision{State: running, Start: []int{0}},
		},
		"a single master may be rebuilt": {
			s:    Situation{Rollout: lab(running, batch2, "", "", ""), Masters: 1},
			want: Decision{State: running, Start: []int{0}},
		},
		"two masters: halted, no master can go down": {
			s: Situation{Rollout: three("", ""), Masters: 2},
			want: Decision{State: halted,
				Reason: "m1: a site with 2 masters loses etcd quorum with any master down, so a rollout does not rebuild them; rebuild them by hand"},
		},
		"canary running: nothing else starts": {
			s:    Situation{Rollout: lab(running, soak, "booting", "", ""), Masters: 1},
			want: Decision{State: running},
		},
		"canary done, soaking": {
			s: Situation{Rollout: lab(running, soak, "done", "", ""), Masters: 1, Now: at(5 * time.Minute)},
			want: Decision{State: canaryWt, Reason: "canary done: soaking 10m0s until 2026-03-01T10:11:00Z",
				Wake: at(11 * time.Minute)},
		},
		"canary soaked: the workers start": {
			s:    Situation{Rollout: lab(canaryWt, soak, "done", "", ""), Masters: 1, Now: at(11 * time.Minute)},
			want: Decision{State: running, Start: []int{1, 2}},
		},
		"canary done, waiting for a confirmation": {
			s:    Situation{Rollout: lab(running, confirm, "done", "", ""), Masters: 1, Now: at(time.Hour)},
			want: Decision{State: canaryWt, Reason: "canary done: waiting for a confirmation"},
		},
		"canary confirmed: the workers start": {
			s:    Situation{Rollout: confirmedBy(lab(canaryWt, confirm, "done", "", "")), Masters: 1},
			want: Decision{State: running, Start: []int{1, 2}},
		},
		"a confirmation also cuts the soak short": {
			s:    Situation{Rollout: confirmedBy(lab(canaryWt, soak, "done", "", "")), Masters: 1, Now: at(2 * time.Minute)},
			want: Decision{State: running, Start: []int{1, 2}},
		},
		"soak: the first batch starts at once": {
			s:    Situation{Rollout: soaked(planned, soakBatches, "", "", ""), Now: at(0)},
			want: Decision{State: running, Start: []int{0}},
		},
		"soak: the first batch in flight, nothing soaks yet": {
			s:    Situation{Rollout: soaked(running, soakBatches, "booting", "", ""), Now: at(time.Hour)},
			want: Decision{State: running},
		},
		"soak: batch 1 done, batch 2 waits": {
			s: Situation{Rollout: soaked(running, soakBatches, "done", "", ""), Now: at(2 * time.Minute)},
			want: Decision{State: running, Reason: "soaking 5m0s until 2026-03-01T10:06:00Z after batch 1",
				Wake: at(6 * time.Minute)},
		},
		"soak: over, batch 2 starts": {
			s:    Situation{Rollout: soaked(running, soakBatches, "done", "", ""), Now: at(6 * time.Minute)},
			want: Decision{State: running, Start: []int{1}},
		},
		"soak: counts from the last finished batch": {
			s: Situation{Rollout: soaked(running, soakBatches, "done", "done", ""), Now: at(6 * time.Minute)},
			want: Decision{State: running, Reason: "soaking 5m0s until 2026-03-01T10:08:00Z after batch 2",
				Wake: at(8 * time.Minute)},
		},
		"soak: a failure under max_failures soaks too": {
			s: Situation{Rollout: rollout(running, sites.RolloutPolicy{Soak: sites.Duration(5 * time.Minute), MaxFailures: 2},
				member{"w1", 1, false, "failed", time.Minute}, member{"w2", 2, false, "", 0}), Now: at(2 * time.Minute)},
			want: Decision{State: running, Failures: 1, Reason: "soaking 5m0s until 2026-03-01T10:06:00Z after batch 1",
				Wake: at(6 * time.Minute)},
		},
		"soak: a started batch does not soak again": {
			s:    Situation{Rollout: rollout(running, soakBatches, member{"w1", 1, false, "done", time.Minute}, member{"w2", 2, false, "booting", 2 * time.Minute}, member{"w3", 2, false, "", 0}), Now: at(2 * time.Minute)},
			want: Decision{State: running, Start: []int{2}},
		},
		"soak: not after the canary, which canary_soak governs": {
			s:    Situation{Rollout: soaked(canaryWt, soakAfterCanary, "done", "", ""), Now: at(11 * time.Minute)},
			want: Decision{State: running, Start: []int{1}},
		},
		"soak: not after a confirmed canary": {
			s:    Situation{Rollout: confirmedBy(soaked(canaryWt, soakAfterCanary, "done", "", "")), Now: at(2 * time.Minute)},
			want: Decision{State: running, Start: []int{1}},
		},
		"soak: between the batches after the canary": {
			s: Situation{Rollout: confirmedBy(soaked(running, soakAfterCanary, "done", "done", "")), Now: at(4 * time.Minute)},
			want: Decision{State: running, Reason: "soaking 5m0s until 2026-03-01T10:08:00Z after batch 2",
				Wake: at(8 * time.Minute)},
		},
		"max_failures 1: the first failure halts": {
			s: Situation{Rollout: five(running, "failed", "booting", "", "", "")},
			want: Decision{State: halted, Failures: 1,
				Reason: "halted after 1 failed rebuild(s) (max_failures 1): w1: no config fetched"},
		},
		"max_failures 2: one failure goes on": {
			s:    Situation{Rollout: rollout(running, max2, member{"w1", 1, false, "failed", 0}, member{"w2", 1, false, "done", 0}, member{"w3", 2, false, "", 0})},
			want: Decision{State: running, Failures: 1, Start: []int{2}},
		},
		"max_failures 2: the second failure halts": {
			s: Situation{Rollout: rollout(running, max2, member{"w1", 1, false, "failed", 0}, member{"w2", 1, false, "done", 0},
				member{"w3", 2, false, "failed", 0}, member{"w4", 3, false, "", 0})},
			want: Decision{State: halted, Failures: 2,
				Reason: "halted after 2 failed rebuild(s) (max_failures 2): w1: no config fetched; w3: no config fetched"},
		},
		"done with a failure under max_failures": {
			s:    Situation{Rollout: rollout(running, max2, member{"w1", 1, false, "failed", 0}, member{"w2", 1, false, "done", 0})},
			want: Decision{State: done, Failures: 1, Reason: "1 rebuild(s) failed: w1: no config fetched"},
		},
		"paused: nothing starts": {
			s:    Situation{Rollout: withReason(five(paused, "done", "done", "", "", ""), "paused by alice")},
			want: Decision{State: paused, Reason: "paused by alice"},
		},
		"resumed: the next batch starts": {
			s:    Situation{Rollout: five(running, "done", "done", "", "", "")},
			want: Decision{State: running, Start: []int{2, 3}},
		},
		"paused, a failure in flight still halts": {
			s: Situation{Rollout: five(paused, "failed", "done", "", "", "")},
			want: Decision{State: halted, Failures: 1,
				Reason: "halted after 1 failed rebuild(s) (max_failures 1): w1: no config fetched"},
		},
		"aborted: nothing starts": {
			s:    Situation{Rollout: withReason(five(aborted, "canceled", "canceled", "", "", ""), "aborted by alice")},
			want: Decision{State: aborted, Reason: "aborted by alice"},
		},
		"halted stays halted": {
			s:    Situation{Rollout: five(halted, "failed", "done", "", "", "")},
			want: Decision{State: halted},
		},
		"a machine rebuilding outside the rollout is waited for": {
			s: Situation{Rollout: five(running, "", "", "", "", ""), Busy: map[sites.MAC]string{macOf("w1"): "rebuild 9, booting"}},
			want: Decision{State: running, Start: []int{1},
				Reason: "waiting: w1 is rebuilding outside this rollout (rebuild 9, booting)"},
		},
		"a machine on the target already is skipped": {
			s:    Situation{Rollout: five(running, "", "", "", "", ""), Current: map[sites.MAC]bool{macOf("w1"): true}},
			want: Decision{State: running, Start: []int{1}, Skip: []Skip{{0, "already runs version 222222222222"}}},
		},
		"skipped machines are in no batch": {
			s:    Situation{Rollout: rollout(running, batch2, member{"w9", 0, false, "skipped", 0}, member{"w1", 1, false, "", 0})},
			want: Decision{State: running, Start: []int{1}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Decide(tc.s)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

// withReason sets a rollout's stored reason.
func withReason(ro inventory.Rollout, reason string) inventory.Rollout {
	ro.Reason = reason
	return ro
}
