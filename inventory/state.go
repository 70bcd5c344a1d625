package inventory

import "slices"

// State is where a machine stands, as its boot events tell it. Every
// transition is caused by a persisted event (see nextState), so the events
// of a machine explain its state.
type State string

// Machine states.
const (
	// StateDiscovered: seen on the network, in no site config, no boot step
	// seen yet.
	StateDiscovered State = "discovered"
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
	return []State{StateDiscovered, StateKnown, StateBooting, StateProvisioned, StateFailed}
}

// String returns the state's name, as stored.
func (s State) String() string { return string(s) }

// Valid reports whether s is one of States.
func (s State) Valid() bool { return slices.Contains(States(), s) }

// nextState is the machine state after an event of kind k, from cur.
//
// DHCP requests and acks also come from the OS of a running machine renewing
// its lease, so they keep a provisioned machine provisioned; only a DISCOVER
// or a step no running machine makes (TFTP, iPXE, artifacts, Ignition)
// starts a boot. Kinds not listed here (heartbeats, releases, informs, and
// kinds added later) leave the state alone -- ignition-denied too: anyone can
// send a MAC without a token, and that must not mark a healthy machine.
func nextState(cur State, k EventKind) State {
	switch k {
	case EventBooted:
		return StateProvisioned
	case EventDHCPDiscover, EventTFTP, EventIPXEChain, EventIPXEScript, EventArtifact, EventIgnition:
		return StateBooting
	case EventDHCPOffer, EventDHCPRequest, EventDHCPAck:
		if cur == StateProvisioned {
			return cur
		}
		return StateBooting
	}
	return cur
}
