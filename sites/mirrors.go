package sites

import (
	"fmt"
	"net/url"
	"strings"
)

// checkMirrors checks a site's artifact mirrors: each URL a base the
// server can write unquoted into an iPXE script and a kernel command line,
// each selector valid, and no mirror that could never be chosen (the
// same URL twice, a selector an earlier mirror already takes).
func checkMirrors(s *Site) Problems {
	var ps Problems
	at := func(field, format string, args ...any) {
		ps = append(ps, problemf(s.File, field, s.Line(field), format, args...))
	}
	urls := map[string]int{}      // URL -> index of its first mirror
	selectors := map[string]int{} // canonical selector -> index of its first mirror
	catchAll := -1                // index of the first mirror without a selector
	for i, m := range s.Mirrors {
		f := fmt.Sprintf("mirrors[%d]", i)
		if m.URL != "" {
			if why := checkMirrorURL(m.URL); why != "" {
				at(f+".url", "%q: %s", m.URL, why)
			}
			if j, ok := urls[m.URL]; ok {
				at(f+".url", "%q is also mirrors[%d].url", m.URL, j)
			} else {
				urls[m.URL] = i
			}
		}
		sel, err := ParseSelector(m.Select)
		if err != nil {
			at(f+".select", "%v", err)
			continue
		}
		// A machine takes the first mirror that selects it (see
		// provision's chooseMirror): a later one with the same selector,
		// or after one that takes every machine, is never chosen.
		switch j, dup := selectors[sel.String()]; {
		case catchAll >= 0:
			at(f, "is never chosen: mirrors[%d] has no select and takes every machine first", catchAll)
		case dup:
			at(f+".select", "%q is never chosen: mirrors[%d] has the same selector and comes first", m.Select, j)
		default:
			selectors[sel.String()] = i
		}
		if sel.IsZero() && catchAll < 0 {
			catchAll = i
		}
	}
	return ps
}

// checkMirrorURL returns what makes base unfit as a mirror's base URL, ""
// if nothing: it must be an absolute http(s) URL without user, query,
// fragment or trailing slash, whose characters need no quoting in an iPXE
// script or a kernel command line (the rules of pxe's checkBase, which
// checks the server's own base the same way).
func checkMirrorURL(base string) string {
	u, err := url.Parse(base)
	switch {
	case err != nil:
		return "not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "want an http:// or https:// URL"
	case u.Host == "":
		return "no host"
	case u.User != nil:
		return "must not carry a user or password"
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(base, "?#"):
		return "must not have a query or fragment: artifacts are fetched at <url>/images/sha256/<hex>"
	case strings.HasSuffix(base, "/"):
		return "must not end in '/': artifacts are fetched at <url>/images/sha256/<hex>"
	}
	for _, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-:/[]%~", c)) {
			return fmt.Sprintf("the character %q cannot be carried by an iPXE script or a kernel command line "+
				"(letters, digits and . _ - : / [ ] %% ~ only)", c)
		}
	}
	return ""
}
