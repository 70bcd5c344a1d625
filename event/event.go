// Package event is the one vocabulary of boot events: the kinds of step the
// DHCP, TFTP and HTTP paths record, the rebuild engine follows and the
// inventory turns into a machine's state, and which of them show a machine
// booting. Every package that records or reads boot events uses these
// names, so a new kind is added here once and every reader agrees on it.
package event

// Kind names one step of a boot, as stored in the inventory. The list is
// open: a kind not known here is stored and shown, and is not a boot step.
type Kind string

// The kinds of boot event (docs/boot-flow.md).
const (
	DHCPDiscover Kind = "dhcp-discover"
	DHCPOffer    Kind = "dhcp-offer"
	DHCPRequest  Kind = "dhcp-request"
	DHCPAck      Kind = "dhcp-ack"
	DHCPNak      Kind = "dhcp-nak"
	DHCPRelease  Kind = "dhcp-release"
	DHCPDecline  Kind = "dhcp-decline"
	DHCPInform   Kind = "dhcp-inform"

	TFTP           Kind = "tftp"            // a TFTP transfer (or refusal) of an iPXE binary
	Firmware       Kind = "firmware"        // an iPXE binary fetched over HTTP (UEFI HTTP boot)
	IPXEChain      Kind = "ipxe-chain"      // GET /boot.ipxe: the fixed chain script
	IPXEScript     Kind = "ipxe-script"     // GET /ipxe: the machine's script; Detail is its action
	IPXEDenied     Kind = "ipxe-denied"     // GET /ipxe from an address not the machine's: answered without credentials
	Artifact       Kind = "artifact"        // an image artifact was served; File is its digest
	Ignition       Kind = "ignition"        // the Ignition config was served
	IgnitionDenied Kind = "ignition-denied" // a config request without a valid token, or from another address
	Booted         Kind = "booted"          // the node reported it booted on Version
	Heartbeat      Kind = "heartbeat"       // the node reported it is alive
	CallbackDenied Kind = "callback-denied" // a booted/heartbeat call without a valid token, or from another address
	// Rebuild records a rebuild's transition (its detail is the new state),
	// so a machine's timeline shows what the engine did among its boots.
	Rebuild Kind = "rebuild"
)

// NothingToBoot is the detail of an ipxe-script event whose script exits:
// the server had nothing for the machine to boot. pxe writes it and the
// inventory's state rule reads it, so it is defined here once.
const NothingToBoot = "exit"

// String returns the kind's name, as stored.
func (k Kind) String() string { return string(k) }

// Step reports whether an event of kind k shows the machine itself taking
// a step of a network boot: a DHCP exchange, a firmware or script fetched,
// an artifact or its config served, its booted report. Not a step: a
// heartbeat (a running OS), a rebuild's own transition, a release or
// decline, and a denied request -- anyone can send a MAC without a token,
// and that must neither move a rebuild on nor mark a healthy machine.
func (k Kind) Step() bool {
	switch k {
	case DHCPDiscover, DHCPOffer, DHCPRequest, DHCPAck, TFTP, Firmware, IPXEChain, IPXEScript, Artifact, Ignition, Booted:
		return true
	}
	return false
}

// MayBeRunning reports whether a step of kind k may come from a machine
// that is up rather than booting: its OS renewing its DHCP lease.
func (k Kind) MayBeRunning() bool {
	return k == DHCPOffer || k == DHCPRequest || k == DHCPAck
}
