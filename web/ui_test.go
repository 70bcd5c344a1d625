package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// TestRepoStatusShown: a failed fetch says the server serves from its last
// copy, and no password of the repo URL shows.
func TestRepoStatusShown(t *testing.T) {
	f := newFixture(t, nil)
	last := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	f.sites.fetch = &sites.FetchStatus{
		URL: "https://deploy:hunter2hunter2@git.example/site-repo.git", LastAttempt: last.Add(20 * time.Minute), LastSuccess: last,
		Error: "fetch site repo https://deploy:hunter2hunter2@git.example/site-repo.git: connection refused",
	}
	b := f.login(viewerSecret)
	for _, p := range []string{"/", "/sites/lab"} {
		_, body := b.get(p)
		for _, w := range []string{"serving from the copy fetched at 2026-03-01 09:30:00 UTC", "https://git.example/site-repo.git",
			"connection refused"} {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q", p, w)
			}
		}
		if strings.Contains(body, "hunter2") {
			t.Errorf("GET %s shows the repo password", p)
		}
	}
	var lab SiteView
	f.getJSON("/api/v1/sites/lab", &lab)
	if lab.Repo.URL != "https://git.example/site-repo.git" || strings.Contains(lab.Repo.Error, "hunter2") || lab.Repo.LastSuccess == nil {
		t.Errorf("repo status: %+v", lab.Repo)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@host/x":                 "https://host/x",
		"ssh://git@host:22/x and http://a:b@c/d": "ssh://host:22/x and http://c/d",
		"10.99.0.1:6211":                         "10.99.0.1:6211",
		"/srv/site-repo":                         "/srv/site-repo",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionExpires(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.SessionTTL = time.Hour })
	b := f.login(viewerSecret)
	if resp, _ := b.get("/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / after login: %d", resp.StatusCode)
	}
	f.clock.Advance(time.Hour)
	if resp, _ := b.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET / after the session's TTL: %d, want 303 to the login page", resp.StatusCode)
	}
}

// TestUIChanges drives the refresh and rollout forms as an operator would.
func TestUIChanges(t *testing.T) {
	f := newFixture(t, nil)
	b := f.login(operatorSecret)
	tok := b.formToken("/sites/lab")
	resp, _ := b.post("/sites/lab/refresh", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/sites/lab?flash=refresh" {
		t.Fatalf("refresh form: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := b.get("/sites/lab?flash=refresh"); !strings.Contains(body, "Refresh of the site repo requested") {
		t.Errorf("site page does not confirm the refresh")
	}
	if got := f.sites.refreshCalls(); len(got) != 1 || !got[0] {
		t.Errorf("refresh calls %v, want one retrying rejected versions", got)
	}
	for _, action := range []string{"start", "confirm", "pause"} {
		resp, _ := b.post("/sites/lab/rollout/"+action, url.Values{"csrf": {tok}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/sites/lab/rollout?flash=rollout-"+action {
			t.Errorf("rollout %s form: %d to %q", action, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// A refused action explains itself on an error page.
	resp, body := b.post("/sites/lab/rollout/confirm", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "cannot confirm the rollout of lab: it is paused") {
		t.Errorf("confirming a paused rollout: %d\n%s", resp.StatusCode, body)
	}
	_, body = b.get("/sites/lab/rollout?flash=rollout-pause")
	for _, w := range []string{"Rollout paused", `id="rollout-state"`, "paused", `id="rollout-resume"`} {
		if !strings.Contains(body, w) {
			t.Errorf("rollout page lacks %q", w)
		}
	}
	if strings.Contains(body, `id="rollout-confirm"`) || strings.Contains(body, `id="rollout-start"`) {
		t.Errorf("a paused rollout's page offers confirm or start")
	}
	// A flash key that is not ours shows nothing.
	if _, body := b.get("/sites/lab?flash=%3Cscript%3E"); strings.Contains(body, `id="flash"`) {
		t.Errorf("an unknown flash key was shown")
	}
	_, audit := b.get("/audit")
	for _, w := range []string{"rollout-start", "rollout-confirm", "rollout-pause", "refresh", "failed: cannot confirm", "ui 127.0.0.1"} {
		if !strings.Contains(audit, w) {
			t.Errorf("audit page lacks %q", w)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	f := newFixture(t, nil)
	for p, want := range map[string]string{"/static/style.css": "text/css", "/static/live.js": "javascript"} {
		resp, body := f.browser().get(p)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), want) || len(body) < 100 {
			t.Errorf("GET %s: %d %q", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}
