package provision

import (
	"sync"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// bootClock times boots for the boot-duration metric (Metrics.BootCompleted)
// without reading the event log on every booted report: it keeps, for each
// known machine, the time of its first network-boot request (TFTP, the chain
// script or its iPXE script) since its last booted report. A boot that never
// reported booted leaves its start, so the next one counts from there: the
// metric is the time to a boot that came up. After a server restart the
// boots under way are not timed. One entry per declared machine at most.
type bootClock struct {
	mu    sync.Mutex
	start map[sites.MAC]time.Time
}

// startsClock reports whether an event of kind k is a boot's first request
// to the server after DHCP.
func startsClock(k event.Kind) bool {
	return k == event.TFTP || k == event.IPXEChain || k == event.IPXEScript
}

// step notes a request of machine mac at at.
func (c *bootClock) step(mac sites.MAC, k event.Kind, at time.Time) {
	if !startsClock(k) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.start == nil {
		c.start = map[sites.MAC]time.Time{}
	}
	if t, ok := c.start[mac]; !ok || at.Before(t) {
		c.start[mac] = at
	}
}

// booted ends mac's boot at at and returns how long it took, if its start
// was seen.
func (c *bootClock) booted(mac sites.MAC, at time.Time) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.start[mac]
	delete(c.start, mac)
	if !ok || at.Before(t) {
		return 0, false
	}
	return at.Sub(t), true
}
