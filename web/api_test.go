package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

func TestAPISites(t *testing.T) {
	f := newFixture(t, nil)
	var all struct{ Sites []SiteView }
	f.getJSON("/api/v1/sites", &all)
	type summary struct {
		Name, Binding, Active, Pending string
		Problems                       int
		Machines                       map[string]int
		Total, Outdated                int
		Bootstrapped                   bool
		RepoURL                        string
		Versions                       int
	}
	sum := func(v SiteView) summary {
		s := summary{Name: v.Name, Binding: v.Binding, Problems: len(v.Problems), Machines: v.Machines, Total: v.Total,
			Outdated: v.Outdated, Bootstrapped: v.Bootstrapped, RepoURL: v.Repo.URL, Versions: len(v.Versions)}
		if v.Active != nil {
			s.Active = v.Active.Label + " " + v.Active.Status
		}
		if v.Pending != nil {
			s.Pending = v.Pending.Label + " " + v.Pending.Status
		}
		return s
	}
	var got []summary
	for _, v := range all.Sites {
		got = append(got, sum(v))
	}
	want := []summary{
		{Name: "lab", Binding: "v3-broken", Active: "v2 active", Pending: "v3-broken rejected", Problems: 1,
			Machines: map[string]int{"discovered": 0, "nothing-to-boot": 0, "known": 1, "booting": 2, "provisioned": 1, "failed": 0},
			Total:    4, Outdated: 3, RepoURL: f.repo.Dir},
		{Name: "second", Binding: "v1", Active: "v1 active",
			Machines: map[string]int{"discovered": 0, "nothing-to-boot": 0, "known": 2, "booting": 0, "provisioned": 0, "failed": 0},
			Total:    2, Outdated: 2, RepoURL: f.repo.Dir},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /api/v1/sites (-want +got):\n%s", diff)
	}

	var lab SiteView
	f.getJSON("/api/v1/sites/lab", &lab)
	var history []string
	for _, v := range lab.Versions {
		history = append(history, v.Label+" "+v.Status+" "+strings.Join(v.Reasons, "; "))
	}
	wantHistory := []string{
		"v3-broken rejected sites/lab/site.yaml:machines: 2 masters: etcd needs an odd number of masters to keep quorum (line 27)",
		"v2 active ", "v1 superseded ",
	}
	if diff := cmp.Diff(wantHistory, history, cmp.Comparer(func(a, b string) bool {
		return strings.HasPrefix(a, b[:min(len(b), 60)]) || strings.HasPrefix(b, a[:min(len(a), 60)])
	})); diff != "" {
		t.Errorf("lab's history (-want +got):\n%s", diff)
	}
	if lab.Active.Commit != f.versions["v2"] || lab.Active.Message != "lab: new motd" || lab.Active.Author != "Site Ops" ||
		lab.Active.Time == nil {
		t.Errorf("lab's active version: %+v", lab.Active)
	}

	code, body := f.call(viewerSecret, http.MethodGet, "/api/v1/sites/atlantis", nil)
	if code != http.StatusNotFound || string(body) != `{"error":"this server serves no site \"atlantis\""}`+"\n" {
		t.Errorf("unknown site: %d %s", code, body)
	}
}

