package rebuild

import (
	"context"
	"time"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// Error kinds. They are the inventory's, so that the one place that maps
// error kinds to HTTP statuses serves the engine and the store alike.
var (
	// ErrNotFound: no such site, machine, rebuild or rollout.
	ErrNotFound = inventory.ErrNotFound
	// ErrConflict: the machine is already rebuilding, the site already has a
	// live rollout, the rollout is not in a state that allows the action, or
	// the machine cannot be rebuilt (no BMC).
	ErrConflict = inventory.ErrConflict
)

// RebuildStore persists rebuilds.
type RebuildStore interface {
	// CreateRebuild stores a rebuild in state requested; ErrConflict when
	// the machine has one in flight.
	CreateRebuild(ctx context.Context, r inventory.Rebuild) (inventory.Rebuild, error)
	// UpdateRebuild stores r if the stored rebuild is still in state from,
	// recording the transition when the state changes; ErrConflict if not.
	UpdateRebuild(ctx context.Context, r inventory.Rebuild, from inventory.RebuildState) (inventory.Rebuild, error)
	// Rebuilds lists rebuilds, newest first.
	Rebuilds(ctx context.Context, f inventory.RebuildFilter) ([]inventory.Rebuild, error)
}

// RolloutStore persists rollouts with their plans.
type RolloutStore interface {
	// CreateRollout stores a rollout in state planned with its plan;
	// ErrConflict when the site has a live one.
	CreateRollout(ctx context.Context, ro inventory.Rollout) (inventory.Rollout, error)
	// UpdateRollout stores ro's state, failures, reason and confirmation if
	// the stored rollout is still in state from; ErrConflict if not.
	UpdateRollout(ctx context.Context, ro inventory.Rollout, from inventory.RolloutState) (inventory.Rollout, error)
	// Rollouts lists rollouts, newest first, with their plans.
	Rollouts(ctx context.Context, f inventory.RolloutFilter) ([]inventory.Rollout, error)
}

// PlanStore records what happened to each machine of a rollout's plan.
type PlanStore interface {
	// StartRolloutMachine creates the rebuild of a machine of the plan and
	// links it there, atomically; ErrConflict if it has one already.
	StartRolloutMachine(ctx context.Context, rollout int64, position int, r inventory.Rebuild) (inventory.Rebuild, error)
	// SkipRolloutMachine marks a machine of the plan as not rebuilt.
	SkipRolloutMachine(ctx context.Context, rollout int64, position int, reason string) error
}

// BootEvents gives the boot events a rebuild follows.
type BootEvents interface {
	// EventsSince returns a machine's events with an ID above after and a
	// time at or after since, oldest first, at most n, without the
	// rebuilds' own events.
	EventsSince(ctx context.Context, mac sites.MAC, since time.Time, after int64, n int) ([]inventory.Event, error)
	// BootTrail returns a machine's ipxe-script, ignition and booted events
	// on version that carry a boot id, since a time, oldest first, the
	// latest n: what proves a booted report (see Advance).
	BootTrail(ctx context.Context, mac sites.MAC, version string, since time.Time, n int) ([]inventory.Event, error)
}

// Machines gives what the network showed of machines: the version they last
// booted (outdated or not) and their state (a master booting or failed is
// down).
type Machines interface {
	Machines(ctx context.Context, f inventory.MachineFilter) ([]inventory.Machine, error)
}

// Store is everything the engine reads and writes; *inventory.DB
// implements it.
type Store interface {
	RebuildStore
	RolloutStore
	PlanStore
	BootEvents
	Machines
}

// Sites gives the active release of a site; *sites.Tracker implements it.
type Sites interface {
	// Release returns the site's active release, nil when it has none.
	Release(site string) *sites.Release
}
