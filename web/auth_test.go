package web

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/inventory"
)

// TestAPIAuth: every endpoint wants a token; changes want an operator.
func TestAPIAuth(t *testing.T) {
	f := newFixture(t, nil)
	tests := map[string]struct {
		secret, method, path string
		want                 int
	}{
		"no token":               {"", http.MethodGet, "/api/v1/sites", http.StatusUnauthorized},
		"unknown token":          {"not-a-token-at-all-000", http.MethodGet, "/api/v1/sites", http.StatusUnauthorized},
		"token prefix":           {viewerSecret[:len(viewerSecret)-1], http.MethodGet, "/api/v1/machines", http.StatusUnauthorized},
		"no token on openapi":    {"", http.MethodGet, "/api/openapi.json", http.StatusUnauthorized},
		"no token on a change":   {"", http.MethodPost, "/api/v1/sites/lab/refresh", http.StatusUnauthorized},
		"viewer reads":           {viewerSecret, http.MethodGet, "/api/v1/sites", http.StatusOK},
		"viewer refresh":         {viewerSecret, http.MethodPost, "/api/v1/sites/lab/refresh", http.StatusForbidden},
		"viewer rebuild":         {viewerSecret, http.MethodPost, "/api/v1/machines/lab/lab-w2/rebuild", http.StatusForbidden},
		"viewer rollout":         {viewerSecret, http.MethodPost, "/api/v1/sites/lab/rollout", http.StatusForbidden},
		"viewer rollout action":  {viewerSecret, http.MethodPost, "/api/v1/sites/lab/rollout/abort", http.StatusForbidden},
		"operator reads":         {operatorSecret, http.MethodGet, "/api/v1/audit", http.StatusOK},
		"metrics need no token":  {"", http.MethodGet, "/metrics", http.StatusOK},
		"boot path needs none":   {"", http.MethodGet, "/boot.ipxe", http.StatusOK},
		"static needs none":      {"", http.MethodGet, "/static/style.css", http.StatusOK},
		"unknown token, no page": {"not-a-token-at-all-000", http.MethodGet, "/api/v1/nope", http.StatusUnauthorized},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			code, body := f.call(tt.secret, tt.method, tt.path, nil)
			if code != tt.want && !(name == "unknown token, no page" && code == http.StatusNotFound) {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, code, body, tt.want)
			}
			if code >= 400 {
				var e struct{ Error string }
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Errorf("error body %q is not {\"error\": ...}", body)
				}
			}
		})
	}
	if got := f.sites.refreshCalls(); len(got) != 0 {
		t.Errorf("refused requests refreshed the repo: %v", got)
	}
	// Refused changes by known tokens are in the audit log, as denied.
	denied := 0
	for _, e := range f.audit() {
		if e.Actor == "vera" && strings.HasPrefix(e.Result, "denied: vera holds a viewer token") {
			denied++
		}
	}
	if denied != 4 {
		t.Errorf("%d denied entries for vera, want 4: %+v", denied, f.audit())
	}
}

// TestOperatorChangeIsAudited: an operator's change succeeds and leaves an
// entry saying who, what, target, when and the result.
func TestOperatorChangeIsAudited(t *testing.T) {
	f := newFixture(t, nil)
	code, body := f.call(operatorSecret, http.MethodPost, "/api/v1/sites/lab/refresh", nil)
	if code != http.StatusAccepted {
		t.Fatalf("refresh: %d %s", code, body)
	}
	if diff := cmp.Diff([]bool{true}, f.sites.refreshCalls()); diff != "" {
		t.Errorf("refresh calls (-want +got):\n%s", diff)
	}
	es := f.audit()
	if len(es) == 0 {
		t.Fatal("no audit entry")
	}
	got := es[0]
	got.ID = 0
	want := inventory.AuditEntry{At: f.clock.Now(), Actor: "otto", Source: "api 127.0.0.1", Action: "refresh", Target: "lab",
		Detail: "fetch the site repo and re-run the gate, rejected versions included", Result: "ok"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit entry (-want +got):\n%s", diff)
	}
}

