package event

import "testing"

func TestStep(t *testing.T) {
	steps := []Kind{DHCPDiscover, DHCPOffer, DHCPRequest, DHCPAck, TFTP, Firmware, IPXEChain, IPXEScript, Artifact, Ignition, Booted}
	notSteps := []Kind{DHCPNak, DHCPRelease, DHCPDecline, DHCPInform, IPXEDenied, IgnitionDenied, CallbackDenied, Heartbeat, Rebuild, "later-kind"}
	for _, k := range steps {
		if !k.Step() {
			t.Errorf("%s.Step() = false, want true", k)
		}
	}
	for _, k := range notSteps {
		if k.Step() {
			t.Errorf("%s.Step() = true, want false: it does not show the machine booting", k)
		}
	}
	for _, k := range append(steps, notSteps...) {
		want := k == DHCPOffer || k == DHCPRequest || k == DHCPAck
		if k.MayBeRunning() != want {
			t.Errorf("%s.MayBeRunning() = %v, want %v", k, !want, want)
		}
	}
}
