package rebuild

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// PlanMachines returns the plan of a rollout of site s to version target:
// its machines that sel picks (the zero Selection picks all) and whose
// current version (current, by MAC: the version each last booted) is not
// target, masters first, then workers, each in file order. Every master is a batch of its own; workers go in batches of the
// policy's batch_size. The first canary machines of that order are the
// canary; a batch never mixes canary and other machines, so the canary
// finishes before anything else starts. A machine without a BMC is in the
// plan, skipped with the reason, in no batch (0), so the rollout shows it.
func PlanMachines(s *sites.Site, sel sites.Selection, current map[sites.MAC]string, target string, p sites.RolloutPolicy) []inventory.RolloutMachine {
	p = p.WithDefaults()
	var masters, workers []sites.Machine
	for _, m := range s.Machines {
		switch {
		case !sel.Matches(m), current[m.MAC] == target:
		case m.Role == sites.RoleMaster:
			masters = append(masters, m)
		default:
			workers = append(workers, m)
		}
	}
	var plan []inventory.RolloutMachine
	var last inventory.RolloutMachine // the last machine put in a batch
	batch, inBatch, canaries := 0, 0, p.Canary
	for _, m := range append(masters, workers...) {
		rm := inventory.RolloutMachine{Position: len(plan), Name: m.Name, MAC: m.MAC, Role: m.Role}
		if m.BMC == nil {
			rm.Skipped = "no bmc in the site config: it cannot be rebuilt"
			plan = append(plan, rm)
			continue
		}
		rm.Canary = canaries > 0
		if rm.Canary {
			canaries--
		}
		if batch == 0 || m.Role == sites.RoleMaster || last.Role == sites.RoleMaster ||
			inBatch == p.BatchSize || last.Canary != rm.Canary {
			batch, inBatch = batch+1, 0
		}
		rm.Batch = batch
		inBatch++
		plan = append(plan, rm)
		last = rm
	}
	return plan
}

// Situation is what Decide looks at: a rollout with its plan and the
// machines' rebuilds, and the site around it.
type Situation struct {
	Rollout inventory.Rollout
	// Masters is the number of masters in the site's config.
	Masters int
	// Down holds the site's masters that are down now, with why, naming
	// the master ("lab-m3 failed"): in a rebuild (this rollout's or
	// another), or in machine state booting or failed.
	Down map[sites.MAC]string
	// Busy holds the machines with a rebuild in flight that is not their
	// rebuild in this rollout, with which one.
	Busy map[sites.MAC]string
	// Current holds the machines that run the rollout's target already.
	Current map[sites.MAC]bool
	Now     time.Time
}

// Skip is a machine of a plan not to rebuild, with why.
type Skip struct {
	Position int
	Reason   string
}

// Decision is what a rollout does now.
type Decision struct {
	State    inventory.RolloutState
	Reason   string // why it halted, waits, or finished so; "" while it simply runs
	Failures int
	Start    []int  // positions of the machines to start now, in order
	Skip     []Skip // machines to skip now: they run the target already
	// Wake is when the decision changes without any event (a canary soak
	// or a soak between batches ends); zero if never.
	Wake time.Time
}

// Decide decides what rollout s.Rollout does now. It is pure: the engine
// stores its decision and starts the machines it names.
//
//   - A rollout that is not live stays as it is.
//   - max_failures failed rebuilds halt it: nothing new starts; rebuilds
//     already power-cycled finish.
//   - When every machine has finished (or was skipped), it is done.
//   - Paused: nothing new starts.
//   - Batches run in order; a batch starts when every machine of the batches
//     before it has finished. After the canary batches the rollout waits in
//     canary-wait: until canary_soak has passed since the last canary
//     finished, or, when canary_soak is 0, for a confirmation. Before any
//     other batch it waits, running, until soak has passed since the last
//     machine of the batches before finished.
//   - A master starts only while at most floor((masters-1)/2) masters would
//     be down, counting it (etcd keeps quorum). A site with one master may
//     rebuild it: it cannot keep quorum through any reboot anyway. A site
//     with two cannot rebuild either without losing quorum: the rollout
//     halts when it comes to them.
//   - A machine rebuilding outside this rollout is waited for; one that runs
//     the target already is skipped.
func Decide(s Situation) Decision {
	ro := s.Rollout
	p := ro.Policy.WithDefaults()
	d := Decision{State: ro.State, Reason: ro.Reason, Failures: ro.Failures}
	if !ro.State.Live() {
		return d
	}
	var failed []string
	open := 0 // machines pending or in flight
	for _, m := range ro.Machines {
		switch {
		case m.Skipped != "":
		case m.Rebuild == nil || m.Rebuild.State.InFlight():
			open++
		case m.Rebuild.State == inventory.RebuildFailed:
			failed = append(failed, m.Name+": "+m.Rebuild.Reason)
		}
	}
	d.Failures = len(failed)
	if len(failed) >= p.MaxFailures {
		d.State = inventory.RolloutHalted
		d.Reason = fmt.Sprintf("halted after %d failed rebuild(s) (max_failures %d): %s",
			len(failed), p.MaxFailures, strings.Join(failed, "; "))
		return d
	}
	if open == 0 {
		d.State, d.Reason = inventory.RolloutDone, ""
		if len(failed) > 0 {
			d.Reason = fmt.Sprintf("%d rebuild(s) failed: %s", len(failed), strings.Join(failed, "; "))
		}
		return d
	}
	if ro.State == inventory.RolloutPaused {
		return d
	}
	d.State, d.Reason = inventory.RolloutRunning, ""
	batch := currentBatch(ro.Machines)
	if !batch[0].Canary && slices.ContainsFunc(ro.Machines, func(m inventory.RolloutMachine) bool { return m.Canary }) {
		if wait, wake := canaryWait(ro, p, s.Now); wait != "" {
			d.State, d.Reason, d.Wake = inventory.RolloutCanaryWait, wait, wake
			return d
		}
	}
	if wait, wake := soakWait(ro, p, batch, s.Now); wait != "" {
		d.Reason, d.Wake = wait, wake
		return d
	}
	var waits []string
	for _, m := range batch {
		if m.Rebuild != nil {
			continue
		}
		if s.Current[m.MAC] {
			d.Skip = append(d.Skip, Skip{m.Position, "already runs version " + sites.Version{Commit: ro.Target}.Short()})
			continue
		}
		if why, busy := s.Busy[m.MAC]; busy {
			waits = append(waits, fmt.Sprintf("%s is rebuilding outside this rollout (%s)", m.Name, why))
			continue
		}
		if m.Role == sites.RoleMaster {
			why, never := quorum(s, m)
			if never {
				d.State, d.Reason = inventory.RolloutHalted, why
				d.Start, d.Skip = nil, nil
				return d
			}
			if why != "" {
				waits = append(waits, why)
				continue
			}
		}
		d.Start = append(d.Start, m.Position)
	}
	if len(waits) > 0 {
		d.Reason = "waiting: " + strings.Join(waits, "; ")
	}
	return d
}

