package provision

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/images"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm/testkit"
)

func TestHeartbeatAccepted(t *testing.T) {
	tests := map[string]struct {
		version, bootID, assigned, booted, served string
		want                                      bool
	}{
		"the running boot":                     {"v1", "b1", "v1", "b1", "b1", true},
		"a later boot reported booted":         {"v1", "b1", "v1", "b2", "b2", false},
		"a later boot is served its config":    {"v1", "b1", "v1", "b1", "b2", true},
		"served, not reported booted yet":      {"v1", "b2", "v1", "b1", "b2", true},
		"a rebuild assigned another":           {"v1", "b1", "v2", "b1", "b1", false},
		"neither served nor booted":            {"v1", "b1", "v1", "", "", false},
		"a rebuild back to the same commit":    {"v1", "b1", "v1", "b3", "b3", false},
		"the disk boots after an install (b1)": {"v1", "b1", "v1", "b1", "b1", true},
		"no boot id":                           {"v1", "", "v1", "", "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := heartbeatAccepted(tc.version, tc.bootID, tc.assigned, tc.booted, tc.served); got != tc.want {
				t.Errorf("heartbeatAccepted = %v, want %v", got, tc.want)
			}
		})
	}
}

// node is a pxe server over a core, and lab-w1 booting from its lease.
type node struct {
	c      *core
	srv    *httptest.Server
	tokens *pxe.Tokens
	clk    *testkit.Clock
	client *http.Client
	mac    string
}

var heartbeatKey = []byte("test key of thirty-two bytes....")

func newNode(t *testing.T) *node {
	c := newCore(t)
	c.activate(c.v1)
	own := netip.MustParseAddr("127.0.0.31")
	if _, err := c.db.Bind(c.ctx, inventory.LeaseRequest{MAC: c.mac("lab-w1"), IP: own, Site: "lab"}); err != nil {
		t.Fatal(err)
	}
	n := &node{c: c, clk: testkit.New(time.Now()), mac: string(c.mac("lab-w1"))}
	n.serve(t)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: own.AsSlice()}, Timeout: 5 * time.Second}
	n.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	return n
}

// serve (re)starts the machine-facing server over c.svc with the same key.
func (n *node) serve(t *testing.T) {
	if n.srv != nil {
		n.srv.Close()
	}
	n.tokens = &pxe.Tokens{Key: heartbeatKey, Now: n.clk.Now}
	h := &pxe.HTTP{Targets: n.c.svc, Configs: n.c.svc, Sources: n.c.svc, Callbacks: n.c.svc, Recorder: n.c.svc,
		Artifacts: &images.Store{Dir: t.TempDir()}, Tokens: n.tokens}
	handler, err := h.Handler()
	if err != nil {
		t.Fatal(err)
	}
	n.srv = httptest.NewServer(handler)
	t.Cleanup(n.srv.Close)
}

func (n *node) do(t *testing.T, method, u, agent, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if agent != "" {
		req.Header.Set("User-Agent", agent)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// boot is one boot as lab-w1's firmware and OS make it: its script, its
// config, and the booted report as undercloud-booted.service sends it.
type boot struct {
	ignitionURL string
	config      string
	env         map[string]string // report.env
}

func (n *node) boot(t *testing.T) boot {
	t.Helper()
	b := n.serveOnly(t)
	if code, _ := n.do(t, "POST", b.env["UNDERCLOUD_BOOTED_URL"], ignition.ReportAgent+" (booted)", `{"hostname":"lab-w1"}`); code != 204 {
		t.Fatalf("booted: %d", code)
	}
	return b
}

// serveOnly is a boot up to its config: the OS has not reported booted.
func (n *node) serveOnly(t *testing.T) boot {
	t.Helper()
	code, script := n.do(t, "GET", n.srv.URL+"/ipxe?mac="+n.mac, "", "")
	if code != 200 {
		t.Fatalf("script: %d", code)
	}
	var b boot
	for _, f := range strings.Fields(script) {
		if v, ok := strings.CutPrefix(f, pxe.DefaultIgnitionArg+"="); ok {
			b.ignitionURL = v
		}
	}
	code, b.config = n.do(t, "GET", b.ignitionURL, "", "")
	if code != 200 {
		t.Fatalf("config: %d", code)
	}
	b.env = reportEnv(t, b.config)
	return b
}

// here points u, a URL a config carries, at the server now running: a
// restarted one listens elsewhere.
func (n *node) here(t *testing.T, u string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := url.Parse(n.srv.URL)
	parsed.Scheme, parsed.Host = srv.Scheme, srv.Host
	return parsed.String()
}

func (n *node) heartbeat(t *testing.T, u string) int {
	t.Helper()
	code, _ := n.do(t, "POST", u, ignition.ReportAgent+" (heartbeat)", "")
	return code
}

// reportEnv reads the per-boot file of a served config.
func reportEnv(t *testing.T, config string) map[string]string {
	t.Helper()
	var c struct {
		Storage struct {
			Files []struct {
				Path     string
				Contents struct{ Source string }
			}
		}
	}
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		t.Fatal(err)
	}
	for _, f := range c.Storage.Files {
		if f.Path != ignition.ReportEnvPath {
			continue
		}
		s, err := url.PathUnescape(strings.TrimPrefix(f.Contents.Source, "data:,"))
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for _, l := range strings.Split(s, "\n") {
			if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
				env[k] = v
			}
		}
		return env
	}
	t.Fatalf("served config has no %s", ignition.ReportEnvPath)
	return nil
}

