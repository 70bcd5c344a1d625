package rebuild

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// Advance decides the next step of rebuild r from the boot events of its
// machine, at time now, under the stage timeouts t (zero fields take their
// defaults). It returns the rebuild as it should be stored and whether it
// changed. It moves at most one state per call, so that the engine stores
// every transition; call it again with the same events until it reports no
// change.
//
// Events with an ID up to r.LastEvent.ID (already seen), from before the
// power cycle, and the rebuilds' own events are ignored, so the caller may
// pass a superset. What moves a rebuild on:
//
//   - power-cycling: any boot step since the stage started means the power
//     cycle happened (the server stopped during the BMC call): booting. No
//     step: no change; the engine issues the power cycle (again).
//   - booting: the Ignition config of the target version served:
//     config-served. A booted report on the target proves it too (the config
//     event may be stored after it, or dropped by a full queue), so it also
//     moves to config-served, and the next call to booted.
//   - config-served: a booted report on the target version with the trail
//     of its boot since the power cycle -- the ipxe-script and the ignition
//     events of the target version with the booted report's boot id --
//     booted. A booted report alone proves nothing: its token may have
//     leaked, and a forged one would complete the rebuild of a machine that
//     never booted (and tell a site its masters are up). Without the trail
//     it keeps waiting, until the trail comes or the stage times out. A
//     booted report on another version (an install image that booted its
//     old disk, an old config) is not success either.
//   - booted: done.
//
// The trail may have been seen already (the script and the config come
// before the report), so the caller passes a rebuild's trail events since
// the power cycle along with the events it has not seen (see
// inventory.DB.BootTrail).
//
// A boot that stalls is power-cycled again: in booting, after the first
// boot step, no further step within t.Stall moves the rebuild back to
// power-cycling, with a reason naming the attempt, at most MaxStallCycles
// times (see stalled); the engine makes the BMC call.
//
// Timeouts, checked after the events, fail the rebuild: in booting, no boot
// step within t.Booting of the power cycle, or no config within t.Config of
// the first boot step; in config-served, no booted report with its trail
// within t.Booted of the config. The power_cycle timeout bounds the BMC call
// itself, which the engine makes.
func Advance(r inventory.Rebuild, events []inventory.Event, now time.Time, t sites.StageTimeouts) (inventory.Rebuild, bool) {
	t = sites.RolloutPolicy{Timeouts: t}.WithDefaults().Timeouts
	switch r.State {
	case inventory.RebuildPowerCycling:
		for _, ev := range newEvents(r, events, r.StageStarted) {
			if ev.Kind.Step() {
				// The cycle was issued when the stage started; the first
				// step proves it was accepted.
				r.State, r.PowerCycledAt = inventory.RebuildBooting, r.StageStarted
				return r, true
			}
		}
		return r, false
	case inventory.RebuildBooting, inventory.RebuildConfigServed:
		return follow(r, events, now, t)
	case inventory.RebuildBooted:
		r.State, r.StageStarted = inventory.RebuildDone, now
		return r, true
	}
	return r, false
}

// follow advances a rebuild in booting or config-served.
func follow(r inventory.Rebuild, events []inventory.Event, now time.Time, t sites.StageTimeouts) (inventory.Rebuild, bool) {
	changed := false
	since := r.PowerCycledAt
	if since.IsZero() {
		since = r.StageStarted
	}
	for _, ev := range newEvents(r, events, since) {
		onTarget := ev.Version == r.Target
		if r.State == inventory.RebuildBooting && ev.Kind == event.Booted && onTarget {
			// Not consumed: the next call sees it again, in config-served.
			r.State, r.StageStarted = inventory.RebuildConfigServed, ev.At
			if r.BootStartedAt.IsZero() {
				r.BootStartedAt = ev.At
			}
			return r, true
		}
		r.LastEvent, changed = inventory.RefOf(ev), true
		if r.BootStartedAt.IsZero() && ev.Kind.Step() {
			r.BootStartedAt = ev.At
		}
		switch {
		case r.State == inventory.RebuildBooting && ev.Kind == event.Ignition && onTarget:
			r.State, r.StageStarted = inventory.RebuildConfigServed, ev.At
			return r, true
		case r.State == inventory.RebuildConfigServed:
			// The report, or the last step of its trail, may come last.
			if b, ok := provenBoot(r, events, since, ev.ID); ok {
				r.State, r.StageStarted = inventory.RebuildBooted, b.At
				return r, true
			}
		}
	}
	if reason := overdue(r, now, t); reason != "" {
		r.State, r.Reason, r.StageStarted = inventory.RebuildFailed, reason, now
		return r, true
	}
	if reason := stalled(r, now, t); reason != "" {
		// The engine makes the BMC call (see Engine.powerCycle); the boot
		// that follows starts the config timeout anew.
		r.State, r.Reason, r.StageStarted = inventory.RebuildPowerCycling, reason, now
		r.BootStartedAt = time.Time{}
		return r, true
	}
	return r, changed
}

