package web

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// noScriptRefresh is how often a live page reloads without JavaScript.
const noScriptRefresh = 30

// overviewPage answers what operators ask first: what each site runs, what
// is booting now, what failed, and the latest boot steps.
func (s *server) overviewPage(c echo.Context) error {
	ctx := c.Request().Context()
	vs, err := s.siteViews(ctx, s.Sites.Status(), false)
	if err != nil {
		return err
	}
	// The first machines of each list; the machines page has them all.
	booting, moreBooting, err := s.machineViews(ctx, inventory.MachineFilter{State: inventory.StateBooting, Limit: overviewList})
	if err != nil {
		return err
	}
	failed, moreFailed, err := s.machineViews(ctx, inventory.MachineFilter{State: inventory.StateFailed, Limit: overviewList})
	if err != nil {
		return err
	}
	evs, err := s.recentEvents(ctx, "", 50)
	if err != nil {
		return err
	}
	reverse(evs)
	data := struct {
		Sites                   []SiteView
		Booting, Failed         []MachineView
		MoreBooting, MoreFailed bool
		Events                  []EventView
		Repo                    FetchView
	}{vs, booting, failed, moreBooting != "", moreFailed != "", evs, fetchView(s.Sites.FetchStatus())}
	return s.render(c, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Live: true, Refresh: noScriptRefresh, Data: data})
}

// overviewList is how many machines the overview lists as booting or
// failed.
const overviewList = 50

func reverse[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

func (s *server) sitePage(c echo.Context) error {
	v, err := s.siteView(c.Request().Context(), c.Param("site"))
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "site", page{Title: "Site " + v.Name, Nav: "overview", Data: v})
}

// machinesData is the machines page: the filter form's choices and values,
// and the rows.
type machinesData struct {
	Sites    []string
	Roles    []sites.Role
	States   []inventory.State
	Filter   inventory.MachineFilter
	Version  string // as typed
	Machines []MachineView
	Next     string // the next page's URL, empty on the last
}

func (s *server) machinesPage(c echo.Context) error {
	f, err := machineFilter(c)
	if err != nil {
		return err
	}
	ms, next, err := s.machineViews(c.Request().Context(), f)
	if err != nil {
		return err
	}
	d := machinesData{Roles: sites.Roles, States: inventory.States(), Filter: f, Version: f.Version, Machines: ms,
		Next: nextLink(c, next)}
	for _, st := range s.Sites.Status() {
		d.Sites = append(d.Sites, st.Site)
	}
	return s.render(c, http.StatusOK, "machines", page{Title: "Machines", Nav: "machines", Live: true, LiveSite: f.Site,
		Refresh: noScriptRefresh, Data: d})
}

func (s *server) machinePage(c echo.Context) error {
	d, err := s.machineDetail(c.Request().Context(), c.Param("site"), c.Param("name"))
	if err != nil {
		return err
	}
	title := d.Machine.Name
	if title == "" {
		title = string(d.Machine.MAC)
	}
	return s.render(c, http.StatusOK, "machine", page{Title: title, Nav: "machines", Live: true, LiveSite: d.Machine.Site,
		Refresh: noScriptRefresh, Data: d})
}

// rolloutRow is one site on the rollouts page.
type rolloutRow struct {
	Site    SiteView
	Rollout *RolloutView
}

func (s *server) rolloutsPage(c echo.Context) error {
	ctx := c.Request().Context()
	vs, err := s.siteViews(ctx, s.Sites.Status(), false)
	if err != nil {
		return err
	}
	rows := make([]rolloutRow, 0, len(vs))
	book := newVersionBook(s.DB)
	for _, v := range vs {
		row := rolloutRow{Site: v}
		if s.Rebuilds != nil {
			r, ok, err := s.Rebuilds.Rollout(ctx, v.Name)
			if err != nil {
				return err
			}
			if ok {
				r.VersionRef = book.named(ctx, v.Name, r.Version)
				row.Rollout = &r
			}
		}
		rows = append(rows, row)
	}
	data := struct {
		Rows      []rolloutRow
		Available bool
	}{rows, s.Rebuilds != nil}
	return s.render(c, http.StatusOK, "rollouts", page{Title: "Rollouts", Nav: "rollouts", Refresh: noScriptRefresh, Data: data})
}

