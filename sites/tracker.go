package sites

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// VersionStore persists what the gate decided, so a restarted server serves
// the same active versions and still shows why a version was rejected. The
// inventory implements it (through an adapter in cmd).
type VersionStore interface {
	// ActiveCommit returns the site's persisted active commit, "" if none.
	ActiveCommit(ctx context.Context, site string) (string, error)
	// RecordVersion records a gate decision: accepted (problems empty) makes
	// v the site's active version; rejected keeps the active one.
	RecordVersion(ctx context.Context, site string, v Version, problems Problems) error
	// Accepted reports whether the gate accepted commit for site at some
	// time (it was active, or still is).
	Accepted(ctx context.Context, site, commit string) (bool, error)
}

// SiteStatus is what the tracker knows about one site.
type SiteStatus struct {
	Site    string   `json:"site"`
	Binding string   `json:"binding"`          // the ref bindings.yaml gives
	Active  *Version `json:"active,omitempty"` // nil until a version passes the gate
	// Pending is the version the binding points at when it is not the active
	// one: either rejected (Problems set) or not yet validated.
	Pending  *Version `json:"pending,omitempty"`
	Problems []string `json:"problems,omitempty"`
	// Error is why the binding could not be followed at all (no binding, a
	// ref that does not resolve, a broken bindings.yaml).
	Error string `json:"error,omitempty"`
}

// Tracker follows the bindings of a site repo: for each served site it
// resolves the binding, runs the gate on a version it has not seen, and makes
// the version active only when the gate passes. Readers get the active
// Release of a site with Release; it never returns anything the gate rejected.
type Tracker struct {
	Repo   *Repo
	Branch string   // tracked branch holding bindings.yaml (default main)
	Sites  []string // sites this server serves; empty means every bound site
	Gate   Gate
	Store  VersionStore // nil keeps decisions in memory only
	Log    *slog.Logger
	// OnActivate is called after a site's active release changes (at start-up
	// too), outside the tracker's lock.
	OnActivate func(r *Release)

	mu       sync.RWMutex
	active   map[string]*Release
	accepted map[string]*Release // site + "@" + commit -> every release accepted since start
	rejected map[string]Problems // site + "@" + commit -> reasons
	status   map[string]SiteStatus
	cache    map[string]*Config // commit -> loaded config (immutable)
	refresh  sync.Mutex
}

func (t *Tracker) log() *slog.Logger {
	if t.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Log
}

func (t *Tracker) branch() string {
	if t.Branch == "" {
		return "main"
	}
	return t.Branch
}

// Release returns the active release of a site, or nil when none passed the gate.
func (t *Tracker) Release(site string) *Release {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.active[site]
}

// Releases returns the active release of every site that has one.
func (t *Tracker) Releases() []*Release {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Release, 0, len(t.active))
	for _, name := range sortedKeys(t.active) {
		out = append(out, t.active[name])
	}
	return out
}

// Status returns the status of every served site, sorted by name.
func (t *Tracker) Status() []SiteStatus {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]SiteStatus, 0, len(t.status))
	for _, name := range sortedKeys(t.status) {
		out = append(out, t.status[name])
	}
	return out
}

// ReleaseAt returns a site's release at a commit the gate accepted: the
// active one, or one that was active before -- the version a machine is
// assigned and keeps booting until a rollout moves it, or the one a booting
// machine's token names. A version accepted by an earlier run of the server
// is read again from the mirror (its artifacts are in the store already).
// It refuses a commit the gate rejected or never accepted.
func (t *Tracker) ReleaseAt(ctx context.Context, site, commit string) (*Release, error) {
	t.mu.RLock()
	r := t.accepted[site+"@"+commit]
	_, rejected := t.rejected[site+"@"+commit]
	t.mu.RUnlock()
	switch {
	case r != nil:
		return r, nil
	case rejected:
		return nil, fmt.Errorf("site %s: version %s was rejected by the gate", site, commit)
	case t.Store == nil:
		return nil, fmt.Errorf("site %s: version %s was never accepted by this server", site, commit)
	}
	ok, err := t.Store.Accepted(ctx, site, commit)
	if err != nil {
		return nil, fmt.Errorf("site %s: version %s: %w", site, commit, err)
	}
	if !ok {
		return nil, fmt.Errorf("site %s: version %s was never accepted by the gate", site, commit)
	}
	v, err := t.Repo.Resolve(commit)
	if err != nil {
		return nil, fmt.Errorf("site %s: accepted version %s is not in the mirror: %w", site, commit, err)
	}
	cfg, ps, err := t.load(v.Commit)
	if err == nil && len(ps) > 0 {
		err = ps
	}
	if err != nil {
		return nil, fmt.Errorf("site %s: accepted version %s no longer loads: %w", site, commit, err)
	}
	if r, err = cfg.Release(site, v); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.accepted == nil {
		t.accepted = map[string]*Release{}
	}
	if prev := t.accepted[site+"@"+commit]; prev != nil {
		return prev, nil
	}
	t.accepted[site+"@"+commit] = r
	return r, nil
}

