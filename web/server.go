package web

import (
	"database/sql"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/undercloud/undercloud/inventory"
)

// Defaults of the Server's optional fields.
const (
	DefaultSessionTTL   = 12 * time.Hour
	DefaultQueryTimeout = 5 * time.Second
	DefaultQueryRows    = 1000
)

// Server is the web UI, JSON API and metrics endpoint of the site server.
// Set its fields, then call Handler once.
type Server struct {
	// DB is the inventory the pages and the API read. Required.
	DB *inventory.DB
	// ReadOnly is the SQL query page's connection, from
	// inventory.OpenReadOnly; nil makes the page answer 503. A writable
	// connection is refused at every query.
	ReadOnly *sql.DB
	// Sites is the site tracker. Required.
	Sites Sites
	// Rebuilds is the rebuild and rollout engine; nil makes the rebuild and
	// rollout endpoints answer 503 and the pages say so.
	Rebuilds Rebuilds
	// Boot is the machine-facing handler (package pxe). Requests for
	// /boot.ipxe, /ipxe, /images/, /firmware/, /ignition, /booted and
	// /heartbeat go to it unchanged: no session, no headers added. Nil
	// answers them 404.
	Boot http.Handler
	// Tokens are the API tokens, from the server's secrets file. With none,
	// nobody can log in: only /metrics and the boot endpoints answer.
	Tokens []Token
	// Metrics is served at /metrics; nil answers 404 there.
	Metrics *Metrics
	// MetricsAuth makes /metrics need a viewer token like the API (for a
	// Prometheus with a bearer token); false leaves it open on the
	// operator listener, where it is served.
	MetricsAuth bool
	// Log receives server errors, logins and refusals; nil discards.
	Log *slog.Logger
	// Now returns the current time (for ages and sessions); nil means
	// time.Now.
	Now func() time.Time
	// Version is this build's version, shown in every page's footer.
	Version string
	// SessionTTL is how long a UI session lasts (DefaultSessionTTL if 0).
	SessionTTL time.Duration
	// SecureCookies marks cookies Secure even on plain HTTP requests: set it
	// behind a proxy that terminates TLS. Cookies of requests that arrive
	// over TLS are always Secure.
	SecureCookies bool
	// QueryTimeout and QueryRows bound one query of the SQL page
	// (DefaultQueryTimeout, DefaultQueryRows if 0).
	QueryTimeout time.Duration
	QueryRows    int
	// Done, when closed, ends the event streams (server-sent events), so a
	// graceful shutdown does not wait for browsers to hang up. Pass the
	// serve context's Done().
	Done <-chan struct{}
}

// server is a Server checked and ready to serve.
type server struct {
	Server
	log      *slog.Logger
	tokens   tokenSet
	sessions *sessionStore
	pages    map[string]*template.Template
	queries  querySlots // SQL page queries running (query.go)
}

// Handler checks the configuration and returns the handler of the whole
// HTTP port: the boot endpoints passed to Boot, everything else to the UI,
// the API and /metrics.
func (s *Server) Handler() (http.Handler, error) {
	switch {
	case s.DB == nil:
		return nil, errors.New("web: no DB")
	case s.Sites == nil:
		return nil, errors.New("web: no Sites")
	}
	tokens, err := newTokenSet(s.Tokens)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	srv := &server{Server: *s, log: s.Log, tokens: tokens, pages: pages}
	if srv.log == nil {
		srv.log = slog.New(slog.DiscardHandler)
	}
	if srv.SessionTTL <= 0 {
		srv.SessionTTL = DefaultSessionTTL
	}
	if srv.QueryTimeout <= 0 {
		srv.QueryTimeout = DefaultQueryTimeout
	}
	if srv.QueryRows <= 0 {
		srv.QueryRows = DefaultQueryRows
	}
	srv.sessions = &sessionStore{ttl: srv.SessionTTL, now: srv.now}
	return &dispatch{boot: s.Boot, web: srv.echo()}, nil
}

