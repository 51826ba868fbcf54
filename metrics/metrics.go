// Package metrics exports what a Socket.IO server does to Prometheus, with
// github.com/prometheus/client_golang: the names Node users chart with
// socket.io-prometheus-metrics (socket_io_*), the engine's and the
// cluster's own counters, the chat's limits and history, and the Go
// runtime and process collectors. docs/OPERATING.md lists every metric and
// what moves it.
//
// Where the numbers come from. Counters the engine and the Redis adapter
// keep anyway (sessions, refusals, closes, bytes, publications) are read
// when Prometheus scrapes, by collectors: they cost nothing in between.
// Socket-level metrics come from socketio.Hooks: one cached counter per
// (namespace, event) pair, found in a copy-on-write map without a lock, so
// an event or a broadcast costs a map lookup and a few atomic additions,
// whatever its number of recipients. The broadcast fan-out latency follows
// a sample of the broadcasts (socketio.Hooks.BroadcastDelivered: one at a
// time per namespace).
//
// Label cardinality is bounded: namespaces exist only when the server
// creates them; an event name gets its own label value only when it is in
// Options.Events (or, for events the server sends, among the first
// Options.MaxSentEvents names it sends); every other name counts as
// "_other".
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure Metrics. The zero value is usable.
type Options struct {
	// Events are the event names counted under their own name (the
	// application's, such as "user-message" and "message"); the others
	// count as OtherEvent.
	Events []string
	// MaxSentEvents is how many more names of events the server sends
	// (names its own code chooses, unlike what clients send) get their own
	// label value, first come first served. Defaults to 32.
	MaxSentEvents int
	// Registry receives the metrics. Nil is a new registry with the Go
	// runtime and process collectors.
	Registry *prometheus.Registry
}

// OtherEvent is the event label of the names that get none of their own.
const OtherEvent = "_other"

// Metrics is the Prometheus side of one server. Its methods are safe for
// concurrent use, and those the application calls (EventDropped, …) do
// nothing on a nil *Metrics, so that it can stay nil when metrics are off.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry

	// socket_io_*, as socket.io-prometheus-metrics names them
	connectTotal    *prometheus.CounterVec // namespace
	disconnectTotal *prometheus.CounterVec // namespace
	eventsReceived  *prometheus.CounterVec // event, namespace
	eventsSent      *prometheus.CounterVec // event, namespace
	recieveBytes    *prometheus.CounterVec // event, namespace (Node's spelling)
	recvBytes       *prometheus.CounterVec // event, namespace (the issue's)
	transmitBytes   *prometheus.CounterVec // event, namespace
	errorsTotal     *prometheus.CounterVec // namespace

	// ours
	disconnects *prometheus.CounterVec   // namespace, reason
	deliveries  *prometheus.CounterVec   // namespace
	fanout      *prometheus.HistogramVec // namespace
	dropped     *prometheus.CounterVec   // reason
	refused     *prometheus.CounterVec   // status, reason
	histWrites  *prometheus.CounterVec   // result
	histLatency prometheus.Histogram

	nsps cowMap[string, *nsMetrics]
	sent atomic.Int64 // sent event names learnt

	instrumented sync.Once
	history      sync.Once // registers histWrites and histLatency when a store is used
}

