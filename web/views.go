package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// SiteView is a site as the UI and the API show it: what it is bound to,
// what it serves, what was refused and why, and its machines by state.
type SiteView struct {
	Name    string       `json:"site"`
	Binding string       `json:"binding"`
	Active  *VersionView `json:"active,omitempty"`
	// Pending is the bound version when it is not the active one: rejected
	// (Problems says why) or not validated yet.
	Pending  *VersionView `json:"pending,omitempty"`
	Problems []string     `json:"problems"`
	// Error is why the binding could not be followed at all.
	Error          string         `json:"error,omitempty"`
	Bootstrapped   bool           `json:"bootstrapped"`
	BootstrappedAt *time.Time     `json:"bootstrapped_at,omitempty"`
	Machines       map[string]int `json:"machines"` // by state, every state present
	Total          int            `json:"total"`
	Outdated       int            `json:"outdated"`
	// Running counts the machines by the version they run, most first.
	Running []RunningView `json:"running"`
	Repo    FetchView     `json:"repo"`
	// Versions is the site's history, the latest validation first (one
	// site's view only).
	Versions []VersionView `json:"versions,omitempty"`
}

// VersionView is a config version with its validation verdict.
type VersionView struct {
	Commit      string     `json:"commit"`
	Short       string     `json:"short"`
	Label       string     `json:"label"` // first tag, or the short commit
	Ref         string     `json:"ref,omitempty"`
	Tags        []string   `json:"tags,omitempty"`
	Message     string     `json:"message"`
	Author      string     `json:"author"`
	Time        *time.Time `json:"time,omitempty"`
	Status      string     `json:"status,omitempty"` // active, rejected, superseded
	Reasons     []string   `json:"reasons,omitempty"`
	ValidatedAt *time.Time `json:"validated_at,omitempty"`
}

// FetchView is how fresh the server's copy of the site repo is.
type FetchView struct {
	URL         string     `json:"url"` // without credentials
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// Error is the last fetch's failure: the server serves from the copy
	// fetched at LastSuccess meanwhile.
	Error string `json:"error,omitempty"`
}

// VersionRef names a version briefly: for machine rows.
type VersionRef struct {
	Commit string `json:"commit"`
	Short  string `json:"short"`
	Tag    string `json:"tag,omitempty"`
}

// String names the version as the operator wrote it, with the commit it
// is: "v2 (abcdef123456)", or the short commit alone when it has no tag.
// Every version the UI, the audit log and the CLI show goes through it.
func (v VersionRef) String() string {
	sv := sites.Version{Commit: cmp.Or(v.Commit, v.Short)}
	if v.Tag != "" {
		sv.Tags = []string{v.Tag}
	}
	return sv.String()
}

// newVersionRef names v by its first tag and short commit.
func newVersionRef(v sites.Version) VersionRef {
	r := VersionRef{Commit: v.Commit, Short: v.Short()}
	if len(v.Tags) > 0 {
		r.Tag = v.Tags[0]
	}
	return r
}

// commitRef names a commit whose tags are unknown here; nil for none.
func commitRef(commit string) *VersionRef {
	if commit == "" {
		return nil
	}
	return &VersionRef{Commit: commit, Short: short(commit)}
}

// Brief names the version briefly, by its first tag (or its Label, when
// only that came through).
func (v VersionView) Brief() VersionRef {
	r := VersionRef{Commit: v.Commit, Short: cmp.Or(v.Short, short(v.Commit))}
	switch {
	case len(v.Tags) > 0:
		r.Tag = v.Tags[0]
	case v.Label != r.Short:
		r.Tag = v.Label
	}
	return r
}

// String is the version as VersionRef.String names it.
func (v VersionView) String() string { return v.Brief().String() }

// userinfo matches the credentials of a URL (scheme://user:password@).
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)

// redact removes the credentials of every URL in s: a repo URL, a BMC
// address or an error quoting them must not show a password.
func redact(s string) string { return userinfo.ReplaceAllString(s, "$1") }

func redactAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = redact(s)
	}
	return out
}

// timePtr returns &t, or nil for the zero time (JSON leaves it out).
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func versionView(v sites.Version) *VersionView {
	return &VersionView{Commit: v.Commit, Short: v.Short(), Label: v.Label(), Ref: v.Ref, Tags: v.Tags,
		Message: v.Message, Author: v.Author, Time: timePtr(v.Time)}
}

func siteVersionView(sv inventory.SiteVersion) VersionView {
	v := versionView(sv.Version)
	v.Status, v.Reasons, v.ValidatedAt = string(sv.Status), redactAll(sv.Reasons), timePtr(sv.ValidatedAt)
	return *v
}

func fetchView(f sites.FetchStatus) FetchView {
	return FetchView{URL: redact(f.URL), LastAttempt: timePtr(f.LastAttempt), LastSuccess: timePtr(f.LastSuccess), Error: redact(f.Error)}
}

// siteStatus returns the tracker's status of a served site.
func (s *server) siteStatus(name string) (sites.SiteStatus, error) {
	for _, st := range s.Sites.Status() {
		if st.Site == name {
			return st, nil
		}
	}
	return sites.SiteStatus{}, kindf(ErrNotFound, "this server serves no site %q", name)
}

