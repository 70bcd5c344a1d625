package inventory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// BootTrail returns the steps that prove a machine's boots into version
// since a time: its ipxe-script, ignition and booted events on version
// that carry a boot id, oldest first, the latest n. A rebuild completes
// only on a booted report whose boot left the script and the config in
// this trail; it reads the trail apart from the events it follows, because
// it has consumed the script and the config by the time the report comes,
// and because no flood of other events of the machine (denied requests,
// DHCP) may push the trail out of a bounded read.
func (db *DB) BootTrail(ctx context.Context, mac sites.MAC, version string, since time.Time, n int) ([]Event, error) {
	evs, err := db.events(ctx, `SELECT `+eventColumns+` FROM boot_events
		WHERE mac = ? AND at >= ? AND version = ? AND kind IN (?, ?, ?) AND boot_id IS NOT NULL AND boot_id != ''
		ORDER BY id DESC LIMIT ?`,
		string(mac), since.UTC().Format(timeFormat), version,
		string(event.IPXEScript), string(event.Ignition), string(event.Booted), limit(n))
	if err != nil {
		return nil, fmt.Errorf("boot trail of %s since %s: %w", mac, since.Format(time.RFC3339), err)
	}
	slices.Reverse(evs)
	return evs, nil
}
