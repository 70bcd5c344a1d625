package rebuild

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

var (
	t0        = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC) // the power cycle
	oldCommit = "1111111111111111111111111111111111111111"
	newCommit = "2222222222222222222222222222222222222222"
	timeouts  = sites.StageTimeouts{
		PowerCycle: sites.Duration(time.Minute), Booting: sites.Duration(3 * time.Minute),
		Config: sites.Duration(3 * time.Minute), Booted: sites.Duration(3 * time.Minute),
		Stall: sites.Duration(90 * time.Second),
	}
)

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// ev returns boot event id of machine 52:54:00:00:00:01 of kind k at t0+d.
func ev(id int64, k event.Kind, d time.Duration, version string) inventory.Event {
	return inventory.Event{ID: id, MAC: "52:54:00:00:00:01", Kind: k, At: at(d), Version: version}
}

// inBoot returns ev as a step of boot id.
func inBoot(ev inventory.Event, id string) inventory.Event {
	ev.BootID = id
	return ev
}

// inState returns a rebuild to newCommit in state s, power-cycled at t0.
func inState(s inventory.RebuildState) inventory.Rebuild {
	r := inventory.Rebuild{ID: 7, Site: "lab", Machine: "lab-w1", MAC: "52:54:00:00:00:01", Target: newCommit,
		State: s, StageStarted: t0, PowerCycledAt: t0}
	if s == inventory.RebuildPowerCycling || s == inventory.RebuildRequested {
		r.PowerCycledAt = time.Time{}
	}
	return r
}

// with applies changes to r.
func with(r inventory.Rebuild, change func(*inventory.Rebuild)) inventory.Rebuild {
	change(&r)
	return r
}