func TestLogin(t *testing.T) {
	f := newFixture(t, nil)

	// A page without a session goes to the login page and back.
	b := f.browser()
	resp, _ := b.get("/machines?site=lab")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fmachines%3Fsite%3Dlab" {
		t.Fatalf("GET /machines without a session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A bad token is refused, and no session cookie is set.
	tok := b.formToken("/login")
	resp, body := b.post("/login", url.Values{"token": {"wrong-token-0123456789"}, "csrf": {tok}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `id="login-error"`) {
		t.Errorf("login with a bad token: %d\n%s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			t.Errorf("a bad token got a session cookie")
		}
	}
	if resp, _ := b.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after a refused login GET / = %d, want 303 to the login page", resp.StatusCode)
	}

	// A login form without its token is refused even with a good token.
	resp, _ = f.browser().post("/login", url.Values{"token": {operatorSecret}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form token: %d, want 403", resp.StatusCode)
	}

	// A good token logs in and returns to the page asked for.
	tok = b.formToken("/login")
	resp, _ = b.post("/login", url.Values{"token": {viewerSecret}, "csrf": {tok}, "next": {"/machines?site=lab"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/machines?site=lab" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := b.get("/machines"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /machines after login: %d", resp.StatusCode)
	}

	// Logout needs the session's CSRF token, then ends the session.
	if resp, _ := b.post("/logout", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d, want 403", resp.StatusCode)
	}
	resp, _ = b.post("/logout", url.Values{"csrf": {b.formToken("/")}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	if resp, _ := b.get("/machines"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /machines after logout: %d, want 303", resp.StatusCode)
	}
	var actions []string
	for _, e := range f.audit() {
		actions = append(actions, e.Actor+" "+e.Action)
	}
	if diff := cmp.Diff([]string{"vera logout", "vera login"}, actions); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

// TestSessionCookieFlags checks the session cookie over plain HTTP, over
// TLS and behind a TLS proxy (SecureCookies).
func TestSessionCookieFlags(t *testing.T) {
	for name, tt := range map[string]struct {
		tls, secureCookies, wantSecure bool
	}{
		"plain http":       {false, false, false},
		"tls":              {true, false, true},
		"behind tls proxy": {false, true, true},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, func(s *Server) { s.SecureCookies = tt.secureCookies })
			h, err := f.srv.Handler()
			if err != nil {
				t.Fatal(err)
			}
			get := httptest.NewRequest(http.MethodGet, "/login", nil)
			if tt.tls {
				get.TLS = &tls.ConnectionState{}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, get)
			var formCookie *http.Cookie
			for _, c := range rec.Result().Cookies() {
				if c.Name == loginCookie {
					formCookie = c
				}
			}
			if formCookie == nil {
				t.Fatal("the login page set no form cookie")
			}
			tok := csrfField.FindStringSubmatch(rec.Body.String())[1]
			post := httptest.NewRequest(http.MethodPost, "/login",
				strings.NewReader(url.Values{"token": {viewerSecret}, "csrf": {tok}}.Encode()))
			post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			post.AddCookie(formCookie)
			if tt.tls {
				post.TLS = &tls.ConnectionState{}
			}
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, post)
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("login: %d", rec.Code)
			}
			var sess *http.Cookie
			for _, c := range rec.Result().Cookies() {
				if c.Name == sessionCookie {
					sess = c
				}
			}
			if sess == nil {
				t.Fatal("no session cookie")
			}
			got := fmt.Sprintf("HttpOnly=%v SameSite=%v Secure=%v Path=%s", sess.HttpOnly, sess.SameSite, sess.Secure, sess.Path)
			want := fmt.Sprintf("HttpOnly=true SameSite=%v Secure=%v Path=/", http.SameSiteStrictMode, tt.wantSecure)
			if got != want {
				t.Errorf("session cookie: %s, want %s", got, want)
			}
			if !formCookie.HttpOnly || formCookie.SameSite != http.SameSiteStrictMode || formCookie.Secure != tt.wantSecure {
				t.Errorf("login form cookie flags: %+v", formCookie)
			}
		})
	}
}

// TestCSRF: a form post without the session's token, or with another's,
// is refused and changes nothing; with it, the change is made.
func TestCSRF(t *testing.T) {
	f := newFixture(t, nil)
	b := f.login(operatorSecret)
	other := f.login(operatorSecret)
	tok := b.formToken("/machines/lab/lab-w2")
	// The token with its first character changed ("x"+tok[1:] was the
	// token itself whenever it began with x: one run in 64).
	wrong := "x" + tok[1:]
	if tok[0] == 'x' {
		wrong = "y" + tok[1:]
	}
	tests := map[string]struct {
		form url.Values
		want int
	}{
		"no token":            {url.Values{}, http.StatusForbidden},
		"wrong token":         {url.Values{"csrf": {wrong}}, http.StatusForbidden},
		"other session's one": {url.Values{"csrf": {other.formToken("/")}}, http.StatusForbidden},
		"empty token":         {url.Values{"csrf": {""}}, http.StatusForbidden},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			resp, body := b.post("/machines/lab/lab-w2/rebuild", tt.form)
			if resp.StatusCode != tt.want || !strings.Contains(body, "CSRF token does not match") {
				t.Errorf("POST rebuild: %d, want %d\n%s", resp.StatusCode, tt.want, body)
			}
			if rbs, _ := f.rebuilds.MachineRebuilds(t.Context(), "52:54:00:99:00:22"); len(rbs) != 0 {
				t.Fatalf("a refused form started a rebuild: %+v", rbs)
			}
		})
	}
	// The same holds for the session's API calls: they need the header.
	req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/api/v1/sites/lab/refresh", nil)
	if resp, _ := b.do(req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("session API POST without X-CSRF-Token: %d, want 403", resp.StatusCode)
	}
	if len(f.sites.refreshCalls()) != 0 {
		t.Errorf("refused refresh ran")
	}
	req, _ = http.NewRequest(http.MethodPost, f.http.URL+"/api/v1/sites/lab/refresh", nil)
	req.Header.Set("X-CSRF-Token", tok)
	if resp, body := b.do(req); resp.StatusCode != http.StatusAccepted {
		t.Errorf("session API POST with X-CSRF-Token: %d %s", resp.StatusCode, body)
	}

	resp, _ := b.post("/machines/lab/lab-w2/rebuild", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/machines/lab/lab-w2?flash=rebuild" {
		t.Fatalf("POST rebuild with the token: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body := b.get(resp.Header.Get("Location"))
	for _, w := range []string{`id="flash"`, `class="rebuild" data-rebuild-id="1" data-state="requested"`, "otto"} {
		if !strings.Contains(body, w) {
			t.Errorf("machine page after the rebuild lacks %q", w)
		}
	}
	var results []string
	for _, e := range f.audit() {
		if e.Action == "rebuild" {
			results = append(results, e.Source[:2]+" "+e.Target+" "+strings.SplitN(e.Result, ":", 2)[0])
		}
	}
	want := []string{"ui lab/lab-w2 ok", "ui lab/lab-w2 denied", "ui lab/lab-w2 denied", "ui lab/lab-w2 denied", "ui lab/lab-w2 denied"}
	if diff := cmp.Diff(want, results); diff != "" {
		t.Errorf("audit of rebuilds (-want +got):\n%s", diff)
	}
}

func TestTokensNeverPrinted(t *testing.T) {
	tok := Token{Name: "alice", Role: RoleOperator, Secret: "s3cret-s3cret-s3cret"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "token", tok)
	b, _ := json.Marshal(tok)
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok), logged.String(), string(b),
		fmt.Sprint([]Token{tok})} {
		if strings.Contains(s, tok.Secret) {
			t.Errorf("%q shows the secret", s)
		}
	}
}

func TestHandlerChecksTokens(t *testing.T) {
	f := newFixture(t, nil)
	for name, tokens := range map[string][]Token{
		"short secret": {{Name: "a", Role: RoleViewer, Secret: "short"}},
		"no name":      {{Role: RoleViewer, Secret: viewerSecret}},
		"bad role":     {{Name: "a", Role: "admin", Secret: viewerSecret}},
		"same name":    {{Name: "a", Role: RoleViewer, Secret: viewerSecret}, {Name: "a", Role: RoleViewer, Secret: operatorSecret}},
		"same secret":  {{Name: "a", Role: RoleViewer, Secret: viewerSecret}, {Name: "b", Role: RoleOperator, Secret: viewerSecret}},
	} {
		s := *f.srv
		s.Tokens = tokens
		if _, err := s.Handler(); err == nil {
			t.Errorf("%s: Handler accepted %v", name, tokens)
		}
	}
}
