package pxe

import (
	"bytes"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/testvm/testkit"
)

// A whole boot as a machine makes it, with curl: boot.ipxe, the machine's
// script, the kernel and initrd by the digest URLs of the script, the config
// with the script's token, and the booted callback.
func TestHTTPBootFlow(t *testing.T) {
	e := newBootEnv(t)
	script := e.scriptFor(t, macA)
	if diff := cmp.Diff(Hints{
		UUID: "8d3f0a4e-1b2c-4d5e-8f90-0123456789ab", Serial: "SN 123&x", Arch: "x86_64", Platform: "pcbios",
		IP: netip.MustParseAddr("127.0.0.1"),
	}, e.targets.hintsOf(macA), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("hints passed on (-want +got):\n%s", diff)
	}
	u := parseScript(t, script)

	for name, want := range map[string][]byte{u.kernel: e.kernel, u.initrd: e.initrd} {
		r := curl(t, name)
		if r.status != 200 || testkit.SHA256Hex(r.body) != testkit.SHA256Hex(want) {
			t.Fatalf("GET %s: %d, sha256 %s, want 200 and %s", name, r.status, testkit.SHA256Hex(r.body), testkit.SHA256Hex(want))
		}
		checkHeaders(t, r, map[string]string{
			"Cache-Control":  "public, max-age=31536000, immutable",
			"Etag":           `"` + testkit.SHA256Hex(want) + `"`,
			"Content-Length": strconv.Itoa(len(want)),
		})
	}
	r := curl(t, u.kernel, "-r", "1000-1999")
	if r.status != 206 || !bytes.Equal(r.body, e.kernel[1000:2000]) {
		t.Fatalf("range request: %d, %d bytes", r.status, len(r.body))
	}
	checkHeaders(t, r, map[string]string{"Content-Range": "bytes 1000-1999/" + strconv.Itoa(len(e.kernel)), "Content-Length": "1000"})
	if r := curl(t, u.kernel, "-H", `If-None-Match: "`+testkit.SHA256Hex(e.kernel)+`"`); r.status != 304 {
		t.Errorf("conditional request: %d, want 304", r.status)
	}

	r = curl(t, u.ignition)
	if r.status != 200 || string(r.body) != configA {
		t.Fatalf("ignition: %d\n%s", r.status, r.body)
	}
	checkHeaders(t, r, map[string]string{"Content-Type": "application/vnd.coreos.ignition+json", "Cache-Control": "no-store"})

	body := `{"digest":"` + testkit.SHA256Hex([]byte("written")) + `","files":{"/etc/hostname":"` + testkit.SHA256Hex([]byte("a\n")) + `"},"hostname":"a"}`
	if r := curl(t, u.booted, "-X", "POST", "-A", "undercloud-report/1 (booted)", "-H", "Content-Type: application/json", "--data-binary", body); r.status != 204 {
		t.Fatalf("booted: %d\n%s", r.status, r.body)
	}
	// The config carries the boot's URLs: the booted one with the script's
	// token, the heartbeat one with a credential of its own.
	req := e.configs.last(t)
	if req.BootedURL != u.booted || req.MAC != macA || req.Version != version1 || req.BootID == "" {
		t.Errorf("config request %+v, want booted URL %s", req, u.booted)
	}
	if r := curl(t, req.HeartbeatURL, "-X", "POST", "-A", "undercloud-report/1 (heartbeat)"); r.status != 204 {
		t.Fatalf("heartbeat: %d\n%s", r.status, r.body)
	}
	// Neither credential passes for the other.
	hbToken := req.HeartbeatURL[strings.LastIndex(req.HeartbeatURL, "=")+1:]
	if r := curl(t, strings.Replace(u.booted, "/booted?", "/heartbeat?", 1), "-X", "POST"); r.status != 403 {
		t.Errorf("heartbeat with the boot token: %d, want 403", r.status)
	}
	if r := curl(t, withToken(t, u.booted, hbToken), "-X", "POST"); r.status != 403 {
		t.Errorf("booted with the heartbeat credential: %d, want 403", r.status)
	}
	if r := curl(t, withToken(t, u.ignition, hbToken)); r.status != 403 {
		t.Errorf("ignition with the heartbeat credential: %d, want 403", r.status)
	}

	// Every step is an event; the boot id minted with the script joins them.
	scriptEv := e.events.wait(t, func(ev Event) bool { return ev.Kind == event.IPXEScript })
	if scriptEv.BootID == "" || scriptEv.Detail != "provision" || scriptEv.Version != version1 || scriptEv.Machine != "a" {
		t.Fatalf("script event = %+v", scriptEv)
	}
	for _, kind := range []event.Kind{event.Ignition, event.Booted, event.Heartbeat} {
		ev := e.events.wait(t, func(ev Event) bool { return ev.Kind == kind })
		if ev.BootID != scriptEv.BootID || ev.MAC != macA || ev.Version != version1 || ev.Error != "" || !ev.IP.IsLoopback() {
			t.Errorf("%s event = %+v, want boot %s", kind, ev, scriptEv.BootID)
		}
	}
	art := e.events.wait(t, func(ev Event) bool { return ev.Kind == event.Artifact && ev.Bytes == 1000 })
	if art.MAC != macA || art.File != testkit.SHA256Hex(e.kernel) {
		t.Errorf("artifact event = %+v", art)
	}
	e.events.wait(t, func(ev Event) bool { return ev.Kind == event.IPXEChain })

	e.callbacks.mu.Lock()
	got := e.callbacks.booted
	e.callbacks.mu.Unlock()
	want := []BootReport{{
		MAC: macA, Version: version1, BootID: scriptEv.BootID, IP: netip.MustParseAddr("127.0.0.1"),
		Digest: testkit.SHA256Hex([]byte("written")), Files: map[string]string{"/etc/hostname": testkit.SHA256Hex([]byte("a\n"))}, Hostname: "a",
		Agent: "undercloud-report/1 (booted)",
	}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b time.Time) bool { return true })); diff != "" {
		t.Errorf("booted reports (-want +got):\n%s", diff)
	}
	for key, n := range map[string]int{"boot.ipxe 200": 1, "ipxe 200": 1, "images 200": 2, "images 206": 1, "images 304": 1, "ignition 200": 1, "booted 204": 1, "heartbeat 204": 1} {
		if got := e.metrics.httpCount(key); got != n {
			t.Errorf("metrics %q = %d, want %d", key, got, n)
		}
	}
	token := mustQuery(t, u.ignition).Get("token")
	if logs := e.logs.String(); strings.Contains(logs, token) || strings.Contains(logs, "secret-config-marker") {
		t.Errorf("logs show the token or the config:\n%s", logs)
	}
}

