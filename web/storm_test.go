package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
)

// stormFixture is the fixture with lab-w1 booted two minutes ago (in the
// storm view's default window; lab-m1 booted an hour ago, before it).
func stormFixture(t *testing.T) *fixture {
	f := newFixture(t, nil)
	f.clock.Advance(3 * time.Minute)
	f.record(inventory.Event{MAC: macW1, Site: "lab", Kind: event.Booted, Version: f.versions["v2"],
		At: f.clock.Now().Add(-2 * time.Minute)})
	return f
}

func TestStormAPI(t *testing.T) {
	f := stormFixture(t)
	var got StormView
	f.getJSON("/api/v1/storm?site=lab", &got)
	// lab-m1 and lab-w1 booted, the unknown machine's DISCOVER, lab's
	// other machine declared and never seen.
	want := map[string]int{"not-started": 1, "nothing-to-boot": 0, "dhcp": 1, "firmware": 0, "ipxe-script": 0,
		"download": 0, "ignition": 0, "booted": 2, "stalled": 0, "failed": 0}
	phases := map[string]int{}
	var order []string
	for _, p := range got.Phases {
		phases[p.Phase] = p.Machines
		order = append(order, p.Phase)
	}
	if diff := cmp.Diff(want, phases); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if order[0] != "not-started" || order[len(order)-1] != "failed" || got.Machines != 4 || got.Site != "lab" {
		t.Errorf("storm: site %q, %d machines, phases in order %v", got.Site, got.Machines, order)
	}
	b := got.Booted
	if b.StepSeconds != 15 || b.WindowSeconds != 1800 || len(b.Counts) != 120 || b.Total != 1 || b.Counts[111] != 1 {
		t.Errorf("booted series: %+v; want 120 buckets of 15 s, lab-w1's report in bucket 111", b)
	}

	got = StormView{}
	f.getJSON("/api/v1/storm?window=2h", &got)
	if got.Site != "" || got.Booted.StepSeconds != 60 || got.Booted.Total != 2 {
		t.Errorf("all sites over 2h: site %q, step %d, %d booted; want every site, 60 s, 2", got.Site, got.Booted.StepSeconds, got.Booted.Total)
	}

	for path, code := range map[string]int{
		"/api/v1/storm?site=nowhere":   http.StatusNotFound,
		"/api/v1/storm?window=forever": http.StatusBadRequest,
		"/api/v1/storm?window=10s":     http.StatusBadRequest,
		"/api/v1/storm?window=48h":     http.StatusBadRequest,
	} {
		if c, body := f.call(viewerSecret, http.MethodGet, path, nil); c != code || !json.Valid(body) {
			t.Errorf("GET %s: %d %s, want %d with a JSON error", path, c, body, code)
		}
	}
	if c, _ := f.call("", http.MethodGet, "/api/v1/storm", nil); c != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/storm without a token: %d, want 401", c)
	}
}

func TestStormPage(t *testing.T) {
	f := stormFixture(t)
	b := f.login(viewerSecret)
	resp, body := b.get("/storm?site=lab")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /storm: %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{
		`<a href="/storm" class="on">Storm</a>`, `<meta http-equiv="refresh" content="2">`,
		"<h1>Storm · lab</h1>", "<option selected>lab</option>", `<option value="30m0s" selected>30m</option>`,
		`<svg id="phase-bars"`, `<g class="phase-booted" data-phase="booted">`, "<title>booted: 2 machine(s)</title>",
		`<td class="num" data-phase="booted">2</td>`, `<td class="num" data-phase="not-started">1</td>`,
		`<td class="num" data-phase="dhcp">1</td>`, `<td class="num" data-phase="failed">0</td>`,
		`<svg id="booted-chart"`, `<rect class="booted"`, "<title>10:03:00: 1 booted</title>",
		`<polyline class="total" points="`, "1 booted, per 15s", "Booted over the last 30m",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("storm page lacks %q", want)
		}
	}
	if strings.Contains(body, viewerSecret) || strings.Contains(body, "style=") {
		t.Error("storm page shows a secret or an inline style (the CSP forbids them)")
	}

	// Everything a request brings is checked or escaped.
	resp, body = b.get("/storm?site=" + url.QueryEscape(`<script>alert(1)</script>`))
	if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "<script>alert") {
		t.Errorf("storm of a site named with markup: %d, escaped: %v", resp.StatusCode, !strings.Contains(body, "<script>alert"))
	}
	resp, body = b.get("/storm?window=" + url.QueryEscape(`"><b>x`))
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, `"><b>x`) {
		t.Errorf("storm with a window of markup: %d, escaped: %v", resp.StatusCode, !strings.Contains(body, `"><b>x`))
	}

	// Every site, over an hour: lab-m1's report an hour ago is not in it.
	resp, body = b.get("/storm?window=1h")
	for _, want := range []string{"<h1>Storm</h1>", `<option value="1h0m0s" selected>1h</option>`, "1 booted, per 30s"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("storm of every site over an hour: %d, lacks %q", resp.StatusCode, want)
		}
	}

	// Not logged in: the login page, as for every page.
	resp, _ = f.browser().get("/storm")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /storm without a session: %d, want 303 to the login page", resp.StatusCode)
	}
}

func TestBootedChart(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ch := bootedChart(BootedSeries{Start: start, StepSeconds: 60, Counts: []int{0, 2, 0, 1}, Total: 3})
	if len(ch.Bars) != 2 || ch.MaxBucket != 2 || ch.StartLabel != "10:00:00" || ch.EndLabel != "10:04:00" || ch.StepLabel != "1m" {
		t.Fatalf("chart: %+v", ch)
	}
	if ch.Bars[0].H != chartBottom-chartTop || ch.Bars[1].H != (chartBottom-chartTop)/2 {
		t.Errorf("bar heights %v, %v: want the plot's height for the largest bucket, half for half of it", ch.Bars[0].H, ch.Bars[1].H)
	}
	if !strings.HasSuffix(ch.Line, svgNum(chartRight)+","+svgNum(chartTop)) {
		t.Errorf("running total %q does not end at the top right", ch.Line)
	}
	if empty := bootedChart(BootedSeries{Start: start, StepSeconds: 60, Counts: make([]int, 4)}); len(empty.Bars) != 0 {
		t.Errorf("chart of nothing booted has bars: %+v", empty.Bars)
	}
	for d, want := range map[time.Duration]string{15 * time.Second: "15s", 30 * time.Minute: "30m", time.Hour: "1h",
		24 * time.Hour: "24h", 90 * time.Minute: "1h30m"} {
		if got := durLabel(d); got != want {
			t.Errorf("durLabel(%v) = %q, want %q", d, got, want)
		}
	}
	bars := phaseBars([]PhaseCount{{"dhcp", 0}, {"booted", 4}})
	if bars[0].H != 0 || bars[1].H != phaseBarBottom-phaseBarTop || bars[1].Class != "phase-booted" {
		t.Errorf("phase bars: %+v", bars)
	}
}