// Restore loads the persisted active version of every site from the store
// and re-checks it through the gate (artifacts may have to be imported again
// into a fresh store). It is called once at start-up, before serving.
func (t *Tracker) Restore(ctx context.Context, sites []string) error {
	if t.Store == nil {
		return nil
	}
	for _, site := range sites {
		commit, err := t.Store.ActiveCommit(ctx, site)
		if err != nil {
			return fmt.Errorf("restore site %s: %w", site, err)
		}
		if commit == "" {
			continue
		}
		v, err := t.Repo.Resolve(commit)
		if err != nil {
			t.log().Warn("persisted active version is not in the mirror", "site", site, "version", commit, "err", err)
			continue
		}
		if _, err := t.consider(ctx, site, v, false); err != nil {
			t.log().Warn("persisted active version no longer passes the gate", "site", site, "version", commit, "err", err)
		}
	}
	return nil
}

// Refresh fetches the repo (keeping the last good copy when the remote is
// down), reads the bindings and considers every served site's bound version.
// retryRejected re-runs the gate on versions rejected before (an operator's
// explicit refresh: the rejection may have been an unreachable artifact URL).
// The returned error is the fetch error, if any; per-site problems are in
// Status.
func (t *Tracker) Refresh(ctx context.Context, retryRejected bool) error {
	t.refresh.Lock()
	defer t.refresh.Unlock()
	fetchErr := t.Repo.Fetch(ctx)
	if fetchErr != nil && errors.Is(t.haveMirror(), ErrNoMirror) {
		return fetchErr
	}
	bindings, _, ps, err := t.Repo.Bindings(t.branch())
	if err == nil && len(ps) > 0 {
		err = ps
	}
	if err != nil {
		t.setError(t.servedSites(nil), fmt.Sprintf("bindings on %s: %v", t.branch(), err))
		return errors.Join(fetchErr, err)
	}
	for _, site := range t.servedSites(bindings) {
		ref, ok := bindings[site]
		if !ok {
			t.setError([]string{site}, fmt.Sprintf("%s on %s has no binding for site %s", BindingsFile, t.branch(), site))
			continue
		}
		v, err := t.Repo.Resolve(ref)
		if err != nil {
			t.setError([]string{site}, err.Error())
			continue
		}
		if _, err := t.consider(ctx, site, v, retryRejected); err != nil {
			t.log().Warn("version rejected", "site", site, "version", v.Commit, "ref", ref, "err", err)
		}
	}
	return fetchErr
}

func (t *Tracker) haveMirror() error {
	_, err := t.Repo.Resolve(t.branch())
	return err
}

// servedSites is the configured list, or every bound site.
func (t *Tracker) servedSites(bindings map[string]string) []string {
	if len(t.Sites) > 0 {
		return t.Sites
	}
	if bindings == nil {
		t.mu.RLock()
		defer t.mu.RUnlock()
		return sortedKeys(t.status)
	}
	return sortedKeys(bindings)
}

func (t *Tracker) setError(sites []string, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range sites {
		st := t.statusOf(s)
		st.Error = msg
		t.status[s] = st
	}
}

func (t *Tracker) statusOf(site string) SiteStatus {
	if t.status == nil {
		t.status = map[string]SiteStatus{}
	}
	st, ok := t.status[site]
	if !ok {
		st.Site = site
	}
	return st
}

