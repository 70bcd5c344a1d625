package web

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/undercloud/undercloud/dhcp"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
)

// Metrics is what the composition root hands the DHCP and boot servers.
var (
	_ dhcp.Metrics = (*Metrics)(nil)
	_ pxe.Metrics  = (*Metrics)(nil)
)

// TestMetricsPromtool scrapes /metrics after every counter moved and has
// promtool (Debian package prometheus) check the exposition, lint included.
func TestMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: install the Debian package prometheus (%v)", err)
	}
	f := newFixture(t, nil)
	m := f.metrics
	m.Packet(dhcp.KindDiscover, dhcp.OutcomeReply)
	m.Packet(dhcp.KindDiscover, dhcp.OutcomeReply)
	m.Packet(dhcp.KindRequest, dhcp.OutcomeNak)
	m.HTTPRequest("ipxe", 200)
	m.HTTPRequest("ignition", 403)
	m.TFTPTransfer("undionly.kpxe", 70000, true)
	m.TFTPTransfer("", 0, false)
	m.IgnitionRendered(true)
	m.IgnitionRendered(false)
	m.BootCompleted(7 * time.Second)
	m.RebuildFinished(inventory.RebuildDone)
	m.RolloutFinished(inventory.RolloutHalted)
	m.SiteActiveVersion("lab", f.versions["v1"], "v1")
	m.SiteActiveVersion("lab", f.versions["v2"], "v2")
	m.SiteActiveVersion("second", f.versions["v1"], "v1")
	m.CountFoldedEvents(func() uint64 { return 1234 })

	resp, err := http.Get(f.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for _, want := range []string{
		`undercloud_dhcp_packets_total{outcome="reply",type="discover"} 2`,
		`undercloud_dhcp_packets_total{outcome="nak",type="request"} 1`,
		`undercloud_boot_http_requests_total{code="403",endpoint="ignition"} 1`,
		`undercloud_tftp_transfers_total{file="undionly.kpxe",result="ok"} 1`,
		`undercloud_tftp_transfers_total{file="",result="failed"} 1`,
		`undercloud_tftp_sent_bytes_total{file="undionly.kpxe"} 70000`,
		`undercloud_ignition_renders_total{result="failed"} 1`,
		`undercloud_boot_duration_seconds_bucket{le="10"} 1`,
		`undercloud_boot_duration_seconds_count 1`,
		`undercloud_rebuilds_total{outcome="done"} 1`,
		`undercloud_rebuilds_total{outcome="failed"} 0`,
		`undercloud_rollouts_total{outcome="halted"} 1`,
		`undercloud_site_active_version_info{site="lab",tag="v2",version="` + f.versions["v2"] + `"} 1`,
		`undercloud_site_active_version_info{site="second",tag="v1",version="` + f.versions["v1"] + `"} 1`,
		`undercloud_events_folded_total 1234`,
		`undercloud_build_info{goversion="go`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(string(body), `site="lab",tag="v1"`) {
		t.Errorf("lab's previous version is still exported")
	}
	if n := testutil.CollectAndCount(m.siteVersion); n != 2 {
		t.Errorf("%d active version series, want 2 (one per site)", n)
	}
}

func TestMetricsDisabled(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.Metrics = nil })
	code, body := f.call("", http.MethodGet, "/metrics", nil)
	if code != http.StatusNotFound || !strings.Contains(string(body), "metrics are not enabled") {
		t.Errorf("GET /metrics without Metrics: %d %s", code, body)
	}
}