func checkHeaders(t *testing.T, r response, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// The config and the callbacks are served only with a token minted for
// exactly that machine and version, and not after it expired.
func TestHTTPTokenChecks(t *testing.T) {
	e := newBootEnv(t)
	ign := parseScript(t, e.scriptFor(t, macA)).ignition
	q := mustQuery(t, ign)
	token := q.Get("token")
	with := func(path, mac, version, token string) string {
		v := url.Values{"mac": {mac}, "version": {version}, "token": {token}}
		return e.srv.URL + path + "?" + v.Encode()
	}
	// Mint for B at another version, to show a valid token of B fails for A.
	otherB, _ := e.h.Tokens.Mint(macB, version1, "other")

	if r := curl(t, ign); r.status != 200 { // the check below can fail
		t.Fatalf("A's own URL: %d", r.status)
	}
	tests := map[string]struct {
		url, method, mac string
	}{
		"A's token, B's MAC":         {with("/ignition", macB, version1, token), "GET", macB},
		"B's token, A's MAC":         {with("/ignition", macA, version1, otherB), "GET", macA},
		"A's token, other version":   {with("/ignition", macA, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", token), "GET", macA},
		"garbage token":              {with("/ignition", macA, version1, "garbage"), "GET", macA},
		"no token":                   {e.srv.URL + "/ignition?mac=" + macA + "&version=" + version1, "GET", macA},
		"MAC spelt differently":      {with("/ignition", strings.ToUpper(macB), version1, token), "GET", macB},
		"bad MAC":                    {with("/ignition", "not-a-mac", version1, token), "GET", "not-a-mac"},
		"booted, A's token, B's MAC": {with("/booted", macB, version1, token), "POST", macB},
		"heartbeat, garbage token":   {with("/heartbeat", macA, version1, "x"), "POST", macA},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := len(e.logs.String())
			r := curl(t, tc.url, "-X", tc.method)
			if r.status != 403 || len(r.body) != 0 {
				t.Fatalf("%d with %d body bytes, want 403 and none", r.status, len(r.body))
			}
			logs := e.logs.String()[before:]
			if !strings.Contains(logs, `"level":"WARN"`) || !strings.Contains(logs, `"mac":"`+tc.mac+`"`) || !strings.Contains(logs, `"ip":"127.0.0.1"`) {
				t.Errorf("no warning naming %s and the client:\n%s", tc.mac, logs)
			}
		})
	}
	e.clock.Advance(DefaultTokenTTL + time.Minute)
	if r := curl(t, ign); r.status != 403 {
		t.Errorf("expired token: %d, want 403", r.status)
	}
	denied := e.events.wait(t, func(ev Event) bool { return ev.Kind == event.IgnitionDenied && ev.Error == ErrTokenExpired.Error() })
	if denied.MAC != macA || denied.BootID == "" || !denied.IP.IsLoopback() {
		t.Errorf("denied event = %+v", denied)
	}
	e.events.wait(t, func(ev Event) bool { return ev.Kind == event.CallbackDenied && ev.File == "booted" && ev.MAC == macB })
	logs := e.logs.String()
	if strings.Contains(logs, token) || strings.Contains(logs, otherB) {
		t.Errorf("logs show a token:\n%s", logs)
	}
}

// What each kind of machine is told to do, through the real endpoint.
func TestHTTPScriptKinds(t *testing.T) {
	e := newBootEnv(t)
	if s := e.scriptFor(t, macInst); !strings.Contains(s, "sanboot --no-describe --drive 0x80 || exit") || strings.Contains(s, "token=") {
		t.Errorf("installed machine got:\n%s", s)
	}
	e.targets.mu.Lock()
	inst := e.targets.m[macInst]
	inst.RebuildPending = true
	e.targets.m[macInst] = inst
	e.targets.mu.Unlock()
	parseScript(t, e.scriptFor(t, macInst)) // full provisioning script
	if s := e.scriptFor(t, "52:54:00:99:99:99"); !strings.Contains(s, "\nexit\n") || strings.Contains(s, "kernel") {
		t.Errorf("unknown machine got:\n%s", s)
	}
	for _, bad := range []string{"", "zz:zz", "52:54:00:00:00:0a:00:00"} {
		if r := curl(t, e.srv.URL+"/ipxe?mac="+url.QueryEscape(bad)); r.status != 400 || len(r.body) != 0 {
			t.Errorf("mac %q: %d %q, want a bare 400", bad, r.status, r.body)
		}
	}
}

func TestHTTPArtifactsAndFirmware(t *testing.T) {
	e := newBootEnv(t)
	fw := testkit.ReadFile(t, needIPXE(t, "undionly.kpxe"))
	if r := curl(t, e.srv.URL+"/firmware/undionly.kpxe"); r.status != 200 || !bytes.Equal(r.body, fw) {
		t.Errorf("firmware: %d, %d bytes, want %d", r.status, len(r.body), len(fw))
	}
	for _, path := range []string{
		"/images/sha256/" + testkit.SHA256Hex([]byte("absent")),
		"/images/sha256/" + strings.ToUpper(testkit.SHA256Hex(e.kernel)),
		"/images/sha256/nothex",
		"/images/sha256/..%2F..%2Fetc%2Fpasswd",
		"/firmware/ipxe.lkrn",
		"/firmware/..%2F..%2Fetc%2Fpasswd",
		"/firmware/%2Fetc%2Fpasswd",
		"/firmware/undionly.kpxe%00",
	} {
		if r := curl(t, e.srv.URL+path); r.status != 404 || bytes.Contains(r.body, []byte("root:")) {
			t.Errorf("GET %s: %d, want 404", path, r.status)
		}
	}
	// With -I, curl writes the headers where the body would go.
	r := curl(t, e.srv.URL+"/images/sha256/"+testkit.SHA256Hex(e.kernel), "-I")
	if r.status != 200 || r.header.Get("Content-Length") != strconv.Itoa(len(e.kernel)) {
		t.Errorf("HEAD: %d, Content-Length %q", r.status, r.header.Get("Content-Length"))
	}
}

func TestHTTPCallbackBody(t *testing.T) {
	e := newBootEnv(t)
	booted := parseScript(t, e.scriptFor(t, macA)).booted
	tests := map[string]struct {
		body string
		want int
	}{
		"empty":          {"", 204},
		"only hostname":  {`{"hostname":"a"}`, 204},
		"unknown fields": {`{"hostname":"a","uptime":3}`, 204},
		"not JSON":       {"hello", 400},
		"bad digest":     {`{"digest":"xyz"}`, 400},
		"bad file sum":   {`{"files":{"/etc/x":"nope"}}`, 400},
		"bad hostname":   {`{"hostname":"a b\n"}`, 400},
		"too large":      {`{"hostname":"` + strings.Repeat("a", 70<<10) + `"}`, 413},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if r := curl(t, booted, "-X", "POST", "--data-binary", tc.body); r.status != tc.want {
				t.Errorf("%d, want %d", r.status, tc.want)
			}
		})
	}
}

// A configuration that cannot work is refused at start-up.
func TestHTTPHandlerChecks(t *testing.T) {
	e := newBootEnv(t)
	for name, mod := range map[string]func(h *HTTP){
		"no targets":    func(h *HTTP) { h.Targets = nil },
		"no configs":    func(h *HTTP) { h.Configs = nil },
		"no artifacts":  func(h *HTTP) { h.Artifacts = nil },
		"no tokens":     func(h *HTTP) { h.Tokens = nil },
		"no sources":    func(h *HTTP) { h.Sources = nil },
		"short key":     func(h *HTTP) { h.Tokens = &Tokens{Key: []byte("short")} },
		"bad base URL":  func(h *HTTP) { h.BaseURL = "10.0.0.1:8080" },
		"bad allowlist": func(h *HTTP) { h.Firmware.Names = []string{"../x"} },
	} {
		h := *e.h
		mod(&h)
		if _, err := h.Handler(); err == nil {
			t.Errorf("%s: Handler accepted it", name)
		}
	}
}

// withToken returns raw with its token query parameter replaced.
func withToken(t *testing.T, raw, token string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	return u.String()
}
