package inventory

import (
	"slices"

	"github.com/undercloud/undercloud/event"
)

// State is where a machine stands, as its boot events tell it. Every
// transition is caused by a persisted event (see nextState), so the events
// of a machine explain its state.
//
// The state follows the machine's boots, not the order in which their
// events reach the writer: events are stored in batches, and a step may be
// recorded after the machine has already reported booted (the Ignition
// handler records its event after answering). A step of a boot never undoes
// that boot's booted report; a step of a later boot makes the machine
// booting again.
type State string

// Machine states.
const (
	// StateDiscovered: seen on the network, in no site config, no boot step
	// seen yet.
	StateDiscovered State = "discovered"
	// StateNothingToBoot: seen, in no site config, and told there is
	// nothing to boot (its iPXE script exits to the firmware, which tries
	// its next boot device or retries). Declaring it in a site config
	// makes it known; its next boot step makes it booting again.
	StateNothingToBoot State = "nothing-to-boot"
	// StateKnown: declared in its site's config, never booted.
	StateKnown State = "known"
	// StateBooting: a step of a boot was seen, and that boot has not
	// reported booted (nor been told there is nothing to boot).
	StateBooting State = "booting"
	// StateProvisioned: the machine's latest boot reported booted, on its
	// current_version.
	StateProvisioned State = "provisioned"
	// StateFailed: a rebuild of the machine failed (a stage timed out, its
	// BMC did not answer); set by the rebuild engine, not by boot events.
	StateFailed State = "failed"
)

// States returns the machine states in life order, for filters and forms.
func States() []State {
	return []State{StateDiscovered, StateNothingToBoot, StateKnown, StateBooting, StateProvisioned, StateFailed}
}

// String returns the state's name, as stored.
func (s State) String() string { return string(s) }

// Valid reports whether s is one of States.
func (s State) Valid() bool { return slices.Contains(States(), s) }

// step is what of an event the machine state depends on.
type step struct {
	kind    event.Kind
	detail  string
	boot    string // its boot id; empty for the steps before /ipxe (DHCP, TFTP, the chain script)
	at      string // when it happened, stored form (timeFormat)
	version string // the version a booted report names, for current_version
}

// bootMarks is what a machine's row keeps of its boots so that nextState
// needs nothing but its arguments. Times are in the stored form
// (timeFormat), which sorts as time; empty is never.
type bootMarks struct {
	// endBoot and endAt name the machine's latest end of a boot, by time:
	// its booted report, or the script that told it there is nothing to
	// boot (columns ended_boot, ended_at).
	endBoot, endAt string
	// stepBoot and stepAt name its latest boot step, by time, that may
	// start a boot (a lease renewal may not): an end stored after a step of
	// a later boot must not make the machine look done (step_boot,
	// step_at).
	stepBoot, stepAt string
}

// undoes reports whether a boot step of boot at at, of another kind than a
// renewal, undoes the end m names: it is of a later boot. A step of the
// ended boot itself never is, whatever its time; a step without a boot id
// is placed by its time alone, and one at the end's time or earlier belongs
// to the ended boot or an older one.
func (m bootMarks) undoes(boot, at string) bool {
	return at > m.endAt && (boot == "" || boot != m.endBoot)
}

// ends returns the state in which the event s ends a boot, or "" if it
// ends none: a booted report provisions the machine; an unknown machine's
// script that exits (detail event.NothingToBoot) leaves it with nothing to
// boot -- without that state it would stay booting forever.
func ends(s step, discovered bool) State {
	switch {
	case s.kind == event.Booted:
		return StateProvisioned
	case s.kind == event.IPXEScript && s.detail == event.NothingToBoot && discovered:
		return StateNothingToBoot
	}
	return ""
}

// nextState is the machine state and marks after the event s, from cur and
// m; discovered says that no site config declares the machine.
//
// The rule: a machine's state follows its boots, not the order in which
// their events are stored. The latest end of a boot by time (ends: a booted
// report, or an unknown machine's script that exits) gives the state,
// unless a step of a later boot has been seen (bootMarks.undoes): then the
// machine is booting. So an end older than the latest changes nothing; a
// newer end gives its state unless a later boot's step was stored before
// it; a boot step (event.Kind.Step) makes the machine booting unless it is
// of the ended boot (same boot id, whatever its time) or, without a boot
// id, no later than the end, when it changes nothing. A DHCP exchange that
// a running OS makes too (renewing its lease, event.Kind.MayBeRunning)
// keeps a provisioned machine provisioned and is not taken for a later
// boot. Events that are no boot step (heartbeats, releases, denied
// requests, kinds added later) leave the state alone. The states no event
// sets -- known and discovered (site configs), failed (the rebuild engine)
// -- stay until a newer end or a step of a later boot.
//
// Two exceptions to the independence from order. At the very time of a
// nothing-to-boot exit, a step stored after it is its next step (events of
// the same time count in the order stored, as GroupBoots orders them); at
// the time of a booted report, a step is of that boot, whatever the order.
// And only the latest step is remembered, so an end stored after a step of
// its own boot stamped later than a later boot's steps would hide that
// later boot (never seen: a boot's steps are stamped before it reboots).
func nextState(cur State, m bootMarks, s step, discovered bool) (State, bootMarks) {
	if end := ends(s, discovered); end != "" {
		if s.at < m.endAt || s.at == m.endAt && s.boot <= m.endBoot {
			return cur, m // an older end, or the same one again
		}
		m.endBoot, m.endAt = s.boot, s.at
		if m.stepAt != "" && m.undoes(m.stepBoot, m.stepAt) {
			return cur, m // a later boot started: the machine is booting
		}
		return end, m
	}
	switch {
	case !s.kind.Step():
		return cur, m
	case s.kind.MayBeRunning() && cur == StateProvisioned:
		return cur, m
	}
	if !s.kind.MayBeRunning() && s.at > m.stepAt {
		m.stepBoot, m.stepAt = s.boot, s.at
	}
	// A step at the very time of a nothing-to-boot exit, stored after it.
	again := cur == StateNothingToBoot && s.at == m.endAt && s.boot != m.endBoot
	if m.endAt != "" && !m.undoes(s.boot, s.at) && !again {
		return cur, m // a step of the ended boot or an older one
	}
	return StateBooting, m
}

// fold applies steps, in order, to a machine in state cur with marks m. It
// also returns the version of the booted report that became the latest
// end, or empty if none did.
func fold(cur State, m bootMarks, steps []step, discovered bool) (State, bootMarks, string) {
	version := ""
	for _, s := range steps {
		prev := m
		cur, m = nextState(cur, m, s, discovered)
		if s.kind == event.Booted && s.version != "" && m != prev {
			version = s.version
		}
	}
	return cur, m, version
}