// currentBatch returns the machines of the first batch with a machine not
// finished; the caller made sure there is one.
func currentBatch(ms []inventory.RolloutMachine) []inventory.RolloutMachine {
	cur := -1
	for _, m := range ms {
		if m.Skipped == "" && (m.Rebuild == nil || m.Rebuild.State.InFlight()) && (cur == -1 || m.Batch < cur) {
			cur = m.Batch
		}
	}
	var batch []inventory.RolloutMachine
	for _, m := range ms {
		if m.Batch == cur && m.Skipped == "" {
			batch = append(batch, m)
		}
	}
	return batch
}

// canaryWait returns why the rollout waits after its canary, "" when it
// may go on, and when the soak ends.
func canaryWait(ro inventory.Rollout, p sites.RolloutPolicy, now time.Time) (string, time.Time) {
	if ro.ConfirmedBy != "" {
		return "", time.Time{}
	}
	soak := p.CanarySoak.Std()
	if soak <= 0 {
		return "canary done: waiting for a confirmation", time.Time{}
	}
	var last time.Time // when the last canary finished
	for _, m := range ro.Machines {
		if m.Canary && m.Rebuild != nil && m.Rebuild.Updated.After(last) {
			last = m.Rebuild.Updated
		}
	}
	end := last.Add(soak)
	if !now.Before(end) {
		return "", time.Time{}
	}
	return fmt.Sprintf("canary done: soaking %s until %s", soak, stamp(end)), end
}

// soakWait returns why the rollout waits before batch (the current one),
// "" when it may start, and when the soak ends. The soak counts from the
// last rebuild of the batches before batch finished. It does not apply
// after the canary, which canary_soak or a confirmation governs, nor to a
// batch already started.
func soakWait(ro inventory.Rollout, p sites.RolloutPolicy, batch []inventory.RolloutMachine, now time.Time) (string, time.Time) {
	soak := p.Soak.Std()
	if soak <= 0 || slices.ContainsFunc(batch, func(m inventory.RolloutMachine) bool { return m.Rebuild != nil }) {
		return "", time.Time{}
	}
	var last *inventory.RolloutMachine // of the batches before, the machine that finished last
	for i, m := range ro.Machines {
		if m.Batch < batch[0].Batch && m.Rebuild != nil && (last == nil || m.Rebuild.Updated.After(last.Rebuild.Updated)) {
			last = &ro.Machines[i]
		}
	}
	if last == nil || (last.Canary && !batch[0].Canary) {
		return "", time.Time{}
	}
	end := last.Rebuild.Updated.Add(soak)
	if !now.Before(end) {
		return "", time.Time{}
	}
	return fmt.Sprintf("soaking %s until %s after batch %d", soak, stamp(end), last.Batch), end
}

// quorum returns why master m may not start now ("" if it may), and
// whether it never may: the rule is quorumBlock's.
func quorum(s Situation, m inventory.RolloutMachine) (why string, never bool) {
	if quorumNever(s.Masters) {
		return fmt.Sprintf("%s: a site with %d masters loses etcd quorum with any master down, so a rollout does not rebuild them; rebuild them by hand",
			m.Name, s.Masters), true
	}
	if why := quorumBlock(s.Masters, s.Down, m.MAC); why != "" {
		return fmt.Sprintf("master %s waits: %s", m.Name, why), false
	}
	return "", false
}