func (s *server) rolloutPage(c echo.Context) error {
	v, err := s.siteView(c.Request().Context(), c.Param("site"))
	if err != nil {
		return err
	}
	data := struct {
		Site      SiteView
		Rollout   *RolloutView
		Available bool
		Actions   []string
	}{Site: v, Available: s.Rebuilds != nil}
	if s.Rebuilds != nil {
		if data.Rollout, err = s.rollout(c); err != nil {
			return err
		}
	}
	data.Actions = actionsFor(data.Rollout)
	return s.render(c, http.StatusOK, "rollout", page{Title: "Rollout of " + v.Name, Nav: "rollouts", Live: true,
		LiveSite: v.Name, Refresh: noScriptRefresh, Data: data})
}

// actionsFor returns the buttons a rollout page offers: what makes sense
// in the rollout's state (the engine still decides, and says why not).
func actionsFor(r *RolloutView) []string {
	if r == nil || r.Done() {
		return []string{ActionStart}
	}
	switch r.State {
	case inventory.RolloutPlanned:
		return []string{ActionAbort}
	case inventory.RolloutRunning:
		return []string{ActionPause, ActionAbort}
	case inventory.RolloutCanaryWait:
		return []string{ActionConfirm, ActionPause, ActionAbort}
	case inventory.RolloutPaused, inventory.RolloutHalted:
		return []string{ActionResume, ActionAbort}
	}
	return rolloutActions[:]
}

func (s *server) discoveredPage(c echo.Context) error {
	ds, next, err := s.discovered(c)
	if err != nil {
		return err
	}
	data := struct {
		Machines []DiscoveredView
		Next     string
		Sites    []string        // the served sites, for the patch form
		Site     string          // the patch's site as asked; empty: the machines'
		Selected map[string]bool // the MACs the patch is for
		Patch    *SitePatch      // the patch of the selected machines, if any
		PatchErr string          // why there is no patch for them
	}{Machines: ds, Next: nextLink(c, next), Site: c.QueryParam("site"), Selected: map[string]bool{}}
	for _, st := range s.Sites.Status() {
		data.Sites = append(data.Sites, st.Site)
	}
	if macs := c.QueryParams()["mac"]; len(macs) > 0 {
		for _, m := range macs {
			if mac, err := sites.ParseMAC(m); err == nil {
				data.Selected[string(mac)] = true
			}
		}
		// A wrong selection is explained beside the form, not instead
		// of the page.
		p, err := s.sitePatch(c)
		switch {
		case err == nil:
			data.Patch = &p
		case status(err) < http.StatusInternalServerError:
			data.PatchErr = message(err)
		default:
			return err
		}
	}
	return s.render(c, http.StatusOK, "discovered", page{Title: "Discovered machines", Nav: "discovered", Data: data})
}

// queryData is the query page: the statement, its result or why it has
// none, and the saved examples.
type queryData struct {
	SQL      string
	Result   *QueryResult
	Problem  string
	Examples []example
	Timeout  string
	RowLimit int
}

// queryPage shows the query form and, given sql, runs it. A GET, so a
// query can be bookmarked and shared as a link; it changes nothing.
func (s *server) queryPage(c echo.Context) error {
	d := queryData{SQL: c.QueryParam("sql"), Examples: examples(), Timeout: durString(s.QueryTimeout), RowLimit: s.QueryRows}
	code := http.StatusOK
	if strings.TrimSpace(d.SQL) != "" {
		res, err := s.query(c.Request().Context(), who(c).Name, d.SQL)
		if err != nil {
			code = status(err)
			if code == 499 {
				return err
			}
			d.Problem = message(err)
		}
		d.Result = res
	}
	return s.render(c, code, "query", page{Title: "Query", Nav: "query", Data: d})
}
