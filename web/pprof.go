package web

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// pprofHandler serves Go's profiles under /debug/pprof/ (the index, the
// named profiles, cmdline, profile, symbol and trace) without registering
// them on http.DefaultServeMux.
func pprofHandler(w http.ResponseWriter, r *http.Request) {
	switch name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "":
		pprof.Index(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
}
