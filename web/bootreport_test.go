package web

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
)

// The files a node reported with its booted callback are a JSON object in
// the API (the string detail stays for older clients) and a table on the
// machine page.
func TestBootReportShown(t *testing.T) {
	f := newFixture(t, nil)
	const detail = `{"digest":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","hostname":"lab-m1",` +
		`"files":{"/etc/motd":"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","/etc/hostname":"fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"}}`
	f.record(inventory.Event{At: f.clock.Now().Add(-time.Second), MAC: macM1, Site: "lab", Kind: event.Booted,
		BootID: "boot-m1", Version: f.versions["v1"], IP: netip.MustParseAddr("10.99.0.11"), Detail: detail})

	var d MachineDetail
	f.getJSON("/api/v1/machines/lab/lab-m1", &d)
	var got *EventView
	for _, st := range d.Boots[0].Steps {
		if st.Report != nil {
			got = &st.EventView
		}
	}
	if got == nil {
		t.Fatalf("no step of the newest boot has a report: %+v", d.Boots[0])
	}
	want := &BootReport{Digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Hostname: "lab-m1", Files: map[string]string{
		"/etc/motd":     "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
		"/etc/hostname": "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
	}}
	if diff := cmp.Diff(want, got.Report); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if got.Detail != detail {
		t.Errorf("detail %q, want it kept as stored", got.Detail)
	}
	// The raw JSON is an object, not a string.
	_, body := f.call(viewerSecret, http.MethodGet, "/api/v1/machines/lab/lab-m1", nil)
	if !strings.Contains(string(body), `"report":{"digest":"9f86d081`) {
		t.Errorf("the API's report is not a JSON object:\n%s", body)
	}

	resp, page := f.login(viewerSecret).get("/machines/lab/lab-m1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("machine page: %d", resp.StatusCode)
	}
	for _, w := range []string{
		`<table class="grid compact report">`,
		"Reported by the node as <code>lab-m1</code>: Ignition config digest <code title=\"9f86d081",
		"2 file(s)",
		// Sorted by path, one row each.
		"<tr><td><code>/etc/hostname</code></td><td><code>fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9</code></td></tr>\n" +
			"<tr><td><code>/etc/motd</code></td><td><code>2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae</code></td></tr>",
		"reported 2 file(s), below",
	} {
		if !strings.Contains(page, w) {
			t.Errorf("machine page lacks %q", w)
		}
	}
}

func TestBootReportParse(t *testing.T) {
	for detail, want := range map[string]*BootReport{
		"":                     nil,
		"booted":               nil,
		`{"digest":`:           nil,
		`{"digest":"ab"}`:      {Digest: "ab", Files: map[string]string{}},
		`{"files":{"/x":"1"}}`: {Files: map[string]string{"/x": "1"}},
	} {
		if diff := cmp.Diff(want, bootReport(detail)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", detail, diff)
		}
	}
}
