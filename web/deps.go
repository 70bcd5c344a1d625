package web

import (
	"context"
	"time"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// Sites is what the web side needs of the site tracker: what each served
// site runs and why, the active release of a site (for a machine's declared
// spec), a way to trigger a refresh of the site repo, and how fresh the
// local mirror of the repo is.
type Sites interface {
	// Status returns every served site's binding, active and pending
	// versions and problems.
	Status() []sites.SiteStatus
	// Release returns a site's active release, nil if it has none.
	Release(site string) *sites.Release
	// Refresh asks for a fetch of the site repo and a new gate run; it must
	// not wait for them. retryRejected re-runs the gate on versions
	// rejected before.
	Refresh(retryRejected bool)
	// FetchStatus returns the state of the last fetch of the site repo.
	FetchStatus() sites.FetchStatus
}

// Rebuilds is what the web side needs of the rebuild and rollout engine.
// Errors wrap ErrNotFound, ErrConflict or ErrBadRequest (or the inventory's
// ErrNotFound and ErrConflict) so the right status reaches the operator;
// their text is shown to the operator as it is.
type Rebuilds interface {
	// Rebuild starts the rebuild of a site's declared machine onto the
	// site's active version. A master whose rebuild would leave fewer than
	// a majority of the site's masters up is refused (ErrConflict, naming
	// the masters down) unless the request forces it; the answer to a
	// forced one says in Overrode what it overrode.
	Rebuild(ctx context.Context, req RebuildRequest) (RebuildView, error)
	// MachineRebuilds returns the rebuilds of a machine, newest first.
	MachineRebuilds(ctx context.Context, mac sites.MAC) ([]RebuildView, error)
	// Rollout returns the site's current rollout, or else its last one;
	// false when the site never had one.
	Rollout(ctx context.Context, site string) (RolloutView, bool, error)
	// RolloutAction starts (ActionStart) a rollout of the site's outdated
	// machines that sel picks (the zero Selection: all of them), or
	// pauses, resumes, aborts or confirms (the canary) its current one, on
	// behalf of actor; sel applies to a start only. A start fails with
	// ErrNotFound when sel names a machine the site lacks, and with
	// ErrConflict when sel picks no outdated machine.
	RolloutAction(ctx context.Context, site, action, actor string, sel sites.Selection) (RolloutView, error)
}

// RebuildRequest is an operator's request for a one-off rebuild.
type RebuildRequest struct {
	Site    string
	Machine string
	Actor   string // who asks: the token's or the session's name
	// Force overrides the master quorum rule; the audit entry says so.
	Force bool
}

// The rollout actions of Rebuilds.RolloutAction.
const (
	ActionStart   = "start"
	ActionPause   = "pause"
	ActionResume  = "resume"
	ActionAbort   = "abort"
	ActionConfirm = "confirm"
)

// rolloutActions are the actions an operator may ask for, in the order the
// UI shows their buttons.
var rolloutActions = [...]string{ActionStart, ActionPause, ActionResume, ActionAbort, ActionConfirm}

// RebuildState and RolloutState are the inventory's: the rebuild engine,
// the store and the UI share one set of states.
type (
	RebuildState = inventory.RebuildState
	RolloutState = inventory.RolloutState
)

// RebuildView is one rebuild as the UI and the API show it.
type RebuildView struct {
	ID      int64     `json:"id"`
	Site    string    `json:"site"`
	Machine string    `json:"machine"`
	MAC     sites.MAC `json:"mac"`
	Version string    `json:"version"` // the target commit
	// VersionRef names the target by its tag (see VersionRef.String);
	// the web side fills it in.
	VersionRef *VersionRef  `json:"version_ref,omitempty"`
	State      RebuildState `json:"state"`
	// Reason says why it failed or was canceled, or what it waits for.
	Reason  string    `json:"reason,omitempty"`
	Actor   string    `json:"actor,omitempty"` // who asked; empty for a rollout's own
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Overrode is set only in the answer to a forced rebuild request: why
	// the master quorum rule would have refused it, naming the masters
	// down. The audit log keeps it.
	Overrode string `json:"overrode,omitempty"`
}

// RolloutView is one rollout as the UI and the API show it.
type RolloutView struct {
	ID      int64  `json:"id"`
	Site    string `json:"site"`
	Version string `json:"version"` // the target commit
	// VersionRef names the target by its tag (see VersionRef.String);
	// the web side fills it in.
	VersionRef *VersionRef  `json:"version_ref,omitempty"`
	State      RolloutState `json:"state"`
	Reason     string       `json:"reason,omitempty"` // why it halted or was aborted
	Failures   int          `json:"failures"`
	Actor      string       `json:"actor,omitempty"`
	// Selection is the machines an operator picked ("rack=r12",
	// "machines=lab-w1,lab-w2"); empty when the rollout covers the site.
	Selection string           `json:"selection,omitempty"`
	Created   time.Time        `json:"created"`
	Updated   time.Time        `json:"updated"`
	Machines  []RolloutMachine `json:"machines"`
}

// RolloutMachine is one machine's progress in a rollout.
type RolloutMachine struct {
	Name  string     `json:"name"`
	MAC   sites.MAC  `json:"mac,omitempty"`
	Role  sites.Role `json:"role"`
	Batch int        `json:"batch"` // 0 is the canary batch when there is one
	// State is its rebuild's state, or "pending" before its batch starts.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// Title names the rollout with its selection: "rollout 3 of lab
// (rack=r12)".
func (r RolloutView) Title() string {
	t := "rollout " + itoa(r.ID) + " of " + r.Site
	if r.Selection != "" {
		t += " (" + r.Selection + ")"
	}
	return t
}

// Target is the rollout's version named for the operator.
func (r RolloutView) Target() VersionRef { return target(r.VersionRef, r.Version) }

// Target is the rebuild's version named for the operator.
func (r RebuildView) Target() VersionRef { return target(r.VersionRef, r.Version) }

func target(ref *VersionRef, commit string) VersionRef {
	if ref != nil {
		return *ref
	}
	return VersionRef{Commit: commit, Short: short(commit)}
}

// Done reports whether the rollout is over.
func (r RolloutView) Done() bool {
	return r.State == inventory.RolloutDone || r.State == inventory.RolloutAborted
}

// Progress returns how many of its machines are finished (done, failed or
// canceled) and how many it has.
func (r RolloutView) Progress() (finished, total int) {
	for _, m := range r.Machines {
		switch RebuildState(m.State) {
		case inventory.RebuildDone, inventory.RebuildFailed, inventory.RebuildCanceled:
			finished++
		}
	}
	return finished, len(r.Machines)
}