func (s *server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// dispatch sends the boot endpoints to the boot handler and the rest to echo.
type dispatch struct {
	boot http.Handler
	web  http.Handler
}

func (d *dispatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.boot != nil && isBootPath(r.URL.Path) {
		d.boot.ServeHTTP(w, r)
		return
	}
	d.web.ServeHTTP(w, r)
}

// isBootPath reports whether path is one of the machine-facing endpoints of
// docs/boot-flow.md.
func isBootPath(path string) bool {
	switch path {
	case "/boot.ipxe", "/ipxe", "/ignition", "/booted", "/heartbeat":
		return true
	}
	return strings.HasPrefix(path, "/images/") || strings.HasPrefix(path, "/firmware/")
}

// echo builds the router of every page and endpoint.
func (s *server) echo() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = echo.ExtractIPDirect() // X-Forwarded-For is anyone's to write
	e.Use(s.recover, securityHeaders, middleware.BodyLimit("256K"))

	e.GET("/login", s.loginPage)
	e.POST("/login", s.login)
	e.GET("/static/*", echo.WrapHandler(staticHandler()))

	// UI pages; every one needs a viewer, every change an operator.
	view, op := s.authenticate, s.operator
	if s.MetricsAuth {
		e.GET("/metrics", s.metrics, view)
	} else {
		e.GET("/metrics", s.metrics)
	}
	// Go's profiler, for the operator's own performance questions: it
	// shows the server's internals and costs CPU, so operators only.
	e.Any("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprofHandler)), view, op)
	e.POST("/logout", s.logout, view, s.csrf)
	e.GET("/", s.overviewPage, view)
	e.GET("/sites/:site", s.sitePage, view)
	e.POST("/sites/:site/refresh", s.mutation(s.refresh), view, op)
	e.GET("/machines", s.machinesPage, view)
	e.GET("/machines/:site/:name", s.machinePage, view)
	e.POST("/machines/:site/:name/rebuild", s.mutation(s.rebuild), view, op)
	e.GET("/storm", s.stormPage, view)
	e.GET("/rollouts", s.rolloutsPage, view)
	e.GET("/sites/:site/rollout", s.rolloutPage, view)
	e.POST("/sites/:site/rollout/:action", s.mutation(s.rolloutAction), view, op)
	e.GET("/discovered", s.discoveredPage, view)
	e.GET("/query", s.queryPage, view)
	e.GET("/audit", s.auditPage, view)

	// The JSON API of docs/api.md.
	e.GET("/api/openapi.json", s.openAPI, view)
	v1 := "/api/v1"
	e.GET(v1+"/sites", s.apiSites, view)
	e.GET(v1+"/sites/:site", s.apiSite, view)
	e.POST(v1+"/sites/:site/refresh", s.mutation(s.refresh), view, op)
	e.GET(v1+"/machines", s.apiMachines, view)
	e.GET(v1+"/machines/:site/:name", s.apiMachine, view)
	e.POST(v1+"/machines/:site/:name/rebuild", s.mutation(s.rebuild), view, op)
	e.GET(v1+"/discovered", s.apiDiscovered, view)
	e.GET(v1+"/discovered/patch", s.apiDiscoveredPatch, view)
	e.GET(v1+"/sites/:site/rollout", s.apiRollout, view)
	e.POST(v1+"/sites/:site/rollout", s.mutation(s.rolloutAction), view, op)
	e.POST(v1+"/sites/:site/rollout/:action", s.mutation(s.rolloutAction), view, op)
	e.GET(v1+"/events", s.apiEvents, view)
	e.GET(v1+"/events/stream", s.eventStream, view)
	e.GET(v1+"/storm", s.apiStorm, view)
	e.POST(v1+"/query", s.apiQuery, view)
	e.GET(v1+"/audit", s.apiAudit, view)
	return e
}

// recover turns a handler's panic into a 500 for its request alone.
func (s *server) recover(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("web handler panic", "path", c.Request().URL.Path, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = fmt.Errorf("internal error: %v", r)
			}
		}()
		return next(c)
	}
}

// securityHeaders keeps pages out of frames and caches and allows only the
// server's own scripts and styles: the UI loads nothing from elsewhere.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// The query page carries SQL in its URL: keep it off other sites.
		h.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		return next(c)
	}
}
