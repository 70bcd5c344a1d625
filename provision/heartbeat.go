package provision

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

// heartbeatAccepted decides whether a heartbeat, whose credential (checked
// by pxe: authentic, bound to the machine's MAC) names boot bootID on
// version, still speaks for the machine. The credential has no expiry: an
// OS runs for months. It is revoked by what replaces the boot it was minted
// for:
//
//   - a rebuild or rollout to another version: the machine's assigned
//     version moves away from version when its power cycle starts;
//   - any later boot, at any version, once it reports booted: the machine's
//     latest booted report (lastBooted, "" if none) is then another boot.
//
// Both are in the inventory (the assignment, and the booted event stored
// synchronously before the report is answered), so the rule holds across
// server restarts with nothing but the key and the database. The latest
// *reported* boot rather than the latest *served* one: a boot that never
// came up (an install that failed) leaves the running OS, if any, the one
// that speaks, and an install-mode machine booting its disk through a
// local-boot script keeps its credential. A heartbeat of a boot that has
// not yet reported booted is refused until it has.
func heartbeatAccepted(version, bootID, assigned, lastBooted string) bool {
	return bootID != "" && version == assigned && bootID == lastBooted
}

// lastBoots remembers the boot id of each machine's latest booted report,
// so a heartbeat does not read the event log: filled from the inventory on
// first use after a start, updated by Booted. It holds one entry per
// machine that sent an authentic report.
type lastBoots struct {
	mu sync.Mutex
	m  map[sites.MAC]string
}

func (l *lastBoots) set(mac sites.MAC, bootID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[sites.MAC]string{}
	}
	l.m[mac] = bootID
}

func (l *lastBoots) get(mac sites.MAC) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, ok := l.m[mac]
	return id, ok
}

// lastBooted returns the boot id of mac's latest booted report, "" if none.
func (s *Service) lastBooted(ctx context.Context, mac sites.MAC) (string, error) {
	if id, ok := s.booted.get(mac); ok {
		return id, nil
	}
	ev, err := s.DB.LastEvent(ctx, mac, event.Booted)
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		return "", nil // not cached: the first booted report fills it
	case err != nil:
		return "", err
	}
	s.booted.set(mac, ev.BootID)
	return ev.BootID, nil
}

// Heartbeat records that a machine is alive (pxe.Callbacks), if its
// heartbeat credential still speaks for it (heartbeatAccepted); else it
// returns an error wrapping pxe.ErrRefused.
func (s *Service) Heartbeat(ctx context.Context, r pxe.BootReport) error {
	mac := sites.MAC(r.MAC)
	row, err := s.DB.Machine(ctx, mac)
	if errors.Is(err, inventory.ErrNotFound) {
		return fmt.Errorf("heartbeat of unknown machine %s: %w", mac, pxe.ErrRefused)
	}
	if err != nil {
		return err
	}
	last, err := s.lastBooted(ctx, mac)
	if err != nil {
		return err
	}
	if !heartbeatAccepted(r.Version, r.BootID, row.AssignedVersion, last) {
		return fmt.Errorf("heartbeat of %s from boot %s at %s: revoked (assigned %s, last booted boot %q): %w",
			mac, r.BootID, r.Version, row.AssignedVersion, last, pxe.ErrRefused)
	}
	return s.DB.Record(ctx, inventory.Event{At: r.Time, MAC: mac, BootID: r.BootID,
		Kind: event.Heartbeat, Version: r.Version, IP: r.IP, Repeat: "heartbeat"})
}