func TestAPIMachines(t *testing.T) {
	f := newFixture(t, nil)
	tests := map[string]struct {
		query string
		want  []sites.MAC
	}{
		"all":              {"", []sites.MAC{macUnknown, macM1, macW1, "52:54:00:99:00:22", "52:54:00:98:00:11", "52:54:00:98:00:21"}},
		"site":             {"?site=second", []sites.MAC{"52:54:00:98:00:11", "52:54:00:98:00:21"}},
		"role":             {"?site=lab&role=master", []sites.MAC{macM1}},
		"state":            {"?state=booting", []sites.MAC{macUnknown, macW1}},
		"outdated":         {"?site=lab&outdated=true", []sites.MAC{macM1, macW1, "52:54:00:99:00:22"}},
		"version by tag":   {"?version=v1", []sites.MAC{macM1}},
		"version by short": {"?version=" + short(f.versions["v1"]), []sites.MAC{macM1}},
		"version unknown":  {"?version=v77", nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var got struct{ Machines []MachineView }
			f.getJSON("/api/v1/machines"+tt.query, &got)
			var macs []sites.MAC
			for _, m := range got.Machines {
				macs = append(macs, m.MAC)
			}
			if diff := cmp.Diff(tt.want, macs); diff != "" {
				t.Errorf("GET /api/v1/machines%s (-want +got):\n%s", tt.query, diff)
			}
		})
	}
	for _, q := range []string{"?state=asleep", "?role=king", "?outdated=maybe"} {
		if code, body := f.call(viewerSecret, http.MethodGet, "/api/v1/machines"+q, nil); code != http.StatusBadRequest {
			t.Errorf("GET /api/v1/machines%s: %d %s, want 400", q, code, body)
		}
	}

	var got struct{ Machines []MachineView }
	f.getJSON("/api/v1/machines?site=lab&role=master", &got)
	m := got.Machines[0]
	m.FirstSeen, m.LastSeen = nil, nil
	want := MachineView{MAC: macM1, Site: "lab", Name: "lab-m1", Role: "master", State: "provisioned", IP: "10.99.0.11",
		Image: "testnode", Outdated: true,
		Version:  &VersionRef{Commit: f.versions["v1"], Short: short(f.versions["v1"]), Tag: "v1"},
		Desired:  &VersionRef{Commit: f.versions["v2"], Short: short(f.versions["v2"]), Tag: "v2"},
		Assigned: &VersionRef{Commit: f.versions["v1"], Short: short(f.versions["v1"]), Tag: "v1"},
		LastEvent: &EventView{ID: m.LastEvent.ID, At: time.Date(2026, 3, 1, 9, 0, 9, 0, time.UTC), MAC: macM1, Site: "lab",
			BootID: "boot-m1", Kind: "booted", Version: f.versions["v1"], IP: "10.99.0.11",
			VersionRef: &VersionRef{Commit: f.versions["v1"], Short: short(f.versions["v1"]), Tag: "v1"}},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("lab-m1 (-want +got):\n%s", diff)
	}
}