// consider runs the gate on version v of site unless it is already active (or
// already rejected and retry is false), then records the decision.
func (t *Tracker) consider(ctx context.Context, site string, v Version, retry bool) (*Release, error) {
	t.mu.RLock()
	cur := t.active[site]
	prev, wasRejected := t.rejected[site+"@"+v.Commit]
	t.mu.RUnlock()
	if cur != nil && cur.Version.Commit == v.Commit {
		t.setStatus(site, v, nil)
		return cur, nil
	}
	if wasRejected && !retry {
		t.setStatus(site, v, prev)
		return nil, prev
	}
	cfg, ps, err := t.load(v.Commit)
	if err != nil {
		ps = Problems{{File: "(repo)", Message: err.Error()}}
	}
	if len(ps) == 0 {
		ps = t.Gate.Check(ctx, cfg, []string{site}, v, t.otherSites(site))
	}
	if ctx.Err() != nil {
		return nil, ctx.Err() // shutting down: decide nothing
	}
	if t.Store != nil {
		if err := t.Store.RecordVersion(ctx, site, v, ps); err != nil {
			return nil, fmt.Errorf("record version %s of %s: %w", v.Short(), site, err)
		}
	}
	if len(ps) > 0 {
		t.mu.Lock()
		if t.rejected == nil {
			t.rejected = map[string]Problems{}
		}
		t.rejected[site+"@"+v.Commit] = ps
		t.mu.Unlock()
		t.setStatus(site, v, ps)
		return nil, ps
	}
	rel, err := cfg.Release(site, v)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.active == nil {
		t.active = map[string]*Release{}
	}
	t.active[site] = rel
	if t.accepted == nil {
		t.accepted = map[string]*Release{}
	}
	t.accepted[site+"@"+v.Commit] = rel
	delete(t.rejected, site+"@"+v.Commit)
	t.mu.Unlock()
	t.setStatus(site, v, nil)
	t.log().Info("version activated", "site", site, "version", v.Commit, "ref", v.Ref, "tags", v.Tags)
	if t.OnActivate != nil {
		t.OnActivate(rel)
	}
	return rel, nil
}

func (t *Tracker) setStatus(site string, v Version, ps Problems) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.statusOf(site)
	st.Binding = v.Ref
	st.Error = ""
	if a := t.active[site]; a != nil {
		av := a.Version
		st.Active = &av
	}
	st.Pending, st.Problems = nil, nil
	if st.Active == nil || st.Active.Commit != v.Commit {
		pv := v
		st.Pending = &pv
	}
	for _, p := range ps {
		st.Problems = append(st.Problems, p.String())
	}
	t.status[site] = st
}

// otherSites returns the active site configs other than site, for the gate's
// cross-site checks (duplicate MACs, IPs, host names).
func (t *Tracker) otherSites(site string) map[string]*Site {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := map[string]*Site{}
	for name, r := range t.active {
		if name != site {
			out[name] = r.Site
		}
	}
	return out
}

// load reads and parses the repo at a commit; configs are immutable, so they
// are cached by commit.
func (t *Tracker) load(commit string) (*Config, Problems, error) {
	t.mu.RLock()
	cfg := t.cache[commit]
	t.mu.RUnlock()
	if cfg != nil {
		return cfg, nil, nil
	}
	files, err := t.Repo.Files(commit)
	if err != nil {
		return nil, nil, err
	}
	cfg, ps := Load(files)
	if len(ps) > 0 {
		ps.Sort()
		return cfg, ps, nil
	}
	t.mu.Lock()
	if t.cache == nil {
		t.cache = map[string]*Config{}
	}
	t.cache[commit] = cfg
	t.mu.Unlock()
	return cfg, nil, nil
}

// Run refreshes every interval and whenever Trigger is called, until ctx ends.
func (t *Tracker) Run(ctx context.Context, interval time.Duration, trigger <-chan bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		retry := false
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case retry = <-trigger:
		}
		if err := t.Refresh(ctx, retry); err != nil && ctx.Err() == nil {
			t.log().Warn("site repo refresh", "err", err)
		}
	}
}
