package metrics

import "github.com/prometheus/client_golang/prometheus"

// Front is the front door's counters (*engineio.Front).
type Front interface {
	Counts() (served, given uint64)
}

// InstrumentFront exports the front door's counters, read at each scrape.
func (m *Metrics) InstrumentFront(f Front) {
	m.reg.MustRegister(&frontCollector{f: f})
}

type frontCollector struct{ f Front }

var descFront = prometheus.NewDesc("engineio_ws_front_connections_total",
	"New connections whose first request the front door read on the event loop (-ws-front): WebSocket handshakes it served (to=handshake), and the others, given to net/http (to=net_http)", []string{"to"}, nil)

func (c *frontCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descFront }

func (c *frontCollector) Collect(ch chan<- prometheus.Metric) {
	served, given := c.f.Counts()
	ch <- prometheus.MustNewConstMetric(descFront, prometheus.CounterValue, float64(served), "handshake")
	ch <- prometheus.MustNewConstMetric(descFront, prometheus.CounterValue, float64(given), "net_http")
}
