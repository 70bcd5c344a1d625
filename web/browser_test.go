package web

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// browser is a logged-in (or not) web browser: it keeps cookies and does
// not follow redirects, so tests see them.
type browser struct {
	f      *fixture
	client *http.Client
}

func (f *fixture) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return &browser{f: f, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// login logs in through the login form with secret.
func (f *fixture) login(secret string) *browser {
	f.t.Helper()
	b := f.browser()
	resp, _ := b.post("/login", url.Values{"token": {secret}, "csrf": {b.formToken("/login")}})
	if resp.StatusCode != http.StatusSeeOther {
		f.t.Fatalf("login: status %d, want 303", resp.StatusCode)
	}
	return b
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.f.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	return resp, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.f.http.URL+path, nil)
	if err != nil {
		b.f.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.f.http.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formToken loads the page at path and returns the CSRF token of its forms.
func (b *browser) formToken(path string) string {
	b.f.t.Helper()
	resp, body := b.get(path)
	if resp.StatusCode != http.StatusOK {
		b.f.t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.f.t.Fatalf("GET %s: no CSRF token in the page", path)
	}
	return m[1]
}
