package web

import (
	"net/http"
	"strings"
	"testing"
)

// The profiler shows the server's internals and costs CPU: operators only.
func TestPprofOperatorsOnly(t *testing.T) {
	f := newFixture(t, nil)
	// Without a token the request is sent to the login page.
	if _, body := f.call("", http.MethodGet, "/debug/pprof/", nil); strings.Contains(string(body), "goroutine") || !strings.Contains(string(body), "Log in") {
		t.Errorf("GET /debug/pprof/ without a token was not sent to log in:\n%.300s", body)
	}
	for _, tc := range []struct {
		secret string
		want   int
	}{{viewerSecret, http.StatusForbidden}, {operatorSecret, http.StatusOK}} {
		code, body := f.call(tc.secret, http.MethodGet, "/debug/pprof/", nil)
		if code != tc.want {
			t.Errorf("GET /debug/pprof/ as %q: %d, want %d", tc.secret, code, tc.want)
		}
		if code == http.StatusOK && !strings.Contains(string(body), "goroutine") {
			t.Errorf("the profile index lists no goroutine profile:\n%.300s", body)
		}
	}
	if code, body := f.call(operatorSecret, http.MethodGet, "/debug/pprof/goroutine?debug=1", nil); code != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Errorf("goroutine profile: %d\n%.200s", code, body)
	}
}

// /metrics is open on the operator listener unless MetricsAuth asks for a
// viewer token.
func TestMetricsAuth(t *testing.T) {
	open := newFixture(t, nil)
	if code, _ := open.call("", http.MethodGet, "/metrics", nil); code != http.StatusOK {
		t.Errorf("/metrics without MetricsAuth: %d, want 200", code)
	}
	closed := newFixture(t, func(s *Server) { s.MetricsAuth = true })
	if _, body := closed.call("", http.MethodGet, "/metrics", nil); strings.Contains(string(body), "undercloud_") {
		t.Errorf("/metrics with MetricsAuth and no token served the metrics")
	}
	if code, body := closed.call(viewerSecret, http.MethodGet, "/metrics", nil); code != http.StatusOK || !strings.Contains(string(body), "undercloud_") {
		t.Errorf("/metrics with a viewer token: %d\n%.200s", code, body)
	}
}
