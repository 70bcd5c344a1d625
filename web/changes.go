package web

import (
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
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

// rebuild starts a machine's rebuild onto its site's active version.
func (s *server) rebuild(c echo.Context) (outcome, error) {
	site, name := c.Param("site"), c.Param("name")
	if s.Rebuilds == nil {
		return outcome{}, errNoRebuilds
	}
	if _, err := s.siteStatus(site); err != nil {
		return outcome{}, err
	}
	rb, err := s.Rebuilds.Rebuild(c.Request().Context(), site, name, who(c).Name)
	if err != nil {
		return outcome{}, err
	}
	return outcome{
		code: http.StatusAccepted, body: rb,
		redirect: "/machines/" + pathEscape(site) + "/" + pathEscape(name), flash: "rebuild",
		detail: "rebuild " + itoa(rb.ID) + " onto " + short(rb.Version),
	}, nil
}

// rolloutAction starts a rollout (POST .../rollout, or action start) or
// acts on the current one.
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
	r, err := s.Rebuilds.RolloutAction(c.Request().Context(), site, action, who(c).Name)
	if err != nil {
		return outcome{}, err
	}
	code := http.StatusOK
	if action == ActionStart {
		code = http.StatusCreated
	}
	return outcome{
		code: code, body: r,
		redirect: "/sites/" + pathEscape(site) + "/rollout", flash: "rollout-" + action,
		detail: action + " rollout " + itoa(r.ID) + " onto " + short(r.Version) + ": now " + string(r.State),
	}, nil
}