// New creates the metrics and registers them.
func New(opts Options) *Metrics {
	if opts.MaxSentEvents <= 0 {
		opts.MaxSentEvents = 32
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	m := &Metrics{opts: opts, reg: reg}
	nsp := []string{"namespace"}
	ev := []string{"event", "namespace"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	// The HELP texts of socket.io-prometheus-metrics 1.0.6, typos included.
	m.connectTotal = counter("socket_io_connect_total", "Total count of socket.io connection requests", nsp)
	m.disconnectTotal = counter("socket_io_disconnect_total", "Total count of socket.io disconnections", nsp)
	m.eventsReceived = counter("socket_io_events_received_total", "Total count of socket.io recieved events", ev)
	m.eventsSent = counter("socket_io_events_sent_total", "Total count of socket.io sent events", ev)
	m.recieveBytes = counter("socket_io_recieve_bytes", "Total socket.io bytes recieved", ev)
	m.recvBytes = counter("socket_io_recv_bytes", "Total socket.io bytes received (socket_io_recieve_bytes, correctly spelled)", ev)
	m.transmitBytes = counter("socket_io_transmit_bytes", "Total socket.io bytes transmitted", ev)
	m.errorsTotal = counter("socket_io_errors_total", "Total socket.io errors", nsp)

	m.disconnects = counter("socketio_disconnects_total",
		"Sockets disconnected, by namespace and reason (Socket.IO's reasons; \"slow consumer\" for a client cut off because its send queue overflowed)",
		[]string{"namespace", "reason"})
	m.deliveries = counter("socketio_deliveries_total",
		"Packets of emitted events queued for local recipients (a broadcast to N sockets counts N)", nsp)
	m.fanout = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "socketio_broadcast_fanout_seconds",
		Help:    "Time from a broadcast call to the write of its last local recipient's copy (sampled: one broadcast at a time per namespace)",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, nsp)
	m.dropped = counter("chat_events_dropped_total",
		"Chat events dropped, their sender told: over the rate limit (rate_limit), too large (too_large), not stored by the history (history_full, history_unavailable, history_rejected)", []string{"reason"})
	m.refused = counter("chat_refused_total",
		"Requests and connections refused before the engine: a foreign Origin (403 origin_not_allowed), a Host the server does not answer to (403 host_not_allowed), the HTTP connection limit and its health reserve (0 or 503 too_many_http_connections), the per-address limit (0 too_many_pending_per_address)",
		[]string{"status", "reason"})
	m.histWrites = counter("chat_history_writes_total",
		"Chat messages written to the history store, by result (ok, error)", []string{"result"})
	m.histLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "chat_history_write_seconds",
		Help:    "Duration of one history store append (one group commit)",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	reg.MustRegister(m.connectTotal, m.disconnectTotal, m.eventsReceived, m.eventsSent, m.recieveBytes,
		m.recvBytes, m.transmitBytes, m.errorsTotal, m.disconnects, m.deliveries, m.fanout, m.dropped,
		m.refused)
	return m
}

// Registry is where the metrics are registered; add your own there.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' text format, for /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// OpenMetrics stays off: it would add _total to the names of
		// socket_io_recieve_bytes and socket_io_transmit_bytes.
		EnableOpenMetrics: false,
	})
}

// EventDropped counts an event the application dropped; reason is one of
// a few fixed words (rate_limit, too_large).
func (m *Metrics) EventDropped(reason string) {
	if m == nil {
		return
	}
	m.dropped.WithLabelValues(reason).Inc()
}

// Refused counts a request or connection refused before the engine saw
// it; status is its HTTP status (0 for a connection closed at once) and
// reason one of a few fixed words.
func (m *Metrics) Refused(status int, reason string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(statusLabel(status), reason).Inc()
}

func statusLabel(status int) string {
	switch status {
	case 0:
		return "0"
	case 400:
		return "400"
	case 403:
		return "403"
	case 413:
		return "413"
	case 503:
		return "503"
	}
	return "other"
}

// cowMap is a map read without locks (an atomic pointer to an immutable
// map) and copied on each insert: for caches that stop growing early.
type cowMap[K comparable, V any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]V]
}

func (c *cowMap[K, V]) load(k K) (V, bool) {
	if p := c.m.Load(); p != nil {
		v, ok := (*p)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

// getOrAdd returns the value of k, made by mk (under the lock) if absent.
func (c *cowMap[K, V]) getOrAdd(k K, mk func() V) V {
	if v, ok := c.load(k); ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	next := make(map[K]V, 1)
	if old != nil {
		for k2, v2 := range *old {
			next[k2] = v2
		}
	}
	v := mk()
	next[k] = v
	c.m.Store(&next)
	return v
}
