package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/undercloud/undercloud/sites"
)

// The changes an operator can make, for the UI and the API alike; mutation
// writes their audit entries and answers.

// refresh asks the tracker to fetch the site repo and re-run the gate, on
// rejected versions too: an operator asking may have fixed what the gate
// could not reach.
func (s *server) refresh(c echo.Context) (outcome, error) {
	site := c.Param("site")
	if _, err := s.siteStatus(site); err != nil {
		return outcome{}, err
	}
	s.Sites.Refresh(true)
	return outcome{
		code: http.StatusAccepted, body: map[string]string{"status": "refresh requested"},
		redirect: "/sites/" + pathEscape(site), flash: "refresh",
		detail: "fetch the site repo and re-run the gate, rejected versions included",
	}, nil
}

// rebuild starts a machine's rebuild onto its site's active version. A
// master is held to the quorum rule unless the request forces it (see
// forced); the audit entry of a forced one says so, with what it overrode.
func (s *server) rebuild(c echo.Context) (outcome, error) {
	site, name := c.Param("site"), c.Param("name")
	if s.Rebuilds == nil {
		return outcome{}, errNoRebuilds
	}
	if _, err := s.siteStatus(site); err != nil {
		return outcome{}, err
	}
	force, err := forced(c)
	if err != nil {
		return outcome{}, err
	}
	rb, err := s.Rebuilds.Rebuild(c.Request().Context(), RebuildRequest{Site: site, Machine: name, Actor: who(c).Name, Force: force})
	if err != nil {
		if force {
			return outcome{detail: "force asked"}, err
		}
		return outcome{}, err
	}
	rb.VersionRef = newVersionBook(s.DB).named(c.Request().Context(), site, rb.Version)
	out := outcome{
		code: http.StatusAccepted, body: rb,
		redirect: "/machines/" + pathEscape(site) + "/" + pathEscape(name), flash: "rebuild",
		detail: "rebuild " + itoa(rb.ID) + " onto " + rb.Target().String(),
	}
	switch {
	case rb.Overrode != "":
		out.flash = "rebuild-forced"
		out.detail += "; force: overrode the master quorum rule: " + rb.Overrode
	case force:
		out.detail += "; force: nothing to override (the quorum rule allowed it)"
	}
	return out, nil
}

// forced reads the force option of a rebuild request: a JSON body
// {"force": true}, or force=1 (or true, on, yes) in the form or the query.
func forced(c echo.Context) (bool, error) {
	// Any other body type was once read as no body: a force asked in a
	// text/plain body was silently not forced.
	const want = `JSON {"force": true|false} (or empty)`
	kind, err := bodyOf(c.Request(), want)
	if err != nil {
		return false, err
	}
	if kind == bodyJSON {
		var body struct {
			Force bool `json:"force"`
		}
		if err := decodeJSON(c.Request(), &body, 4096, true, want); err != nil {
			return false, err
		}
		if body.Force {
			return true, nil
		}
	}
	switch v := strings.ToLower(c.FormValue("force")); v {
	case "", "0", "false", "off", "no":
		return false, nil
	case "1", "true", "on", "yes":
		return true, nil
	default:
		return false, kindf(ErrBadRequest, "force=%q: want 1 or 0", v)
	}
}

// rolloutAction starts a rollout (POST .../rollout, or action start), of
// the machines the request selects (see rolloutSelection), or acts on the
// current one.
func (s *server) rolloutAction(c echo.Context) (outcome, error) {
	site, action := c.Param("site"), c.Param("action")
	if action == "" {
		action = ActionStart
	}
	if !slices.Contains(rolloutActions[:], action) {
		return outcome{}, kindf(ErrBadRequest, "unknown rollout action %q: want start, pause, resume, abort or confirm", action)
	}
	if s.Rebuilds == nil {
		return outcome{}, errNoRebuilds
	}
	if _, err := s.siteStatus(site); err != nil {
		return outcome{}, err
	}
	var sel sites.Selection
	if action == ActionStart {
		var err error
		if sel, err = rolloutSelection(c); err != nil {
			return outcome{}, err
		}
	}
	r, err := s.Rebuilds.RolloutAction(c.Request().Context(), site, action, who(c).Name, sel)
	if err != nil {
		return outcome{}, err
	}
	r.VersionRef = newVersionBook(s.DB).named(c.Request().Context(), site, r.Version)
	code := http.StatusOK
	if action == ActionStart {
		code = http.StatusCreated
	}
	return outcome{
		code: code, body: r,
		redirect: "/sites/" + pathEscape(site) + "/rollout", flash: "rollout-" + action,
		detail: action + " " + r.Title() + " onto " + r.Target().String() + ": now " + string(r.State),
	}, nil
}
