package rebuild

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/power"
	"github.com/undercloud/undercloud/sites"
)

// DefaultTick is how often the engine looks at the work in flight when
// nothing notifies it.
const DefaultTick = time.Second

// Engine runs rebuilds and rollouts. Its state is the store's: Run resumes
// whatever a previous process left in flight, and any number of Engines may
// be made over the same store one after the other (never two at once). Set
// the fields before calling a method; it is safe for concurrent use.
type Engine struct {
	// Store persists rebuilds and rollouts and gives boot events and
	// machines; *inventory.DB implements it. Required.
	Store Store
	// Sites gives each site's active release; *sites.Tracker implements it.
	// Required.
	Sites Sites
	// Power returns the driver of a machine's BMC, with its credentials
	// from the server's secrets. It is called when a rebuild is requested
	// (to refuse one that cannot work) and before each power cycle; it must
	// do no I/O (power.New does none). Required.
	Power func(m sites.Machine) (power.Driver, error)
	// Now returns the current time; nil means time.Now. Stage timeouts and
	// the canary soak are measured with it.
	Now func() time.Time
	// Tick is how often the engine looks at the rebuilds and rollouts in
	// flight when nothing notifies it; 0 means DefaultTick. Notify makes
	// progress immediate; the tick catches timeouts and missed
	// notifications.
	Tick time.Duration
	// Log receives every transition (Info), failures (Warn) and errors of
	// the loop. Nil discards.
	Log *slog.Logger
	// Changed, when set, is told every stored change of a rebuild's or a
	// rollout's state (one of the two arguments is nil), after it is
	// persisted: metrics count outcomes from it. It must not block.
	Changed func(r *inventory.Rebuild, ro *inventory.Rollout)

	// mu serializes every change: the loop's passes, the BMC calls'
	// results and the operators' requests, so each decides on what is
	// stored and nothing interleaves.
	mu      sync.Mutex
	cycling map[int64]bool // rebuilds whose BMC call runs in this process
	cycles  sync.WaitGroup // the BMC calls running

	once    sync.Once
	wake    chan struct{}                      // a pass is wanted
	watched atomic.Pointer[map[sites.MAC]bool] // MACs with a rebuild in flight, for Notify
}

func (e *Engine) init() {
	e.once.Do(func() { e.wake = make(chan struct{}, 1) })
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// now returns the current time at the store's precision, so that what the
// engine decides on equals what it reads back.
func (e *Engine) now() time.Time {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	return now().UTC().Truncate(time.Millisecond)
}

func (e *Engine) check() error {
	if e.Store == nil || e.Sites == nil || e.Power == nil {
		return errors.New("rebuild engine: Store, Sites and Power are required")
	}
	return nil
}

// Run resumes the work in flight, then follows rebuilds and rollouts on
// every tick and notification until ctx ends. It returns once the BMC calls
// it started have returned; those are bounded by the power_cycle timeout.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.check(); err != nil {
		return err
	}
	e.init()
	defer e.cycles.Wait()
	e.resume(ctx)
	tick := time.NewTicker(cmp.Or(e.Tick, DefaultTick))
	defer tick.Stop()
	for {
		if err := e.pass(ctx); err != nil && ctx.Err() == nil {
			e.log().Warn("rebuild engine", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-e.wake:
		}
	}
}

// Notify tells the engine that a boot event of mac was stored (or a booted
// callback arrived), so that a rebuild of it moves on at once rather than on
// the next tick. It never blocks and costs a map lookup for a machine not
// rebuilding: call it for every event. Call it after the event is stored:
// an event still queued is picked up on the next tick.
func (e *Engine) Notify(mac sites.MAC) {
	if w := e.watched.Load(); w != nil && !(*w)[mac] {
		return
	}
	e.kick()
}

// kick asks the loop for a pass.
func (e *Engine) kick() {
	e.init()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// maxRounds bounds the rounds of a pass: a rebuild finishing lets the next
// batch start, whose rebuilds are then taken in the same pass.
const maxRounds = 4

// pass moves every rebuild and rollout in flight as far as the stored
// events allow.
func (e *Engine) pass(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for range maxRounds {
		errs = append(errs, e.stepRebuilds(ctx))
		started, err := e.stepRollouts(ctx)
		errs = append(errs, err)
		if !started || ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// stepRebuilds moves every rebuild in flight, oldest first.
func (e *Engine) stepRebuilds(ctx context.Context) error {
	rs, err := e.Store.Rebuilds(ctx, inventory.RebuildFilter{InFlight: true, Limit: 10000})
	if err != nil {
		return err
	}
	slices.SortFunc(rs, func(a, b inventory.Rebuild) int { return cmp.Compare(a.ID, b.ID) })
	watched := make(map[sites.MAC]bool, len(rs))
	var errs []error
	for _, r := range rs {
		watched[r.MAC] = true
		if err := e.step(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("rebuild %d of %s: %w", r.ID, r.Label(), err))
		}
	}
	e.watched.Store(&watched)
	return errors.Join(errs...)
}

// save stores next over r, which must still be in state from, and logs the
// transition.
func (e *Engine) save(ctx context.Context, next inventory.Rebuild, from inventory.RebuildState) (inventory.Rebuild, error) {
	saved, err := e.Store.UpdateRebuild(ctx, next, from)
	if err != nil {
		return saved, err
	}
	if saved.State != from {
		if e.Changed != nil {
			e.Changed(&saved, nil)
		}
		log := e.log().With("rebuild", saved.ID, "site", saved.Site, "mac", saved.MAC, "role", saved.Role,
			"version", saved.Target, "state", saved.State)
		switch saved.State {
		case inventory.RebuildFailed:
			log.Warn("rebuild failed", "reason", saved.Reason)
		case inventory.RebuildCanceled:
			log.Info("rebuild canceled", "reason", saved.Reason)
		default:
			log.Info("rebuild "+saved.State.String(), "last_event", saved.LastEvent.String())
		}
	}
	return saved, nil
}

// saveRollout stores next over ro, which must still be in state from, and
// reports a changed state.
func (e *Engine) saveRollout(ctx context.Context, next inventory.Rollout, from inventory.RolloutState) (inventory.Rollout, error) {
	saved, err := e.Store.UpdateRollout(ctx, next, from)
	if err == nil && saved.State != from && e.Changed != nil {
		e.Changed(nil, &saved)
	}
	return saved, err
}

// timeouts returns the stage timeouts of a site's active policy.
func (e *Engine) timeouts(site string) sites.StageTimeouts {
	var p sites.RolloutPolicy
	if rel := e.Sites.Release(site); rel != nil {
		p = rel.Site.Rollout
	}
	return p.WithDefaults().Timeouts
}

// release returns a site's active release, or ErrNotFound.
func (e *Engine) release(site string) (*sites.Release, error) {
	rel := e.Sites.Release(site)
	if rel == nil {
		return nil, fmt.Errorf("site %s: no such site, or no active version: %w", site, ErrNotFound)
	}
	return rel, nil
}
