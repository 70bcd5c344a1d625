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
//   - any later boot, at any version, once it reports booted or is served
//     its config: the machine's latest booted report (lastBooted) and its
//     latest served config (lastServed) are then another boot ("" if none).
//
// The latest booted boot speaks as well as the latest served one: a boot
// that never came up (an install that failed) leaves the running OS, if
// any, the one that speaks, and an install-mode machine booting its disk
// through a local-boot script keeps its credential. The latest served boot
// speaks before its booted report is stored: its heartbeat timer may fire
// first. Both are in the inventory (the assignment, the booted event stored
// before the report is answered, the ignition event), so the rule holds
// across server restarts with nothing but the key and the database.
func heartbeatAccepted(version, bootID, assigned, lastBooted, lastServed string) bool {
	return bootID != "" && version == assigned && (bootID == lastBooted || bootID == lastServed)
}

// lastBoots remembers the boot id of each machine's latest booted report
// (or served config), so a heartbeat does not read the event log: filled
// from the inventory on first use after a start, updated by Booted (or
// Config). It holds one entry per machine that sent an authentic request.
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
	return s.booted.lookup(ctx, s.DB, mac, event.Booted)
}

// lastServed returns the boot id of mac's latest served config, "" if none.
func (s *Service) lastServed(ctx context.Context, mac sites.MAC) (string, error) {
	return s.served.lookup(ctx, s.DB, mac, event.Ignition)
}

// lookup returns mac's remembered boot id, else that of its latest event of
// kind in db, "" if none.
func (l *lastBoots) lookup(ctx context.Context, db *inventory.DB, mac sites.MAC, kind event.Kind) (string, error) {
	if id, ok := l.get(mac); ok {
		return id, nil
	}
	ev, err := db.LastEvent(ctx, mac, kind)
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		return "", nil // not cached: the next report or config fills it
	case err != nil:
		return "", err
	}
	l.set(mac, ev.BootID)
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
	served, err := s.lastServed(ctx, mac)
	if err != nil {
		return err
	}
	if !heartbeatAccepted(r.Version, r.BootID, row.AssignedVersion, last, served) {
		return fmt.Errorf("heartbeat of %s from boot %s at %s: revoked (assigned %s, last booted boot %q, last served boot %q): %w",
			mac, r.BootID, r.Version, row.AssignedVersion, last, served, pxe.ErrRefused)
	}
	return s.DB.Record(ctx, inventory.Event{At: r.Time, MAC: mac, BootID: r.BootID,
		Kind: event.Heartbeat, Version: r.Version, IP: r.IP, Repeat: "heartbeat"})
}