// MaxStallCycles bounds the power cycles a rebuild makes again for a stalled
// boot (see stalled): past them, the stage timeouts decide.
const MaxStallCycles = 2

// stallPrefix starts the reason of a power cycle made again for a stalled
// boot; Attempt reads the attempt back from it.
const stallPrefix = "power-cycling again: "

// stalled returns why r, in booting, must be power-cycled again at now, or
// "": its machine started booting but has shown no boot step for t.Stall,
// and it has been power-cycled again fewer than MaxStallCycles times. A
// boot that lost its server in the middle of a fetch (a restart) may give
// up and never ask again; waiting for the config timeout would hold a
// rollout for minutes. Before the first boot step the booting timeout
// decides instead: a server may take minutes to POST.
func stalled(r inventory.Rebuild, now time.Time, t sites.StageTimeouts) string {
	if r.State != inventory.RebuildBooting || r.BootStartedAt.IsZero() || t.Stall <= 0 {
		return ""
	}
	last, what := r.BootStartedAt, "the first boot step"
	if r.LastEvent.Kind.Step() && !r.LastEvent.At.Before(last) {
		last, what = r.LastEvent.At, string(r.LastEvent.Kind)
	}
	d := t.Stall.Std()
	attempt := Attempt(r)
	if now.Sub(last) <= d || attempt > MaxStallCycles {
		return ""
	}
	return fmt.Sprintf("%sno boot step for %s after %s at %s (attempt %d of %d)",
		stallPrefix, d, what, stamp(last), attempt+1, MaxStallCycles+1)
}

// Attempt returns which power cycle of r is the latest: 1 for the first, 2
// and on for those made again for a stalled boot (see stalled), as its
// reason says.
func Attempt(r inventory.Rebuild) int {
	var n, of int
	i := strings.LastIndex(r.Reason, "(attempt ")
	if !strings.HasPrefix(r.Reason, stallPrefix) || i < 0 {
		return 1
	}
	if _, err := fmt.Sscanf(r.Reason[i:], "(attempt %d of %d)", &n, &of); err != nil || n < 1 {
		return 1
	}
	return n
}

// newEvents returns the events of events that r has not seen yet, in ID
// order: after its last event, at or after since, not a rebuild's own.
func newEvents(r inventory.Rebuild, events []inventory.Event, since time.Time) []inventory.Event {
	var out []inventory.Event
	for _, ev := range events {
		if ev.ID > r.LastEvent.ID && !ev.At.Before(since) && ev.Kind != event.Rebuild &&
			(r.MAC == "" || ev.MAC == "" || ev.MAC == r.MAC) {
			out = append(out, ev)
		}
	}
	slices.SortFunc(out, func(a, b inventory.Event) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// provenBoot returns the booted report on r's target, among events with an
// ID up to upTo and since the power cycle, whose boot left its trail there:
// the ipxe-script and the ignition events of the target version with the
// report's boot id.
func provenBoot(r inventory.Rebuild, events []inventory.Event, since time.Time, upTo int64) (inventory.Event, bool) {
	var mine []inventory.Event
	for _, ev := range events {
		if ev.ID <= upTo && !ev.At.Before(since) && ev.Version == r.Target && ev.BootID != "" &&
			(r.MAC == "" || ev.MAC == "" || ev.MAC == r.MAC) {
			mine = append(mine, ev)
		}
	}
	has := func(k event.Kind, boot string) bool {
		return slices.ContainsFunc(mine, func(ev inventory.Event) bool { return ev.Kind == k && ev.BootID == boot })
	}
	for _, b := range mine {
		if b.Kind == event.Booted && has(event.IPXEScript, b.BootID) && has(event.Ignition, b.BootID) {
			return b, true
		}
	}
	return inventory.Event{}, false
}

// overdue returns why r has overrun its stage at now, or "".
func overdue(r inventory.Rebuild, now time.Time, t sites.StageTimeouts) string {
	short := sites.Version{Commit: r.Target}.Short()
	switch {
	case r.State == inventory.RebuildBooting && r.BootStartedAt.IsZero():
		if d := t.Booting.Std(); now.Sub(r.StageStarted) > d {
			return fmt.Sprintf("no boot request within %s after the power cycle at %s; last boot event: %s",
				d, stamp(r.StageStarted), r.LastEvent)
		}
	case r.State == inventory.RebuildBooting:
		if d := t.Config.Std(); now.Sub(r.BootStartedAt) > d {
			return fmt.Sprintf("no config of version %s fetched within %s after the boot started at %s; last boot event: %s",
				short, d, stamp(r.BootStartedAt), r.LastEvent)
		}
	case r.State == inventory.RebuildConfigServed:
		if d := t.Booted.Std(); now.Sub(r.StageStarted) > d {
			return fmt.Sprintf("no booted report on version %s with its boot's script and config within %s after the config was served at %s; last boot event: %s",
				short, d, stamp(r.StageStarted), r.LastEvent)
		}
	}
	return ""
}

// stamp formats a time for a reason.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
