package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestPagesRender loads every page as a logged-in viewer and looks for the
// content an operator comes for, and the ids the browser tests rely on.
func TestPagesRender(t *testing.T) {
	f := newFixture(t, nil)
	b := f.login(viewerSecret)
	v1, v2 := f.versions["v1"], f.versions["v2"]
	tests := map[string]struct {
		path string
		want []string
	}{
		"overview": {"/", []string{
			`id="sites"`, `href="/sites/lab"`, `">v2 (` + short(v2) + `)</b>`, "v3-broken (", ") rejected: 1 problem(s)",
			`href="/machines?site=lab&amp;outdated=true">`, "Booting now", `data-mac="` + string(macW1) + `"`,
			`id="events"`, "ipxe-script", `data-live="on"`, `<noscript><meta http-equiv="refresh"`,
			"v9.9.9-test", `id="user">vera<`,
		}},
		"site": {"/sites/lab", []string{
			`id="active-version"`, `">v2 (` + short(v2) + `)</b>`, "lab: new motd", "Site Ops",
			`id="pending-version"`, "v3-broken", "rejected, the active version keeps serving",
			`id="rejection-reasons"`, "sites/lab/site.yaml:machines: 2 masters: etcd needs an odd number",
			`class="version version-superseded"`, `class="version version-rejected"`, `class="version version-active"`,
			"fetched at 2026-", "Operators can refresh",
		}},
		"machines": {"/machines", []string{
			`id="machines"`, `data-mac="` + string(macM1) + `"`, `data-mac="` + string(macW1) + `"`,
			`data-mac="` + string(macUnknown) + `"`, "10.99.0.11", "v1 (" + short(v1) + ")", "→ v2 (" + short(v2) + ")",
			`<time class="age"`, "booted", `id="machine-filters"`,
		}},
		"machines filtered": {"/machines?site=lab&role=worker&state=booting", []string{
			`data-mac="` + string(macW1) + `"`, "<option selected>worker</option>", "<option selected>booting</option>",
		}},
		"machines outdated by tag": {"/machines?outdated=true&version=v1", []string{
			`data-mac="` + string(macM1) + `"`, `value="v1"`, `name="outdated" value="true" checked`,
		}},
		"machine": {"/machines/lab/lab-m1", []string{
			`id="machine-state" class="state state-provisioned" data-mac="` + string(macM1) + `">provisioned</span>`,
			`id="machine-spec"`, "master", "10.99.0.11", "ipmi <code>10.99.0.1:6211</code>",
			`id="machine-lease"`, "bound", `id="rebuilds"`, "Never rebuilt by this server",
			`id="boots"`, "10 step(s), boot boot-m1", "dhcp-discover", "ignition", "kind-booted",
			"9.0s", `class="num">1.0s</td>`, "on v1 (" + short(v1) + ")",
		}},
		"machine booting": {"/machines/lab/lab-w1", []string{
			`id="machine-state" class="state state-booting"`, "no booted callback",
		}},
		"discovered machine by MAC": {"/machines/lab/" + url.PathEscape(string(macUnknown)), []string{
			`id="machine-state" class="state state-booting"`, "No site config declares this machine",
		}},
		"rollouts": {"/rollouts", []string{`id="rollouts"`, `href="/sites/lab/rollout"`, "none yet"}},
		"rollout":  {"/sites/lab/rollout", []string{"This site never had a rollout", "3 of 4 machine(s) outdated"}},
		"discovered": {"/discovered", []string{
			`id="discovered"`, string(macUnknown), "PXEClient:Arch:00007:UNDI:003016",
			"  - name: lab-990099\n    mac: &#34;52:54:00:99:00:99&#34;\n    role: worker\n    ip: 10.99.0.2  # free", "x86-64 UEFI (7)",
			`name="mac" value="52:54:00:99:00:99"`, `id="show-patch"`,
		}},
		"query form": {"/query", []string{`id="query-form"`, `id="examples"`, "Machines on an old version", "/query?sql=SELECT"}},
		"audit":      {"/audit", []string{`id="audit"`, "vera", "login", "ui 127.0.0.1"}},
		"openapi":    {"/api/openapi.json", []string{`"openapi": "3.0.3"`}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			resp, body := b.get(tt.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d\n%s", tt.path, resp.StatusCode, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s: no %q in\n%s", tt.path, w, body)
				}
			}
			for _, secret := range []string{viewerSecret, operatorSecret, "lab-bmc"} {
				if strings.Contains(body, secret) {
					t.Errorf("GET %s shows a secret or a credential name: %q", tt.path, secret)
				}
			}
		})
	}
}

func TestLoginPageIDs(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := f.browser().get("/login?next=/machines")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /login: %d", resp.StatusCode)
	}
	for _, w := range []string{`id="login-form"`, `id="token"`, `type="password"`, `id="login-submit"`,
		`name="next" value="/machines"`, "a restart of the server logs everybody out"} {
		if !strings.Contains(body, w) {
			t.Errorf("login page lacks %q", w)
		}
	}
}

func TestOperatorSeesButtons(t *testing.T) {
	f := newFixture(t, nil)
	b := f.login(operatorSecret)
	for path, want := range map[string][]string{
		"/machines/lab/lab-m1": {`id="rebuild-form"`, `id="rebuild"`},
		"/sites/lab":           {`id="refresh"`},
		"/sites/lab/rollout":   {`id="rollout-start"`},
	} {
		_, body := b.get(path)
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s as operator: no %q", path, w)
			}
		}
	}
	// A viewer sees none of them.
	v := f.login(viewerSecret)
	for _, path := range []string{"/machines/lab/lab-m1", "/sites/lab", "/sites/lab/rollout"} {
		_, body := v.get(path)
		for _, w := range []string{`id="rebuild"`, `id="refresh"`, `id="rollout-start"`} {
			if strings.Contains(body, w) {
				t.Errorf("GET %s as viewer shows %q", path, w)
			}
		}
	}
}

func TestErrorPages(t *testing.T) {
	f := newFixture(t, nil)
	b := f.login(viewerSecret)
	for path, want := range map[string]struct {
		code int
		msg  string
	}{
		"/machines/lab/nope":       {http.StatusNotFound, `no machine &#34;nope&#34; in site &#34;lab&#34;`},
		"/sites/atlantis":          {http.StatusNotFound, `this server serves no site &#34;atlantis&#34;`},
		"/machines?state=sleeping": {http.StatusBadRequest, "state=&#34;sleeping&#34;: want one of discovered, nothing-to-boot, known, booting, provisioned, failed"},
		"/no/such/page":            {http.StatusNotFound, "not found"},
	} {
		resp, body := b.get(path)
		if resp.StatusCode != want.code || !strings.Contains(body, want.msg) || !strings.Contains(body, `id="error-message"`) {
			t.Errorf("GET %s: %d, want %d with %q in\n%s", path, resp.StatusCode, want.code, want.msg, body)
		}
	}
}