func TestAdvance(t *testing.T) {
	const (
		discover  = event.DHCPDiscover
		script    = event.IPXEScript
		artifact  = event.Artifact
		ignition  = event.Ignition
		booted    = event.Booted
		heartbeat = event.Heartbeat
	)
	booting := inState(inventory.RebuildBooting)
	// bootingSeen has seen the script at t0+10s.
	bootingSeen := with(booting, func(r *inventory.Rebuild) {
		r.BootStartedAt, r.LastEvent = at(5*time.Second), inventory.RefOf(ev(3, script, 10*time.Second, newCommit))
	})
	// trail is the script and the config of boot id, as bootingSeen and
	// served saw them.
	trail := func(id string) []inventory.Event {
		return []inventory.Event{inBoot(ev(3, script, 10*time.Second, newCommit), id), inBoot(ev(5, ignition, 30*time.Second, newCommit), id)}
	}
	served := with(bootingSeen, func(r *inventory.Rebuild) {
		r.State, r.StageStarted = inventory.RebuildConfigServed, at(30*time.Second)
		r.LastEvent = inventory.RefOf(ev(5, ignition, 30*time.Second, newCommit))
	})
	tests := map[string]struct {
		r       inventory.Rebuild
		events  []inventory.Event
		now     time.Duration // since t0
		want    inventory.Rebuild
		changed bool
	}{
		"requested is the engine's to take": {
			r: inState(inventory.RebuildRequested), events: []inventory.Event{ev(1, discover, time.Second, "")},
			want: inState(inventory.RebuildRequested),
		},
		"power-cycling without a boot step: no change (the engine cycles again)": {
			r: inState(inventory.RebuildPowerCycling), events: []inventory.Event{ev(1, discover, -time.Second, "")}, now: time.Hour,
			want: inState(inventory.RebuildPowerCycling),
		},
		"power-cycling, heartbeat of the old OS is no boot step": {
			r: inState(inventory.RebuildPowerCycling), events: []inventory.Event{ev(1, heartbeat, time.Second, oldCommit)},
			want: inState(inventory.RebuildPowerCycling),
		},
		"power-cycling, requests anyone can make without a token prove nothing": {
			r: inState(inventory.RebuildPowerCycling), events: []inventory.Event{
				ev(1, event.IgnitionDenied, time.Second, newCommit), ev(2, event.CallbackDenied, 2*time.Second, newCommit)},
			want: inState(inventory.RebuildPowerCycling),
		},
		"power-cycling, boot step since: the cycle happened": {
			r: inState(inventory.RebuildPowerCycling), events: []inventory.Event{ev(1, discover, time.Second, "")},
			want: with(inState(inventory.RebuildPowerCycling), func(r *inventory.Rebuild) {
				r.State, r.PowerCycledAt = inventory.RebuildBooting, t0 // the event is left for booting
			}),
			changed: true,
		},
		"booting, first step: progress, no transition": {
			r: booting, events: []inventory.Event{ev(1, discover, 5*time.Second, "")}, now: 6 * time.Second,
			want: with(booting, func(r *inventory.Rebuild) {
				r.BootStartedAt, r.LastEvent = at(5*time.Second), inventory.RefOf(ev(1, discover, 5*time.Second, ""))
			}),
			changed: true,
		},
		"booting, script and artifact move nothing": {
			r:      booting,
			events: []inventory.Event{ev(2, artifact, 12*time.Second, ""), ev(1, script, 10*time.Second, newCommit)},
			now:    20 * time.Second,
			want: with(booting, func(r *inventory.Rebuild) {
				r.BootStartedAt, r.LastEvent = at(10*time.Second), inventory.RefOf(ev(2, artifact, 12*time.Second, ""))
			}),
			changed: true,
		},
		"booting, config of the target: config-served": {
			r: bootingSeen, events: []inventory.Event{ev(5, ignition, 30*time.Second, newCommit)}, now: 31 * time.Second,
			want:    served,
			changed: true,
		},
		"booting, config of another version: keeps waiting": {
			r: bootingSeen, events: []inventory.Event{ev(5, ignition, 30*time.Second, oldCommit)}, now: 31 * time.Second,
			want: with(bootingSeen, func(r *inventory.Rebuild) {
				r.LastEvent = inventory.RefOf(ev(5, ignition, 30*time.Second, oldCommit))
			}),
			changed: true,
		},
		"booting, booted on the target without a config event: config-served first": {
			r: bootingSeen, events: []inventory.Event{ev(6, booted, 40*time.Second, newCommit)}, now: 41 * time.Second,
			want: with(bootingSeen, func(r *inventory.Rebuild) {
				r.State, r.StageStarted = inventory.RebuildConfigServed, at(40*time.Second) // event not consumed
			}),
			changed: true,
		},
		"booting, one transition per call": {
			r:      bootingSeen,
			events: []inventory.Event{ev(6, booted, 40*time.Second, newCommit), ev(5, ignition, 30*time.Second, newCommit)},
			now:    41 * time.Second,
			want:   served, changed: true,
		},
		"booting, booted on another version (an install image booted its old disk): keeps waiting": {
			r: bootingSeen, events: []inventory.Event{ev(6, booted, 40*time.Second, oldCommit)}, now: 41 * time.Second,
			want: with(bootingSeen, func(r *inventory.Rebuild) {
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, oldCommit))
			}),
			changed: true,
		},
		"config-served, booted on the target with its boot's script and config: booted": {
			r: served, events: append(trail("b1"), inBoot(ev(6, booted, 40*time.Second, newCommit), "b1")), now: 41 * time.Second,
			want: with(served, func(r *inventory.Rebuild) {
				r.State, r.StageStarted = inventory.RebuildBooted, at(40*time.Second)
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, newCommit))
			}),
			changed: true,
		},
		"config-served, a booted report alone (a forged callback): keeps waiting": {
			r: served, events: []inventory.Event{inBoot(ev(6, booted, 40*time.Second, newCommit), "b1")}, now: 41 * time.Second,
			want: with(served, func(r *inventory.Rebuild) {
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, newCommit))
			}),
			changed: true,
		},
		"config-served, booted report of another boot than the trail's: keeps waiting": {
			r: served, events: append(trail("b1"), inBoot(ev(6, booted, 40*time.Second, newCommit), "b2")), now: 41 * time.Second,
			want: with(served, func(r *inventory.Rebuild) {
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, newCommit))
			}),
			changed: true,
		},
		"config-served, booted report without a boot id: keeps waiting": {
			r: served, events: append(trail(""), ev(6, booted, 40*time.Second, newCommit)), now: 41 * time.Second,
			want: with(served, func(r *inventory.Rebuild) {
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, newCommit))
			}),
			changed: true,
		},
		"config-served, the trail lacks the script: keeps waiting": {
			r: served, events: append(trail("b1")[1:], inBoot(ev(6, booted, 40*time.Second, newCommit), "b1")), now: 41 * time.Second,
			want: with(served, func(r *inventory.Rebuild) {
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, newCommit))
			}),
			changed: true,
		},
		"config-served, a trail from before the power cycle proves nothing": {
			r: served, events: []inventory.Event{
				inBoot(ev(1, script, -20*time.Second, newCommit), "b0"), inBoot(ev(2, ignition, -10*time.Second, newCommit), "b0"),
				inBoot(ev(6, booted, 40*time.Second, newCommit), "b0")},
			now: 41 * time.Second,
			want: with(served, func(r *inventory.Rebuild) {
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, newCommit))
			}),
			changed: true,
		},
		"config-served, the trail's config stored after the report: booted at the report": {
			r: with(served, func(r *inventory.Rebuild) {
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, newCommit)) // seen, not proven then
			}),
			events: []inventory.Event{
				inBoot(ev(3, script, 10*time.Second, newCommit), "b1"), inBoot(ev(6, booted, 40*time.Second, newCommit), "b1"),
				inBoot(ev(7, ignition, 30*time.Second, newCommit), "b1")},
			now: 41 * time.Second,
			want: with(served, func(r *inventory.Rebuild) {
				r.State, r.StageStarted = inventory.RebuildBooted, at(40*time.Second)
				r.LastEvent = inventory.RefOf(ev(7, ignition, 30*time.Second, newCommit))
			}),
			changed: true,
		},
		"config-served, a booted report alone times out": {
			r: served, events: []inventory.Event{inBoot(ev(6, booted, 40*time.Second, newCommit), "b1")},
			now: 30*time.Second + 3*time.Minute + time.Second,
			want: with(served, func(r *inventory.Rebuild) {
				r.State, r.StageStarted = inventory.RebuildFailed, at(30*time.Second+3*time.Minute+time.Second)
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, newCommit))
				r.Reason = "no booted report on version 222222222222 with its boot's script and config within 3m0s " +
					"after the config was served at 2026-03-01T10:00:30Z; " +
					"last boot event: booted at 2026-03-01T10:00:40Z (version 222222222222)"
			}),
			changed: true,
		},
		"config-served, booted on another version (its old disk): keeps waiting": {
			r: served, events: []inventory.Event{ev(6, booted, 40*time.Second, oldCommit)}, now: 41 * time.Second,
			want: with(served, func(r *inventory.Rebuild) {
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, oldCommit))
			}),
			changed: true,
		},
		"booted: done": {
			r: inState(inventory.RebuildBooted), now: time.Minute,
			want: with(inState(inventory.RebuildBooted), func(r *inventory.Rebuild) {
				r.State, r.StageStarted = inventory.RebuildDone, at(time.Minute)
			}),
			changed: true,
		},
		"done stays done":     {r: inState(inventory.RebuildDone), now: time.Hour, want: inState(inventory.RebuildDone)},
		"failed stays failed": {r: inState(inventory.RebuildFailed), now: time.Hour, want: inState(inventory.RebuildFailed)},
		"events seen already are ignored": {
			r: bootingSeen, events: []inventory.Event{ev(2, ignition, 30*time.Second, newCommit)}, now: time.Minute,
			want: bootingSeen,
		},
		"events before the power cycle are ignored": {
			r: booting, events: []inventory.Event{ev(9, ignition, -time.Second, newCommit)}, now: time.Minute,
			want: booting,
		},
		"the rebuild's own events are ignored": {
			r: booting, events: []inventory.Event{ev(9, event.Rebuild, time.Second, newCommit)}, now: time.Minute,
			want: booting,
		},
		"booting, no boot step within the booting timeout": {
			r: booting, now: 3*time.Minute + time.Millisecond,
			want: with(booting, func(r *inventory.Rebuild) {
				r.State, r.StageStarted = inventory.RebuildFailed, at(3*time.Minute+time.Millisecond)
				r.Reason = "no boot request within 3m0s after the power cycle at 2026-03-01T10:00:00Z; last boot event: none"
			}),
			changed: true,
		},
		"booting, not yet overdue": {r: booting, now: 3 * time.Minute, want: booting},
		"booting, only a heartbeat: the machine never rebooted": {
			r: booting, events: []inventory.Event{ev(4, heartbeat, time.Minute, oldCommit)}, now: 4 * time.Minute,
			want: with(booting, func(r *inventory.Rebuild) {
				r.State, r.StageStarted = inventory.RebuildFailed, at(4*time.Minute)
				r.LastEvent = inventory.RefOf(ev(4, heartbeat, time.Minute, oldCommit))
				r.Reason = "no boot request within 3m0s after the power cycle at 2026-03-01T10:00:00Z; " +
					"last boot event: heartbeat at 2026-03-01T10:01:00Z (version 111111111111)"
			}),
			changed: true,
		},
		"booting, no step for the stall time after the last: power-cycling again": {
			r: bootingSeen, now: 100*time.Second + time.Millisecond,
			want: with(bootingSeen, func(r *inventory.Rebuild) {
				r.State, r.StageStarted, r.BootStartedAt = inventory.RebuildPowerCycling, at(100*time.Second+time.Millisecond), time.Time{}
				r.Reason = "power-cycling again: no boot step for 1m30s after ipxe-script at 2026-03-01T10:00:10Z (attempt 2 of 3)"
			}),
			changed: true,
		},
		"booting, the stall time not yet over": {r: bootingSeen, now: 100 * time.Second, want: bootingSeen},
		"booting, a new step restarts the stall time": {
			r: bootingSeen, events: []inventory.Event{ev(4, artifact, 90*time.Second, "")}, now: 170 * time.Second,
			want: with(bootingSeen, func(r *inventory.Rebuild) {
				r.LastEvent = inventory.RefOf(ev(4, artifact, 90*time.Second, ""))
			}),
			changed: true,
		},
		"booting, stalled again: the next attempt": {
			r: with(bootingSeen, func(r *inventory.Rebuild) {
				r.Reason = "power-cycling again: no boot step for 1m30s after dhcp-ack at 2026-03-01T09:58:00Z (attempt 2 of 3)"
			}),
			now: 2 * time.Minute,
			want: with(bootingSeen, func(r *inventory.Rebuild) {
				r.State, r.StageStarted, r.BootStartedAt = inventory.RebuildPowerCycling, at(2*time.Minute), time.Time{}
				r.Reason = "power-cycling again: no boot step for 1m30s after ipxe-script at 2026-03-01T10:00:10Z (attempt 3 of 3)"
			}),
			changed: true,
		},
		"booting, stalled after the last attempt: the config timeout decides": {
			r: with(bootingSeen, func(r *inventory.Rebuild) {
				r.Reason = "power-cycling again: no boot step for 1m30s after dhcp-ack at 2026-03-01T09:58:00Z (attempt 3 of 3)"
			}),
			now: 2 * time.Minute,
			want: with(bootingSeen, func(r *inventory.Rebuild) {
				r.Reason = "power-cycling again: no boot step for 1m30s after dhcp-ack at 2026-03-01T09:58:00Z (attempt 3 of 3)"
			}),
		},
		"booting, no step at all after the cycle: the booting timeout decides, not the stall time": {
			r: booting, now: 2 * time.Minute, want: booting,
		},
		"config-served never stalls (an install image installs quietly)": {
			r: served, now: 2*time.Minute + 59*time.Second, want: served,
		},
		"booting, no config within the config timeout of the first step": {
			r: bootingSeen, now: 5*time.Second + 3*time.Minute + time.Second,
			want: with(bootingSeen, func(r *inventory.Rebuild) {
				r.State, r.StageStarted = inventory.RebuildFailed, at(5*time.Second+3*time.Minute+time.Second)
				r.Reason = "no config of version 222222222222 fetched within 3m0s after the boot started at 2026-03-01T10:00:05Z; " +
					"last boot event: ipxe-script at 2026-03-01T10:00:10Z (version 222222222222)"
			}),
			changed: true,
		},
		"booting, a config stored before the deadline counts though read after it": {
			r: bootingSeen, events: []inventory.Event{ev(5, ignition, 30*time.Second, newCommit)}, now: time.Hour,
			want: served, changed: true,
		},
		"config-served, no booted report on the target within the booted timeout": {
			r: served, events: []inventory.Event{ev(6, booted, 40*time.Second, oldCommit)}, now: 30*time.Second + 3*time.Minute + time.Second,
			want: with(served, func(r *inventory.Rebuild) {
				r.State, r.StageStarted = inventory.RebuildFailed, at(30*time.Second+3*time.Minute+time.Second)
				r.LastEvent = inventory.RefOf(ev(6, booted, 40*time.Second, oldCommit))
				r.Reason = "no booted report on version 222222222222 with its boot's script and config within 3m0s " +
					"after the config was served at 2026-03-01T10:00:30Z; " +
					"last boot event: booted at 2026-03-01T10:00:40Z (version 111111111111)"
			}),
			changed: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, changed := Advance(tc.r, tc.events, at(tc.now), timeouts)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("rebuild (-want +got):\n%s", diff)
			}
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
		})
	}
}

