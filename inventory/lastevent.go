package inventory

import (
	"context"
	"fmt"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// LastEvent returns the newest stored event of kind for machine mac, or
// an error wrapping ErrNotFound. Retention keeps a machine's last boot, so the last booted
// event of a machine still running is always there.
func (db *DB) LastEvent(ctx context.Context, mac sites.MAC, kind event.Kind) (Event, error) {
	ev, err := scanEvent(db.queryRow(ctx, `SELECT `+eventColumns+` FROM boot_events
		WHERE mac = ? AND kind = ? ORDER BY id DESC LIMIT 1`, string(mac), string(kind)))
	if err != nil {
		return Event{}, fmt.Errorf("last %s event of %s: %w", kind, mac, err)
	}
	return ev, nil
}
