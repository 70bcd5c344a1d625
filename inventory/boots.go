package inventory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// DefaultBootGap is the silence after which a boot step starts a new boot
// even though the previous one never reported booted: a failed boot retried
// later.
const DefaultBootGap = 10 * time.Minute

// Boot is one boot of a machine: its events from the step that started it to
// the step before the next boot.
type Boot struct {
	MAC    sites.MAC
	BootID string // the first boot ID among its events, if any
	Start  time.Time
	End    time.Time // the last event's time
	// Version is the version it reported booted on, or else the last
	// version its steps mention.
	Version string
	Booted  bool // it reported booted
	Failed  bool // its Ignition config was refused and it never booted
	Steps   []Step
}

// Duration is the time from the boot's first step to its last.
func (b Boot) Duration() time.Duration { return b.End.Sub(b.Start) }

// Step is one event of a boot with the time since the step before it.
type Step struct {
	Event
	Since time.Duration // zero for the first step
}

// startsBoot reports whether an event of kind k begins a boot when the
// machine has already booted: the firmware's DHCPDISCOVER, or the first
// fetches of a machine whose DHCP another server answers. A running OS
// renewing its lease (request, ack) does not.
func startsBoot(k event.Kind) bool {
	switch k {
	case event.DHCPDiscover, event.TFTP, event.IPXEChain, event.IPXEScript:
		return true
	}
	return false
}

// GroupBoots splits one machine's events into boots, oldest first. A new
// boot starts at a boot-starting step (startsBoot) that comes after the
// current boot reported booted or sent a heartbeat, or after more than gap
// of silence (DefaultBootGap if gap is 0). When an event carries a boot ID
// other than the current boot's, the new boot starts at the first DISCOVER
// after the last event of the old ID (the firmware's DHCP of the new boot
// carries no ID), or at that event if there is none. Events are ordered by
// time, then ID.
func GroupBoots(events []Event, gap time.Duration) []Boot {
	if gap <= 0 {
		gap = DefaultBootGap
	}
	evs := slices.Clone(events)
	slices.SortStableFunc(evs, func(a, b Event) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	var groups [][]Event
	var cur []Event
	running := false // the current boot booted or sent a heartbeat
	bootID := ""     // the current boot's ID
	for _, ev := range evs {
		switch {
		case len(cur) == 0:
		case startsBoot(ev.Kind) && (running || ev.At.Sub(cur[len(cur)-1].At) > gap):
			groups, cur, running, bootID = append(groups, cur), nil, false, ""
		case ev.BootID != "" && bootID != "" && ev.BootID != bootID:
			i := splitAt(cur, bootID)
			groups = append(groups, cur[:i:i])
			cur, running, bootID = slices.Clone(cur[i:]), false, ""
			for _, e := range cur {
				running, bootID = note(e, running, bootID)
			}
		}
		cur = append(cur, ev)
		running, bootID = note(ev, running, bootID)
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	boots := make([]Boot, 0, len(groups))
	for _, g := range groups {
		if len(g) > 0 {
			boots = append(boots, makeBoot(g))
		}
	}
	return boots
}

// note updates what GroupBoots tracks of the current boot with its event ev.
func note(ev Event, running bool, bootID string) (bool, string) {
	if ev.Kind == event.Booted || ev.Kind == event.Heartbeat {
		running = true
	}
	if bootID == "" {
		bootID = ev.BootID
	}
	return running, bootID
}

// splitAt returns where the boot after the events of boot ID old begins in
// cur: the first DISCOVER after the last event of old, else the end.
func splitAt(cur []Event, old string) int {
	last := 0
	for i, ev := range cur {
		if ev.BootID == old {
			last = i
		}
	}
	for i := last + 1; i < len(cur); i++ {
		if cur[i].Kind == event.DHCPDiscover {
			return i
		}
	}
	return len(cur)
}

func makeBoot(g []Event) Boot {
	b := Boot{MAC: g[0].MAC, Start: g[0].At, End: g[len(g)-1].At, Steps: make([]Step, len(g))}
	denied := false
	for i, ev := range g {
		b.Steps[i].Event = ev
		if i > 0 {
			b.Steps[i].Since = ev.At.Sub(g[i-1].At)
		}
		if b.BootID == "" {
			b.BootID = ev.BootID
		}
		switch {
		case ev.Kind == event.Booted:
			b.Booted = true
			b.Version = ev.Version
		case ev.Kind == event.IgnitionDenied:
			denied = true
		}
		if ev.Version != "" && !b.Booted {
			b.Version = ev.Version
		}
	}
	b.Failed = denied && !b.Booted
	return b
}

// Boots returns the latest boots of a machine, newest first, at most n (10
// if n is 0), grouped from its last thousand events by GroupBoots: the
// oldest boot returned may lack its first steps.
func (db *DB) Boots(ctx context.Context, mac sites.MAC, n int) ([]Boot, error) {
	if n <= 0 {
		n = 10
	}
	evs, err := db.Events(ctx, mac, 1000)
	if err != nil {
		return nil, fmt.Errorf("boots of %s: %w", mac, err)
	}
	boots := GroupBoots(evs, 0)
	slices.Reverse(boots)
	if len(boots) > n {
		boots = boots[:n]
	}
	return boots, nil
}
