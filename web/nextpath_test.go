package web

import (
	"net/http"
	"net/url"
	"testing"
)

// The login form's next parameter only ever leads to a path on this
// server. Browsers drop tabs, CR and LF from a Location and read "\" as
// "/", so each of these would otherwise become "//evil.example": another
// host.
func TestLocalPath(t *testing.T) {
	tests := map[string]struct{ next, want string }{
		"path":                       {"/machines", "/machines"},
		"path and query":             {"/machines?site=lab", "/machines?site=lab"},
		"root":                       {"/", "/"},
		"encoded space in query":     {"/machines?q=a%20b", "/machines?q=a%20b"},
		"encoded slash inside":       {"/a%2Fb", "/a%2Fb"},
		"empty":                      {"", "/"},
		"absolute URL":               {"https://evil.example/", "/"},
		"scheme-relative":            {"//evil.example/", "/"},
		"scheme-relative, 3 slashes": {"///evil.example/", "/"},
		"backslash after slash":      {"/\\evil.example", "/"},
		"backslash later":            {"/a\\b", "/"},
		"javascript":                 {"javascript:alert(1)", "/"},
		"relative":                   {"machines", "/"},
		"leading space":              {" /machines", "/"},
		"tab":                        {"/\t/evil.example", "/"},
		"newline":                    {"/\n/evil.example", "/"},
		"CR":                         {"/\r/evil.example", "/"},
		"NUL":                        {"/\x00/evil.example", "/"},
		"DEL":                        {"/\x7f/evil.example", "/"},
		"C1 control":                 {"/\u0085/evil.example", "/"},
		"control in query":           {"/machines?site=\tlab", "/"},
		"header injection":           {"/x\r\nSet-Cookie: a=b", "/"},
		"encoded tab":                {"/%09/evil.example", "/"},
		"encoded newline":            {"/%0a/evil.example", "/"},
		"encoded CR":                 {"/%0D/evil.example", "/"},
		"encoded slash":              {"/%2Fevil.example", "/"},
		"encoded backslash":          {"/%5Cevil.example", "/"},
		"encoded backslash later":    {"/a%5cb", "/"},
		"double-encoded tab":         {"/%2509/evil.example", "/"},
		"double-encoded slash":       {"/%252Fevil.example", "/"},
		"encoded leading slash":      {"%2F%2Fevil.example", "/"},
		"bad escape":                 {"/%zz", "/"},
		"invalid UTF-8":              {"/\xff", "/"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := localPath(tc.next); got != tc.want {
				t.Errorf("localPath(%q) = %q, want %q", tc.next, got, tc.want)
			}
		})
	}
}

// The login itself: a next with a tab redirects to "/", a local one to itself.
func TestLoginRedirectStaysLocal(t *testing.T) {
	f := newFixture(t, nil)
	for next, want := range map[string]string{
		"/\t/evil.example":   "/",
		"/\\evil.example":    "/",
		"/%09/evil.example":  "/",
		"/machines?site=lab": "/machines?site=lab",
	} {
		b := f.browser()
		resp, _ := b.post("/login", url.Values{"token": {viewerSecret}, "csrf": {b.formToken("/login")}, "next": {next}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("login with next %q: %d to %q, want 303 to %q", next, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}
