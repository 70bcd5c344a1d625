package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/undercloud/undercloud/inventory"
)

// The UI's templates and assets are compiled in: the server serves its UI
// with nothing from elsewhere (no CDN), also on an isolated network.
//
//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// page is what every template gets: the layout's needs and the page's Data.
type page struct {
	Title string
	Nav   string // the menu entry to highlight
	User  identity
	CSRF  string // the session's (or the login form's) CSRF token
	Flash string
	// Live makes the page follow the event stream (of LiveSite, all sites
	// if empty) with JavaScript; without it, Refresh seconds reload it.
	Live     bool
	LiveSite string
	Refresh  int
	// Reload makes the page reload itself every Reload seconds, with or
	// without JavaScript (the storm view).
	Reload  int
	Version string
	Now     time.Time
	Data    any
}

// parsePages parses the layout with each page's template, once at start-up,
// so a broken template fails Handler rather than a request.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Option("missingkey=error").Funcs(funcs()).
		ParseFS(templateFiles, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" || name == "parts" {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templateFiles, n); err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes a page. It executes into a buffer first, so a template
// error becomes a clean 500 instead of half a page.
func (s *server) render(c echo.Context, code int, name string, p page) error {
	t := s.pages[name]
	if t == nil {
		return fmt.Errorf("no page template %q", name)
	}
	p.User = who(c)
	if p.CSRF == "" && p.User.sess != nil {
		p.CSRF = p.User.sess.csrf
	}
	if p.Flash == "" {
		p.Flash = flashes[c.QueryParam("flash")]
	}
	p.Version, p.Now = s.Version, s.now().UTC()
	if p.Version == "" {
		p.Version = "dev"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		return fmt.Errorf("render page %s: %w", name, err)
	}
	return c.HTMLBlob(code, buf.Bytes())
}

// renderError shows an error page; its text is the error's message.
func (s *server) renderError(c echo.Context, code int, msg string) error {
	data := struct {
		Code    int
		Status  string
		Message string
	}{code, http.StatusText(code), msg}
	return s.render(c, code, "error", page{Title: http.StatusText(code), Data: data})
}

// staticHandler serves the embedded assets at /static/: the request path
// is their path in staticFiles.
func staticHandler() http.Handler {
	fsrv := http.FileServer(http.FS(staticFiles))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		fsrv.ServeHTTP(w, r)
	})
}

// funcs are the template helpers.
func funcs() template.FuncMap {
	return template.FuncMap{
		"short": short,
		"ts": func(t any) string {
			if tt := toTime(t); !tt.IsZero() {
				return tt.UTC().Format("2006-01-02 15:04:05")
			}
			return "—"
		},
		"iso": func(t any) string {
			if tt := toTime(t); !tt.IsZero() {
				return tt.UTC().Format(time.RFC3339)
			}
			return ""
		},
		"ago":        func(now time.Time, t any) string { return ageString(now, toTime(t)) },
		"dur":        durString,
		"pathEscape": pathEscape,
		"arch":       archName,
		"vref":       vrefString,
		"join":       strings.Join,
		"states":     joinStates,
		"progress": func(r RolloutView) string {
			f, t := r.Progress()
			return fmt.Sprintf("%d/%d", f, t)
		},
		"args": func(now time.Time, items any) listArgs { return listArgs{now, items} },
		"stateCounts": func(m map[string]int) []stateCount {
			var out []stateCount
			for _, st := range inventory.States() {
				if n := m[string(st)]; n > 0 {
					out = append(out, stateCount{string(st), n})
				}
			}
			return out
		},
		"has": func(ss []string, s string) bool {
			for _, x := range ss {
				if x == s {
					return true
				}
			}
			return false
		},
	}
}

// listArgs is what the list templates (machine-list, events) get.
type listArgs struct {
	Now   time.Time
	Items any
}

// stateCount is one state's machine count.
type stateCount struct {
	State string
	N     int
}

func toTime(t any) time.Time {
	switch t := t.(type) {
	case time.Time:
		return t
	case *time.Time:
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

// durString writes a duration as operators read it: 850ms, 7.2s, 3m04s.
func durString(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// vrefString is a version as a table cell, as VersionRef.String names it.
func vrefString(v any) string {
	switch v := v.(type) {
	case *VersionRef:
		if v != nil {
			return v.String()
		}
	case VersionRef:
		return v.String()
	case VersionView:
		return v.String()
	case *VersionView:
		if v != nil {
			return v.String()
		}
	}
	return "—"
}

// short abbreviates a commit hash as sites.Version.Short does.
func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func pathEscape(s string) string { return url.PathEscape(s) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