// siteViews returns every served site; with history, each one's versions.
func (s *server) siteViews(ctx context.Context, statuses []sites.SiteStatus, history bool) ([]SiteView, error) {
	// Counted in SQL: reading every machine made the overview of a flooded
	// inventory 40 MB and seconds long.
	counts, err := s.DB.MachineCounts(ctx)
	if err != nil {
		return nil, err
	}
	fetch := fetchView(s.Sites.FetchStatus())
	out := make([]SiteView, 0, len(statuses))
	for _, st := range statuses {
		v := SiteView{Name: st.Site, Binding: st.Binding, Problems: redactAll(st.Problems), Error: redact(st.Error),
			Machines: map[string]int{}, Repo: fetch}
		if st.Active != nil {
			v.Active = versionView(*st.Active)
			v.Active.Status = string(inventory.VersionActive)
		}
		if st.Pending != nil {
			v.Pending = versionView(*st.Pending)
			if len(st.Problems) > 0 {
				v.Pending.Status, v.Pending.Reasons = string(inventory.VersionRejected), v.Problems
			}
		}
		for _, state := range inventory.States() {
			v.Machines[string(state)] = 0
		}
		running := map[string]int{} // declared machines by current version
		for _, c := range counts {
			if c.Site != st.Site {
				continue
			}
			v.Machines[string(c.State)] += c.N
			v.Total += c.N
			if c.Outdated {
				v.Outdated += c.N
			}
			if !c.Discovered {
				running[c.Version] += c.N
			}
		}
		if v.Running, err = s.runningVersions(ctx, st, running); err != nil {
			return nil, err
		}
		stored, err := s.DB.Site(ctx, st.Site)
		switch {
		case errors.Is(err, inventory.ErrNotFound):
			// Never validated: nothing stored yet.
		case err != nil:
			return nil, err
		default:
			v.Bootstrapped, v.BootstrappedAt = stored.Bootstrapped, timePtr(stored.BootstrappedAt)
		}
		if history {
			svs, err := s.DB.SiteVersions(ctx, st.Site, 100)
			if err != nil {
				return nil, err
			}
			for _, sv := range svs {
				v.Versions = append(v.Versions, siteVersionView(sv))
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// siteView returns one served site with its version history.
func (s *server) siteView(ctx context.Context, name string) (SiteView, error) {
	st, err := s.siteStatus(name)
	if err != nil {
		return SiteView{}, err
	}
	vs, err := s.siteViews(ctx, []sites.SiteStatus{st}, true)
	if err != nil {
		return SiteView{}, err
	}
	return vs[0], nil
}

// versionBook names the commits machines run, from the sites' histories,
// read once per request.
type versionBook struct {
	db    *inventory.DB
	sites map[string]map[string]sites.Version // site -> commit -> version
}

func newVersionBook(db *inventory.DB) *versionBook {
	return &versionBook{db: db, sites: map[string]map[string]sites.Version{}}
}

// load reads a site's history once.
func (b *versionBook) load(ctx context.Context, site string) (map[string]sites.Version, error) {
	if vs, ok := b.sites[site]; ok {
		return vs, nil
	}
	vs := map[string]sites.Version{}
	if site != "" {
		svs, err := b.db.SiteVersions(ctx, site, 10000)
		if err != nil {
			return nil, err
		}
		for _, sv := range svs {
			vs[sv.Version.Commit] = sv.Version
		}
	}
	b.sites[site] = vs
	return vs, nil
}

// ref names commit, a version of site; nil for no commit.
func (b *versionBook) ref(ctx context.Context, site, commit string) (*VersionRef, error) {
	if commit == "" {
		return nil, nil
	}
	vs, err := b.load(ctx, site)
	if err != nil {
		return nil, err
	}
	v, ok := vs[commit]
	if !ok {
		v = sites.Version{Commit: commit}
	}
	r := newVersionRef(v)
	return &r, nil
}

// named is ref for views that must show even when the history cannot be
// read: then the commit alone.
func (b *versionBook) named(ctx context.Context, site, commit string) *VersionRef {
	r, err := b.ref(ctx, site, commit)
	if err != nil {
		return commitRef(commit)
	}
	return r
}

// resolve turns what an operator types for a version (a tag, a full or
// abbreviated commit) into the commit, looking in site's history (every
// site's when site is empty). An unknown value is returned as it is.
func (b *versionBook) resolve(ctx context.Context, site string, names []string, version string) (string, error) {
	if site != "" {
		names = []string{site}
	}
	for _, name := range names {
		vs, err := b.load(ctx, name)
		if err != nil {
			return "", err
		}
		for commit, v := range vs {
			if commit == version || slices.Contains(v.Tags, version) ||
				(len(version) >= 4 && len(commit) > len(version) && commit[:len(version)] == version) {
				return commit, nil
			}
		}
	}
	return version, nil
}

// ageString says how long ago t was, coarsely, as operators read it.
func ageString(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}
