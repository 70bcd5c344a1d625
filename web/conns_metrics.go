package web

import "github.com/prometheus/client_golang/prometheus"

// CountConns publishes a listener's connections (see package netlimit):
// open() as undercloud_http_connections_open and refused() — those closed
// at once for being over its caps — as
// undercloud_http_connections_refused_total, both labelled with the
// listener's name (machine, operator).
func (m *Metrics) CountConns(listener string, open func() int, refused func() uint64) {
	labels := prometheus.Labels{"listener": listener}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "undercloud_http_connections_open",
			Help:        "HTTP connections open now, by listener.",
			ConstLabels: labels,
		}, func() float64 { return float64(open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "undercloud_http_connections_refused_total",
			Help:        "HTTP connections closed as soon as accepted for being over the listener's total or per-client cap, by listener.",
			ConstLabels: labels,
		}, func() float64 { return float64(refused()) }),
	)
}
