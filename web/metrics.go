package web

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/undercloud/undercloud/dhcp"
	"github.com/undercloud/undercloud/inventory"
)

// Metrics counts what the server does, for Prometheus at /metrics. It
// implements dhcp.Metrics and pxe.Metrics, so the DHCP, TFTP and boot HTTP
// servers count into it, and has methods for the rest of the server
// (Ignition renders, boots, rebuilds, rollouts, active versions). It keeps
// its own registry, not the global one. Its methods are safe for concurrent
// use and never block.
type Metrics struct {
	reg           *prometheus.Registry
	dhcpPackets   *prometheus.CounterVec
	tftpTransfers *prometheus.CounterVec
	tftpBytes     *prometheus.CounterVec
	bootRequests  *prometheus.CounterVec
	ignition      *prometheus.CounterVec
	bootDuration  prometheus.Histogram
	rebuilds      *prometheus.CounterVec
	rollouts      *prometheus.CounterVec
	siteVersion   *prometheus.GaugeVec

	mu     sync.Mutex
	active map[string]prometheus.Labels // site -> labels of its version series
}

// NewMetrics returns the server's metrics, with build info for version
// and the Go runtime and process collectors registered.
func NewMetrics(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		dhcpPackets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "undercloud_dhcp_packets_total",
			Help: "DHCP packets received, by message type and what became of them.",
		}, []string{"type", "outcome"}),
		tftpTransfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "undercloud_tftp_transfers_total",
			Help: "TFTP transfers, by file and result (ok, failed); a refused file name is counted as file=\"\".",
		}, []string{"file", "result"}),
		tftpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "undercloud_tftp_sent_bytes_total",
			Help: "Bytes sent over TFTP, by file.",
		}, []string{"file"}),
		bootRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "undercloud_boot_http_requests_total",
			Help: "Machine-facing HTTP requests, by endpoint and response status code.",
		}, []string{"endpoint", "code"}),
		ignition: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "undercloud_ignition_renders_total",
			Help: "Ignition configs rendered for machines, by result (ok, failed).",
		}, []string{"result"}),
		bootDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "undercloud_boot_duration_seconds",
			Help: "Time from a boot's first TFTP or iPXE script request to its booted callback, for every boot completed.",
			// A TCG VM boots in 7-11 s, real hardware in minutes (POST,
			// firmware, an installer).
			Buckets: []float64{5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600},
		}),
		rebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "undercloud_rebuilds_total",
			Help: "Rebuilds finished, by outcome (done, failed, canceled).",
		}, []string{"outcome"}),
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "undercloud_rollouts_total",
			Help: "Rollouts finished or halted, by outcome (done, halted, aborted).",
		}, []string{"outcome"}),
		siteVersion: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "undercloud_site_active_version_info",
			Help: "The config version each site serves: 1 for its active commit and tag.",
		}, []string{"site", "version", "tag"}),
		active: map[string]prometheus.Labels{},
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "undercloud_build_info",
		Help: "The running build: 1 for its version and Go version.",
	}, []string{"version", "goversion"})
	if version == "" {
		version = "dev"
	}
	build.WithLabelValues(version, runtime.Version()).Set(1)
	m.reg.MustRegister(m.dhcpPackets, m.tftpTransfers, m.tftpBytes, m.bootRequests, m.ignition,
		m.bootDuration, m.rebuilds, m.rollouts, m.siteVersion, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series that exist before their first event, so rates and alerts
	// see a zero rather than nothing.
	for _, r := range []string{"ok", "failed"} {
		m.ignition.WithLabelValues(r)
	}
	for _, o := range []RebuildState{inventory.RebuildDone, inventory.RebuildFailed, inventory.RebuildCanceled} {
		m.rebuilds.WithLabelValues(string(o))
	}
	for _, o := range []RolloutState{inventory.RolloutDone, inventory.RolloutHalted, inventory.RolloutAborted} {
		m.rollouts.WithLabelValues(string(o))
	}
	return m
}

// Packet counts a DHCP packet (dhcp.Metrics).
func (m *Metrics) Packet(kind dhcp.Kind, outcome dhcp.Outcome) {
	m.dhcpPackets.WithLabelValues(string(kind), string(outcome)).Inc()
}

// HTTPRequest counts a machine-facing request (pxe.Metrics).
func (m *Metrics) HTTPRequest(endpoint string, status int) {
	m.bootRequests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
}

// TFTPTransfer counts a TFTP transfer and its bytes (pxe.Metrics).
func (m *Metrics) TFTPTransfer(file string, bytes int64, ok bool) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.tftpTransfers.WithLabelValues(file, result).Inc()
	if bytes > 0 {
		m.tftpBytes.WithLabelValues(file).Add(float64(bytes))
	}
}

// IgnitionRendered counts an Ignition config rendered for a machine; ok is
// false when rendering or validating it failed.
func (m *Metrics) IgnitionRendered(ok bool) {
	if ok {
		m.ignition.WithLabelValues("ok").Inc()
	} else {
		m.ignition.WithLabelValues("failed").Inc()
	}
}

// BootCompleted observes a boot that reported booted, d after its first
// request to the server after DHCP (TFTP, the chain or the iPXE script).
func (m *Metrics) BootCompleted(d time.Duration) {
	m.bootDuration.Observe(d.Seconds())
}

// RebuildFinished counts a rebuild that ended in state outcome (done,
// failed, canceled).
func (m *Metrics) RebuildFinished(outcome RebuildState) {
	m.rebuilds.WithLabelValues(string(outcome)).Inc()
}

// RolloutFinished counts a rollout that ended or halted in state outcome
// (done, halted, aborted).
func (m *Metrics) RolloutFinished(outcome RolloutState) {
	m.rollouts.WithLabelValues(string(outcome)).Inc()
}

// SiteActiveVersion sets the version a site serves: the series of its
// previous version is removed, so the site has exactly one.
func (m *Metrics) SiteActiveVersion(site, commit, tag string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.active[site]; ok {
		m.siteVersion.Delete(old)
	}
	l := prometheus.Labels{"site": site, "version": commit, "tag": tag}
	m.siteVersion.With(l).Set(1)
	m.active[site] = l
}

// CountFoldedEvents publishes folded(), the boot events counted as repeats
// rather than stored (inventory.DB.Folded), as
// undercloud_events_folded_total: a DHCP storm shows there, not in the log.
func (m *Metrics) CountFoldedEvents(folded func() uint64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "undercloud_events_folded_total",
		Help: "Boot events counted as repeats of a stored one rather than stored (a client doing DHCP again and again).",
	}, func() float64 { return float64(folded()) }))
}

// CountDroppedDiscoveries publishes dropped(), the events and observations
// of MACs never seen before that the inventory dropped over its discovery
// rate (inventory.DB.DiscoveriesDropped), as
// undercloud_discoveries_dropped_total: a random-MAC flood shows there.
func (m *Metrics) CountDroppedDiscoveries(dropped func() uint64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "undercloud_discoveries_dropped_total",
		Help: "Boot events and observations of MACs never seen before, dropped over the per-site discovery rate (--discover-per-minute).",
	}, func() float64 { return float64(dropped()) }))
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// metrics serves /metrics without authentication, as Prometheus scrapes.
func (s *server) metrics(c echo.Context) error {
	if s.Metrics == nil {
		return kindf(ErrNotFound, "metrics are not enabled on this server")
	}
	s.Metrics.Handler().ServeHTTP(c.Response(), c.Request())
	return nil
}