func TestAPIMachine(t *testing.T) {
	f := newFixture(t, nil)
	var d MachineDetail
	f.getJSON("/api/v1/machines/lab/lab-m1", &d)
	v1 := VersionRef{Commit: f.versions["v1"], Short: short(f.versions["v1"]), Tag: "v1"}
	v2 := VersionRef{Commit: f.versions["v2"], Short: short(f.versions["v2"]), Tag: "v2"}
	wantSpec := &SpecView{Name: "lab-m1", Role: "master", IP: "10.99.0.11", Image: "testnode", Version: v2,
		BMC: &BMCView{Driver: "ipmi", Address: "10.99.0.1:6211"}}
	if diff := cmp.Diff(wantSpec, d.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if d.Lease == nil || d.Lease.IP != "10.99.0.11" || d.Lease.State != "bound" || !d.Lease.Active || d.Lease.Hostname != "lab-m1" {
		t.Errorf("lease: %+v", d.Lease)
	}
	if len(d.Boots) != 1 {
		t.Fatalf("%d boots, want 1: %+v", len(d.Boots), d.Boots)
	}
	b := d.Boots[0]
	var steps []string
	for _, s := range b.Steps {
		steps = append(steps, s.Kind)
		if s.Kind != "dhcp-discover" && s.Since != 1 {
			t.Errorf("step %s %v after the one before, want 1s", s.Kind, s.Since)
		}
	}
	wantSteps := []string{"dhcp-discover", "dhcp-offer", "dhcp-request", "dhcp-ack", "tftp", "ipxe-chain", "ipxe-script",
		"artifact", "ignition", "booted"}
	if diff := cmp.Diff(wantSteps, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if !b.Booted || b.Failed || b.Seconds != 9 || b.BootID != "boot-m1" || b.Version == nil || *b.Version != v1 {
		t.Errorf("boot: %+v", b)
	}
	if d.Rebuilds == nil || len(d.Rebuilds) != 0 || d.RebuildsNote != "" {
		t.Errorf("rebuilds: %+v %q", d.Rebuilds, d.RebuildsNote)
	}
	raw := map[string]any{}
	f.getJSON("/api/v1/machines/lab/lab-m1", &raw)
	if b, _ := json.Marshal(raw); strings.Contains(string(b), "lab-bmc") || strings.Contains(string(b), "credentials") {
		t.Errorf("machine JSON names BMC credentials: %s", b)
	}

	// A machine no config declares is found by its MAC.
	var u MachineDetail
	f.getJSON("/api/v1/machines/lab/"+string(macUnknown), &u)
	if u.Machine.MAC != macUnknown || u.Spec != nil || !strings.Contains(u.SpecNote, "No site config declares") {
		t.Errorf("discovered machine: %+v", u)
	}
	for _, p := range []string{"/api/v1/machines/lab/nope", "/api/v1/machines/second/lab-m1", "/api/v1/machines/-/" + string(macUnknown)} {
		if code, body := f.call(viewerSecret, http.MethodGet, p, nil); code != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", p, code, body)
		}
	}
}

func TestAPIRebuild(t *testing.T) {
	f := newFixture(t, nil)
	code, body := f.call(operatorSecret, http.MethodPost, "/api/v1/machines/lab/lab-w2/rebuild", nil)
	if code != http.StatusAccepted {
		t.Fatalf("rebuild: %d %s", code, body)
	}
	var rb RebuildView
	if err := json.Unmarshal(body, &rb); err != nil {
		t.Fatal(err)
	}
	want := RebuildView{ID: 1, Site: "lab", Machine: "lab-w2", MAC: "52:54:00:99:00:22", Version: f.versions["v2"],
		VersionRef: &VersionRef{Commit: f.versions["v2"], Short: short(f.versions["v2"]), Tag: "v2"},
		State:      inventory.RebuildRequested, Actor: "otto", Created: f.clock.Now(), Updated: f.clock.Now()}
	if diff := cmp.Diff(want, rb); diff != "" {
		t.Errorf("rebuild (-want +got):\n%s", diff)
	}
	var d MachineDetail
	f.getJSON("/api/v1/machines/lab/lab-w2", &d)
	if diff := cmp.Diff([]RebuildView{want}, d.Rebuilds); diff != "" {
		t.Errorf("rebuild history (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		path string
		code int
		msg  string
	}{
		{"/api/v1/machines/lab/lab-w2/rebuild", http.StatusConflict, "machine lab-w2 is already rebuilding (rebuild 1, requested)"},
		{"/api/v1/machines/lab/nope/rebuild", http.StatusNotFound, "site lab declares no machine nope"},
		{"/api/v1/machines/atlantis/x/rebuild", http.StatusNotFound, `this server serves no site "atlantis"`},
	} {
		code, body := f.call(operatorSecret, http.MethodPost, tt.path, nil)
		if code != tt.code || !strings.Contains(errorOf(t, body), tt.msg) {
			t.Errorf("POST %s: %d %s, want %d %q", tt.path, code, body, tt.code, tt.msg)
		}
	}
	var results []string
	for _, e := range f.audit() {
		results = append(results, e.Action+" "+e.Target+" "+e.Result)
	}
	wantAudit := []string{
		`rebuild atlantis/x failed: this server serves no site "atlantis"`,
		"rebuild lab/nope failed: site lab declares no machine nope: not found",
		"rebuild lab/lab-w2 failed: machine lab-w2 is already rebuilding (rebuild 1, requested): conflict",
		"rebuild lab/lab-w2 ok",
	}
	if diff := cmp.Diff(wantAudit, results); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

func TestAPIRollout(t *testing.T) {
	f := newFixture(t, nil)
	steps := []struct {
		method, path string
		code         int
		state        RolloutState
		msg          string
	}{
		{http.MethodGet, "/api/v1/sites/lab/rollout", http.StatusNotFound, "", "site lab never had a rollout"},
		{http.MethodPost, "/api/v1/sites/lab/rollout/confirm", http.StatusNotFound, "", "site lab has no rollout to confirm"},
		{http.MethodPost, "/api/v1/sites/lab/rollout", http.StatusCreated, inventory.RolloutCanaryWait, ""},
		{http.MethodPost, "/api/v1/sites/lab/rollout", http.StatusConflict, "", "a rollout of lab is already canary-wait"},
		{http.MethodPost, "/api/v1/sites/lab/rollout/resume", http.StatusConflict, "", "cannot resume the rollout of lab: it is canary-wait"},
		{http.MethodPost, "/api/v1/sites/lab/rollout/confirm", http.StatusOK, inventory.RolloutRunning, ""},
		{http.MethodPost, "/api/v1/sites/lab/rollout/pause", http.StatusOK, inventory.RolloutPaused, ""},
		{http.MethodPost, "/api/v1/sites/lab/rollout/explode", http.StatusBadRequest, "", `unknown rollout action "explode"`},
		{http.MethodGet, "/api/v1/sites/lab/rollout", http.StatusOK, inventory.RolloutPaused, ""},
		{http.MethodPost, "/api/v1/sites/lab/rollout/abort", http.StatusOK, inventory.RolloutAborted, ""},
		{http.MethodPost, "/api/v1/sites/atlantis/rollout", http.StatusNotFound, "", `this server serves no site "atlantis"`},
	}
	for _, st := range steps {
		code, body := f.call(operatorSecret, st.method, st.path, nil)
		if code != st.code {
			t.Fatalf("%s %s: %d %s, want %d", st.method, st.path, code, body, st.code)
		}
		if st.msg != "" && !strings.Contains(errorOf(t, body), st.msg) {
			t.Errorf("%s %s: %s, want %q", st.method, st.path, body, st.msg)
		}
		if st.state != "" {
			var r RolloutView
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			if r.State != st.state || r.Site != "lab" || r.Version != f.versions["v2"] || len(r.Machines) != 3 {
				t.Errorf("%s %s: %+v, want state %s", st.method, st.path, r, st.state)
			}
		}
	}
	var actions []string
	for _, e := range f.audit() {
		actions = append(actions, e.Action+" "+strings.SplitN(e.Result, ":", 2)[0])
	}
	want := []string{"rollout-start failed", "rollout-abort ok", "rollout-explode failed", "rollout-pause ok",
		"rollout-confirm ok", "rollout-resume failed", "rollout-start failed", "rollout-start ok", "rollout-confirm failed"}
	if diff := cmp.Diff(want, actions); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}

	// The rollout page shows it, with its machines.
	_, page := f.login(viewerSecret).get("/sites/lab/rollout")
	for _, w := range []string{`id="rollout-state"`, "aborted", `id="rollout-machines"`, "lab-m1", "1/3"} {
		if !strings.Contains(page, w) {
			t.Errorf("rollout page lacks %q", w)
		}
	}
}

func TestAPIWithoutRebuilds(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.Rebuilds = nil })
	for _, tt := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/machines/lab/lab-w2/rebuild"},
		{http.MethodGet, "/api/v1/sites/lab/rollout"},
		{http.MethodPost, "/api/v1/sites/lab/rollout"},
		{http.MethodPost, "/api/v1/sites/lab/rollout/pause"},
	} {
		code, body := f.call(operatorSecret, tt.method, tt.path, nil)
		if code != http.StatusServiceUnavailable || string(body) != `{"error":"rebuilds are not available on this server"}`+"\n" {
			t.Errorf("%s %s: %d %s, want 503", tt.method, tt.path, code, body)
		}
	}
	var d MachineDetail
	f.getJSON("/api/v1/machines/lab/lab-m1", &d)
	if d.RebuildsNote != "rebuilds are not available on this server" {
		t.Errorf("rebuilds note: %q", d.RebuildsNote)
	}
	b := f.login(operatorSecret)
	for _, p := range []string{"/machines/lab/lab-m1", "/rollouts", "/sites/lab/rollout"} {
		resp, body := b.get(p)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="rebuilds-unavailable"`) || strings.Contains(body, `id="rebuild"`) {
			t.Errorf("GET %s without rebuilds: %d\n%s", p, resp.StatusCode, body)
		}
	}
}

func TestAPIDiscovered(t *testing.T) {
	f := newFixture(t, nil)
	var got struct{ Machines []DiscoveredView }
	f.getJSON("/api/v1/discovered", &got)
	if len(got.Machines) != 1 {
		t.Fatalf("discovered: %+v", got.Machines)
	}
	d := got.Machines[0]
	// The first free address of lab's subnet: .1 is the gateway, .10 the
	// api_vip, .11 and .21 its machines', .100-.199 its dynamic range.
	want := "  - name: lab-990099\n    mac: \"52:54:00:99:00:99\"\n    role: worker\n" +
		"    ip: 10.99.0.2  # free: outside the dynamic ranges, used by no machine (last seen at 10.99.0.150)\n" +
		"    # bmc: {driver: ipmi, address: HOST:623, credentials: NAME}\n"
	if diff := cmp.Diff(want, d.Snippet); diff != "" {
		t.Errorf("snippet (-want +got):\n%s", diff)
	}
	if d.MAC != macUnknown || d.Arch != "7" || d.VendorClass != "PXEClient:Arch:00007:UNDI:003016" || d.FirstSeen == nil || d.LastSeen == nil {
		t.Errorf("discovered machine: %+v", d)
	}
}

func TestAPIAudit(t *testing.T) {
	f := newFixture(t, nil)
	f.call(operatorSecret, http.MethodPost, "/api/v1/sites/lab/refresh", nil)
	f.call(viewerSecret, http.MethodPost, "/api/v1/sites/second/refresh", nil)
	var got struct{ Entries []AuditView }
	f.getJSON("/api/v1/audit?limit=1", &got)
	if len(got.Entries) != 1 || got.Entries[0].Actor != "vera" || got.Entries[0].Target != "second" ||
		!strings.HasPrefix(got.Entries[0].Result, "denied: ") {
		t.Errorf("audit: %+v", got.Entries)
	}
	if code, _ := f.call(viewerSecret, http.MethodGet, "/api/v1/audit?limit=-1", nil); code != http.StatusBadRequest {
		t.Errorf("limit=-1: %d, want 400", code)
	}
}

// errorOf returns the message of an error answer.
func errorOf(t *testing.T, body []byte) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	return e.Error
}

// TestAPIRolloutSelection starts partial rollouts through the API and the
// UI form: only the selected machines are planned, the answer and the
// pages show the selection, and a wrong selection says what is wrong.
func TestAPIRolloutSelection(t *testing.T) {
	f := newFixture(t, nil)
	refused := []struct {
		body any
		code int
		msg  string
	}{
		{map[string]any{"select": "rack"}, http.StatusBadRequest, `selector "rack": term "rack" has no '='`},
		{map[string]any{"select": "rack=r1,role=etcd"}, http.StatusBadRequest, `unknown role "etcd"`},
		{map[string]any{"selector": "rack=r1"}, http.StatusBadRequest, `unknown field "selector"`},
		{map[string]any{"machines": []string{"lab-w2", ""}}, http.StatusBadRequest, "an empty machine name"},
		{map[string]any{"machines": []string{"lab-w2", "nope"}}, http.StatusNotFound, "site lab has no machine nope"},
		{map[string]any{"select": "rack=r9"}, http.StatusConflict, "rack=r9 selects no outdated machine"},
	}
	for _, tt := range refused {
		code, body := f.call(operatorSecret, http.MethodPost, "/api/v1/sites/lab/rollout", tt.body)
		if code != tt.code || !strings.Contains(errorOf(t, body), tt.msg) {
			t.Errorf("start %v: %d %s, want %d %q", tt.body, code, body, tt.code, tt.msg)
		}
	}

	code, body := f.call(operatorSecret, http.MethodPost, "/api/v1/sites/lab/rollout", map[string]any{"select": "rack=r1"})
	if code != http.StatusCreated {
		t.Fatalf("start rack=r1: %d %s", code, body)
	}
	var r RolloutView
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range r.Machines {
		names = append(names, m.Name)
	}
	if r.Selection != "rack=r1" || !cmp.Equal(names, []string{"lab-m1", "lab-w1"}) {
		t.Errorf("rack=r1: selection %q, machines %v; want rack=r1, [lab-m1 lab-w1]", r.Selection, names)
	}
	var got RolloutView
	f.getJSON("/api/v1/sites/lab/rollout", &got)
	if got.Selection != "rack=r1" {
		t.Errorf("GET rollout: selection %q", got.Selection)
	}
	b := f.login(operatorSecret)
	_, page := b.get("/sites/lab/rollout")
	if !strings.Contains(page, "rollout 1 of lab (rack=r1)") || !strings.Contains(page, "only rack=r1") {
		t.Errorf("rollout page lacks the selection:\n%s", page)
	}
	if _, page := b.get("/rollouts"); !strings.Contains(page, "(rack=r1)") {
		t.Errorf("rollouts page lacks the selection")
	}
	if code, _ := f.call(operatorSecret, http.MethodPost, "/api/v1/sites/lab/rollout/abort", nil); code != http.StatusOK {
		t.Fatalf("abort: %d", code)
	}

	// The UI form: names separated by commas or spaces, with a selector.
	if _, page := b.get("/sites/lab/rollout"); !strings.Contains(page, `name="select"`) || !strings.Contains(page, `name="machines"`) {
		t.Fatalf("rollout page has no selection inputs")
	}
	resp, _ := b.post("/sites/lab/rollout/start", url.Values{"csrf": {b.formToken("/sites/lab/rollout")},
		"select": {"role=worker"}, "machines": {"lab-w2, lab-w1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("form start: %d", resp.StatusCode)
	}
	f.getJSON("/api/v1/sites/lab/rollout", &got)
	names = nil
	for _, m := range got.Machines {
		names = append(names, m.Name)
	}
	if got.Selection != "role=worker machines=lab-w2,lab-w1" || !cmp.Equal(names, []string{"lab-w1", "lab-w2"}) {
		t.Errorf("form start: selection %q, machines %v", got.Selection, names)
	}
	var details []string
	for _, e := range f.audit() {
		if e.Action == "rollout-start" && e.Result == "ok" {
			details = append(details, e.Detail)
		}
	}
	if len(details) != 2 || !strings.Contains(details[0], "rollout 2 of lab (role=worker machines=lab-w2,lab-w1)") ||
		!strings.Contains(details[1], "rollout 1 of lab (rack=r1)") {
		t.Errorf("audit details %q", details)
	}
}
