package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/undercloud/undercloud/inventory"
)

// outcome is what a change handler did: the API's answer, the page the UI
// goes to next, and the detail for the audit log.
type outcome struct {
	code     int    // the API's status: 200, 201, 202
	body     any    // the API's JSON answer
	redirect string // the UI's next page
	flash    string // a key of flashes, shown on that page
	detail   string // what was done, in words, for the audit log
}

// flashes are the messages a page shows after a change; redirects carry
// only the key, so no link can make a page say anything else.
var flashes = map[string]string{
	"refresh":         "Refresh of the site repo requested: this page shows its result once the repo is fetched and the gate has run.",
	"rebuild":         "Rebuild requested: follow it below.",
	"rebuild-forced":  "Rebuild forced past the master quorum rule: the audit log records the masters that were down. Follow it below.",
	"rollout-start":   "Rollout started.",
	"rollout-pause":   "Rollout paused: no new rebuild starts until it is resumed.",
	"rollout-resume":  "Rollout resumed.",
	"rollout-abort":   "Rollout aborted: rebuilds under way finish, no new one starts.",
	"rollout-confirm": "Canary confirmed: the rollout goes on with the next batches.",
}

// mutation wraps a handler that changes something: it writes the audit
// entry, then answers: JSON for the API, a redirect (post/redirect/get)
// for the UI. The operator middleware has checked the role and the CSRF
// token before.
func (s *server) mutation(h func(c echo.Context) (outcome, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		out, err := h(c)
		s.recordAudit(c, who(c), actionOf(c), targetOf(c), out.detail, err)
		if err != nil {
			return err
		}
		if isAPI(c.Request()) {
			return c.JSON(out.code, out.body)
		}
		next := out.redirect
		if out.flash != "" {
			next += "?flash=" + url.QueryEscape(out.flash)
		}
		return c.Redirect(http.StatusSeeOther, next)
	}
}

// actionOf names the change a request asks for, from its route.
func actionOf(c echo.Context) string {
	p := c.Path()
	switch {
	case strings.HasSuffix(p, "/refresh"):
		return "refresh"
	case strings.HasSuffix(p, "/rebuild"):
		return "rebuild"
	case strings.HasSuffix(p, "/rollout/:action"):
		return "rollout-" + c.Param("action")
	case strings.HasSuffix(p, "/rollout"):
		return "rollout-start"
	}
	return c.Request().Method + " " + p
}

// targetOf names what a request acts on: site or site/machine.
func targetOf(c echo.Context) string {
	t := c.Param("site")
	if n := c.Param("name"); n != "" {
		t += "/" + n
	}
	return t
}

// auditDenied records a refused change by a known identity.
func (s *server) auditDenied(c echo.Context, err error) {
	s.log.Warn("change refused", "actor", who(c).Name, "action", actionOf(c), "target", targetOf(c), "ip", c.RealIP(), "err", err)
	s.recordAudit(c, who(c), actionOf(c), targetOf(c), "", err)
}

// recordAudit writes one audit entry: ok, or denied/failed with the error.
// It outlives the request's context: a client hanging up must not erase
// the trace of what it did.
func (s *server) recordAudit(c echo.Context, id identity, action, target, detail string, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, errForbidden):
		result = "denied: " + message(err)
	default:
		result = "failed: " + message(err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 10*time.Second)
	defer cancel()
	_, aerr := s.DB.RecordAudit(ctx, inventory.AuditEntry{
		At: s.now(), Actor: id.Name, Source: id.Via + " " + c.RealIP(),
		Action: action, Target: target, Detail: detail, Result: result,
	})
	if aerr != nil {
		s.log.Error("audit log", "actor", id.Name, "action", action, "target", target, "result", result, "err", aerr)
	}
}

// AuditView is one audit entry as the UI and the API show it.
type AuditView struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Source string    `json:"source"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Detail string    `json:"detail,omitempty"`
	Result string    `json:"result"`
}

// auditEntries reads a page of entries, newest first: limit (default 200,
// at most inventory.MaxPage) and before (an entry ID) come from the
// request. next is the URL of the older page, empty on the last.
func (s *server) auditEntries(c echo.Context) (es []AuditView, next string, err error) {
	n, err := intParam(c, "limit", 200)
	if err != nil {
		return nil, "", err
	}
	n = min(max(n, 1), inventory.MaxPage)
	before, err := intParam(c, "before", 0)
	if err != nil {
		return nil, "", err
	}
	raw, err := s.DB.AuditBefore(c.Request().Context(), int64(before), n)
	if err != nil {
		return nil, "", err
	}
	out := make([]AuditView, 0, len(raw))
	for _, e := range raw {
		out = append(out, AuditView(e))
	}
	if len(out) == n {
		u := *c.Request().URL
		q := u.Query()
		q.Set("before", strconv.FormatInt(out[n-1].ID, 10))
		u.RawQuery = q.Encode()
		next = u.RequestURI()
	}
	return out, next, nil
}

func (s *server) apiAudit(c echo.Context) error {
	es, next, err := s.auditEntries(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"entries": es, "next": next})
}

func (s *server) auditPage(c echo.Context) error {
	es, _, err := s.auditEntries(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "audit", page{Title: "Audit log", Nav: "audit", Data: es})
}

// intParam reads a non-negative integer query parameter.
func intParam(c echo.Context, name string, def int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, kindf(ErrBadRequest, "%s=%q: want a non-negative whole number", name, v)
	}
	return n, nil
}
