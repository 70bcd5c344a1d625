package inventory

import (
	"slices"

	"github.com/undercloud/undercloud/event"
)

// State is where a machine stands, as its boot events tell it. Every
// transition is caused by a persisted event (see nextState), so the events
// of a machine explain its state.
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
	// StateBooting: a boot step was seen since the machine last reported
	// booted.
	StateBooting State = "booting"
	// StateProvisioned: the machine reported booted, on its current_version.
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

// nextState is the machine state after an event of kind k with detail,
// from cur; discovered says that no site config declares the machine.
//
// A booted report provisions the machine. An unknown machine's script that
// exits (an ipxe-script event with detail event.NothingToBoot) leaves it with
// nothing to boot: without that state it would stay booting forever. Any
// other boot step (event.Kind.Step) means it is booting, except a DHCP
// exchange that a running OS makes too (renewing its lease), which keeps a
// provisioned machine provisioned. Events that are no boot step
// (heartbeats, releases, denied requests, kinds added later) leave the
// state alone.
func nextState(cur State, k event.Kind, detail string, discovered bool) State {
	switch {
	case k == event.Booted:
		return StateProvisioned
	case k == event.IPXEScript && detail == event.NothingToBoot && discovered:
		return StateNothingToBoot
	case !k.Step():
		return cur
	case k.MayBeRunning() && cur == StateProvisioned:
		return cur
	}
	return StateBooting
}