// TestAdvanceBoot runs a whole boot through Advance, as the engine calls it:
// again with the same events until nothing changes.
func TestAdvanceBoot(t *testing.T) {
	events := []inventory.Event{
		ev(1, event.DHCPDiscover, 2*time.Second, ""),
		inBoot(ev(2, event.IPXEScript, 4*time.Second, newCommit), "b1"),
		inBoot(ev(3, event.Artifact, 5*time.Second, ""), "b1"),
		inBoot(ev(4, event.Booted, 20*time.Second, newCommit), "b1"), // stored before the config event
		inBoot(ev(5, event.Ignition, 15*time.Second, newCommit), "b1"),
	}
	r := inState(inventory.RebuildPowerCycling)
	r.StageStarted = at(-time.Second)
	var states []inventory.RebuildState
	for range 20 {
		next, changed := Advance(r, events, at(time.Minute), sites.StageTimeouts{}) // defaults
		if !changed {
			break
		}
		if next.State != r.State {
			states = append(states, next.State)
		}
		r = next
	}
	want := []inventory.RebuildState{inventory.RebuildBooting, inventory.RebuildConfigServed,
		inventory.RebuildBooted, inventory.RebuildDone}
	if diff := cmp.Diff(want, states); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if r.LastEvent.ID != 5 {
		t.Errorf("last event %v, want the config that completed the trail (5)", r.LastEvent)
	}
}