func TestHeartbeatCredential(t *testing.T) {
	n := newNode(t)
	b1 := n.boot(t)
	hb1 := b1.env["UNDERCLOUD_HEARTBEAT_URL"]
	if code := n.heartbeat(t, hb1); code != 204 {
		t.Fatalf("heartbeat of the running boot: %d", code)
	}

	// The booted event says the unit sent it.
	if err := n.c.db.Flush(n.c.ctx); err != nil { // answered once durable, stored after
		t.Fatal(err)
	}
	ev, err := n.c.db.LastEvent(n.c.ctx, sites.MAC(n.mac), event.Booted)
	if err != nil {
		t.Fatal(err)
	}
	var detail struct{ Agent string }
	if json.Unmarshal([]byte(ev.Detail), &detail) != nil || detail.Agent != ignition.ReportAgent+" (booted)" {
		t.Errorf("booted event detail %s, want agent %q", ev.Detail, ignition.ReportAgent+" (booted)")
	}

	n.clk.Advance(pxe.DefaultTokenTTL + time.Hour)
	if code := n.heartbeat(t, hb1); code != 204 {
		t.Errorf("heartbeat after the boot token expired: %d, want 204", code)
	}
	if code, _ := n.do(t, "GET", b1.ignitionURL, "", ""); code != 403 {
		t.Errorf("config with the expired boot token: %d, want 403", code)
	}

	// Another MAC: the credential is bound to lab-w1's.
	other := strings.Replace(hb1, "mac="+n.mac, "mac="+string(n.c.mac("lab-w2")), 1)
	if code := n.heartbeat(t, other); code != 403 {
		t.Errorf("lab-w1's credential for lab-w2: %d, want 403", code)
	}

	// A server restart: a new Service over the same inventory and key.
	n.c.restart()
	n.c.activate(n.c.v1)
	n.serve(t)
	hb1 = n.here(t, hb1)
	if code := n.heartbeat(t, hb1); code != 204 {
		t.Errorf("heartbeat after a server restart: %d, want 204", code)
	}

	// A newer boot revokes it, and its own credential works.
	b2 := n.boot(t)
	if code := n.heartbeat(t, hb1); code != 403 {
		t.Errorf("heartbeat of the replaced boot: %d, want 403", code)
	}
	if code := n.heartbeat(t, b2.env["UNDERCLOUD_HEARTBEAT_URL"]); code != 204 {
		t.Errorf("heartbeat of the new boot: %d, want 204", code)
	}
	// ...also after the next restart, from the inventory alone.
	n.c.restart()
	n.c.activate(n.c.v1)
	if code := n.heartbeat(t, hb1); code != 403 {
		t.Errorf("heartbeat of the replaced boot after a restart: %d, want 403", code)
	}

	// A boot's timer may fire before its booted report is stored: its
	// config was served, so it speaks (issue 14's refused first heartbeat),
	// and so does the boot before it until the new one reports booted.
	n.serve(t)
	hb2 := n.here(t, b2.env["UNDERCLOUD_HEARTBEAT_URL"])
	b3 := n.serveOnly(t)
	hb3 := b3.env["UNDERCLOUD_HEARTBEAT_URL"]
	if code := n.heartbeat(t, hb3); code != 204 {
		t.Errorf("heartbeat of a boot served its config, before its booted report: %d, want 204", code)
	}
	if code := n.heartbeat(t, hb2); code != 204 {
		t.Errorf("heartbeat of the booted boot while the next one boots: %d, want 204", code)
	}
	// ...and after a restart, from the inventory's ignition event.
	if err := n.c.db.Flush(n.c.ctx); err != nil {
		t.Fatal(err)
	}
	n.c.restart()
	n.c.activate(n.c.v1)
	n.serve(t)
	hb3 = n.here(t, hb3)
	if code := n.heartbeat(t, hb3); code != 204 {
		t.Errorf("heartbeat of the served boot after a restart: %d, want 204", code)
	}
}

// `undercloud render` shows what /ignition serves: the same provision
// path, with placeholders where the boot's credentials go.
func TestRenderEqualsServed(t *testing.T) {
	n := newNode(t)
	b := n.boot(t)
	v1 := n.c.v1.Version.Commit
	rel := n.c.v1
	m := rel.Site.MachineByMAC(sites.MAC(n.mac))
	rendered, err := ServedConfig(ignition.Input{Release: rel, Machine: m, Bootstrapped: false}, pxe.PlaceholderRequest(n.srv.URL, n.mac, v1))
	if err != nil {
		t.Fatal(err)
	}
	token := func(u string) string { return u[strings.LastIndex(u, "=")+1:] }
	served := strings.NewReplacer(
		url.PathEscape(token(b.env["UNDERCLOUD_BOOTED_URL"])), url.PathEscape(pxe.PlaceholderToken),
		url.PathEscape(token(b.env["UNDERCLOUD_HEARTBEAT_URL"])), url.PathEscape(pxe.PlaceholderHeartbeat),
		url.PathEscape(b.env["UNDERCLOUD_BOOT_ID"]), url.PathEscape(pxe.PlaceholderBootID),
	).Replace(b.config)
	if diff := cmp.Diff(string(rendered), served); diff != "" {
		t.Errorf("render and /ignition differ beyond the credentials (-render +served):\n%s", diff)
	}
}
