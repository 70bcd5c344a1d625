package provision

import (
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// The boot-duration metric counts from a boot's first request after DHCP to
// its booted report; a boot that never came up counts into the next one;
// a report whose start was not seen (a restart) is not timed.
func TestBootClock(t *testing.T) {
	var c bootClock
	m := sites.MAC("52:54:00:99:00:21")
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	c.step(m, event.DHCPDiscover, at(0)) // not a start: DHCP is the firmware's
	c.step(m, event.IPXEChain, at(2))
	c.step(m, event.Artifact, at(3))
	c.step(m, event.IPXEScript, at(1)) // stamped earlier, stored later
	if d, ok := c.booted(m, at(40)); !ok || d != 39*time.Second {
		t.Errorf("boot from its script at 1 s to booted at 40 s: %s %v, want 39s", d, ok)
	}
	if _, ok := c.booted(m, at(41)); ok {
		t.Error("a second booted report of the same boot was timed again")
	}
	c.step(m, event.TFTP, at(100)) // this boot fails
	c.step(m, event.TFTP, at(200)) // the next one comes up
	if d, ok := c.booted(m, at(230)); !ok || d != 130*time.Second {
		t.Errorf("boot after a failed one: %s %v, want 130s from the failed one's start", d, ok)
	}
}
