package web

import (
	"cmp"
	"context"
	"slices"

	"github.com/undercloud/undercloud/sites"
)

// RunningView is how many of a site's machines run one config version:
// after a partial rollout, a site runs several.
type RunningView struct {
	Commit string `json:"commit"` // empty: machines that never reported booted
	// Label names the version as VersionRef.String does, "v2
	// (abcdef123456)" where the server knows its tag (the active, pending
	// and recently validated versions), its short commit otherwise, or
	// "none" for machines that never booted.
	Label    string `json:"label"`
	Active   bool   `json:"active"` // the site's active version
	Machines int    `json:"machines"`
}

// runningVersions lists the declared machines of site st by the version
// they last booted (counts: commit -> machines), most machines first, the
// active version first among equals.
func (s *server) runningVersions(ctx context.Context, st sites.SiteStatus, counts map[string]int) ([]RunningView, error) {
	known := map[string]sites.Version{}
	for _, v := range []*sites.Version{st.Active, st.Pending} {
		if v != nil {
			known[v.Commit] = *v
		}
	}
	looked := false
	out := make([]RunningView, 0, len(counts))
	for commit, n := range counts {
		r := RunningView{Commit: commit, Machines: n, Active: st.Active != nil && commit == st.Active.Commit}
		v, ok := known[commit]
		if !ok && commit != "" && !looked {
			// Only when a version is not at hand: one query per site.
			looked = true
			svs, err := s.DB.SiteVersions(ctx, st.Site, 100)
			if err != nil {
				return nil, err
			}
			for _, sv := range svs {
				if _, seen := known[sv.Version.Commit]; !seen {
					known[sv.Version.Commit] = sv.Version
				}
			}
			v, ok = known[commit]
		}
		switch {
		case commit == "":
			r.Label = "none"
		case ok:
			r.Label = newVersionRef(v).String()
		default:
			r.Label = commitRef(commit).String()
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b RunningView) int {
		return cmp.Or(cmp.Compare(b.Machines, a.Machines), boolCmp(b.Active, a.Active), cmp.Compare(a.Label, b.Label))
	})
	return out, nil
}

// boolCmp orders false before true.
func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
