package web

import (
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/undercloud/undercloud/sites"
)

// rolloutStart is the JSON body of a rollout start; both fields empty (or
// no body) roll every outdated machine of the site.
type rolloutStart struct {
	// Select is a selector: comma-separated key=value terms, all of which
	// a machine must match (rack=r12,role=worker).
	Select string `json:"select"`
	// Machines names the machines to roll (those Select matches, when
	// both are given).
	Machines []string `json:"machines"`
}

// rolloutSelection reads which machines a rollout start picks: a JSON body
// {"select": "rack=r12", "machines": ["a", "b"]}, or the UI form's fields
// select and machines (names separated by commas or spaces).
func rolloutSelection(c echo.Context) (sites.Selection, error) {
	var req rolloutStart
	// Any other body type was once read as no body, which selects every
	// outdated machine: the whole site rolled instead of the selection.
	const want = `JSON {"select": "rack=r12,role=worker", "machines": ["name", ...]} (both optional, or no body)`
	kind, err := bodyOf(c.Request(), want)
	if err != nil {
		return sites.Selection{}, err
	}
	if kind == bodyJSON {
		if err := decodeJSON(c.Request(), &req, 64<<10, true, want); err != nil {
			return sites.Selection{}, err
		}
	} else {
		req.Select = c.FormValue("select")
		req.Machines = strings.FieldsFunc(c.FormValue("machines"), func(r rune) bool { return r == ',' || r == ' ' })
	}
	sel, err := sites.ParseSelector(req.Select)
	if err != nil {
		return sites.Selection{}, kindf(ErrBadRequest, "%v", err)
	}
	out := sites.Selection{Selector: sel}
	for _, name := range req.Machines {
		name = strings.TrimSpace(name)
		if name == "" {
			return sites.Selection{}, kindf(ErrBadRequest, "machines: an empty machine name")
		}
		if !slices.Contains(out.Machines, name) {
			out.Machines = append(out.Machines, name)
		}
	}
	return out, nil
}
