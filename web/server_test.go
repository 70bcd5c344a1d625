package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBootPathsPassThrough: the machine-facing endpoints reach the boot
// handler unchanged, with no login and none of the UI's headers; nothing
// else does.
func TestBootPathsPassThrough(t *testing.T) {
	f := newFixture(t, nil)
	for _, tt := range []struct{ method, uri string }{
		{http.MethodGet, "/boot.ipxe"},
		{http.MethodGet, "/ipxe?mac=52:54:00:99:00:11&uuid=x&arch=x86_64"},
		{http.MethodGet, "/images/sha256/" + strings.Repeat("ab", 32)},
		{http.MethodGet, "/firmware/ipxe.efi"},
		{http.MethodGet, "/ignition?mac=52:54:00:99:00:11&version=v&token=t"},
		{http.MethodPost, "/booted?mac=52:54:00:99:00:11&version=v&token=t"},
		{http.MethodPost, "/heartbeat?mac=52:54:00:99:00:11&version=v&token=t"},
	} {
		req, _ := http.NewRequest(tt.method, f.http.URL+tt.uri, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "boot " + tt.method + " " + tt.uri; string(body) != want || resp.Header.Get("X-Boot") != "yes" {
			t.Errorf("%s %s reached %q, want the boot handler's %q", tt.method, tt.uri, body, want)
		}
		if resp.Header.Get("Content-Security-Policy") != "" || resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s %s: the UI's headers were added", tt.method, tt.uri)
		}
	}
	for _, uri := range []string{"/", "/imagesx", "/ipxe/x", "/bootipxe"} {
		req, _ := http.NewRequest(http.MethodGet, f.http.URL+uri, nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Boot") != "" {
			t.Errorf("GET %s went to the boot handler", uri)
		}
	}

	// Without a boot handler those paths are simply not found.
	s := *f.srv
	s.Boot = nil
	h, err := s.Handler()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boot.ipxe", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /boot.ipxe without Boot: %d, want 404", rec.Code)
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, nil)
	resp, _ := f.login(viewerSecret).get("/")
	for h, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "same-origin",
	} {
		if got := resp.Header.Get(h); !strings.HasPrefix(got, want) {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
}

func TestHandlerNeedsDBAndSites(t *testing.T) {
	f := newFixture(t, nil)
	for name, edit := range map[string]func(*Server){
		"no DB":    func(s *Server) { s.DB = nil },
		"no Sites": func(s *Server) { s.Sites = nil },
	} {
		s := *f.srv
		edit(&s)
		if _, err := s.Handler(); err == nil {
			t.Errorf("%s: Handler succeeded", name)
		}
	}
}

// TestOpenAPI: the document is OpenAPI 3, and describes exactly the API's
// routes, each with its auth and answers.
func TestOpenAPI(t *testing.T) {
	f := newFixture(t, nil)
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Security  []map[string][]string `json:"security"`
			Role      string                `json:"x-role"`
			Responses map[string]any        `json:"responses"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	f.getJSON("/api/openapi.json", &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q, want 3.x", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			if len(op.Responses) == 0 || op.Role == "" || (op.Security == nil && path != "/metrics") {
				t.Errorf("%s %s lacks responses, x-role or security", method, path)
			}
			if op.Role == "operator" && op.Responses["403"] == nil {
				t.Errorf("%s %s: an operator endpoint without its 403", method, path)
			}
		}
	}
	h := &server{Server: *f.srv, tokens: tokenSet{}, sessions: &sessionStore{}}
	var routed []string
	param := regexp.MustCompile(`:([a-z]+)`)
	for _, r := range h.echo().Routes() {
		if strings.HasPrefix(r.Path, "/api/") || r.Path == "/metrics" {
			routed = append(routed, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
		}
	}
	slices.Sort(documented)
	slices.Sort(routed)
	if diff := cmp.Diff(routed, documented); diff != "" {
		t.Errorf("routes (-served +documented):\n%s", diff)
	}
	// Every schema reference resolves.
	_, body := f.call(viewerSecret, http.MethodGet, "/api/openapi.json", nil)
	for _, m := range regexp.MustCompile(`#/components/schemas/(\w+)`).FindAllStringSubmatch(string(body), -1) {
		if doc.Components.Schemas[m[1]] == nil {
			t.Errorf("schema %s is referenced but not defined", m[1])
		}
	}
}
