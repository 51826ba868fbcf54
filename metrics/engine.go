package metrics

import (
	"strconv"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/prometheus/client_golang/prometheus"
)

// engineCollector reads a server's engine counters and namespaces at each
// scrape.
type engineCollector struct{ srv *socketio.Server }

var (
	descConnected = prometheus.NewDesc("socket_io_connected",
		"Number of currently connected sockets (Engine.IO sessions open, as Node's engine.clientsCount)", nil, nil)
	descSessions = prometheus.NewDesc("engineio_sessions",
		"Engine.IO sessions open, by transport (polling: not upgraded)", []string{"transport"}, nil)
	descOpened = prometheus.NewDesc("engineio_sessions_opened_total",
		"Engine.IO sessions opened (handshakes accepted)", nil, nil)
	descUpgrades = prometheus.NewDesc("engineio_upgrades_total",
		"Polling sessions upgraded to WebSocket", nil, nil)
	descClosed = prometheus.NewDesc("engineio_sessions_closed_total",
		"Engine.IO sessions closed, by reason", []string{"reason"}, nil)
	descRefused = prometheus.NewDesc("engineio_requests_refused_total",
		"Engine.IO requests refused (handshakes, polls, posts, upgrades), by HTTP status and reason", []string{"status", "reason"}, nil)
	descSlow = prometheus.NewDesc("engineio_slow_consumers_total",
		"Sessions cut off because their send queue overflowed (clients that stopped reading), or shed to keep all queues within the queue budget", nil, nil)
	descShed = prometheus.NewDesc("engineio_queue_budget_shed_total",
		"Sessions cut off, largest queue first, because the send queues of all sessions together passed the queue budget (-queue-budget); counted in engineio_slow_consumers_total too", nil, nil)
	descMsgsIn = prometheus.NewDesc("engineio_messages_received_total",
		"Engine.IO MESSAGE packets received", nil, nil)
	descBytesIn = prometheus.NewDesc("engineio_received_bytes_total",
		"Payload bytes of the MESSAGE packets received", nil, nil)
	descMsgsOut = prometheus.NewDesc("engineio_messages_sent_total",
		"Engine.IO MESSAGE packets sent (one per recipient)", nil, nil)
	descBytesOut = prometheus.NewDesc("engineio_sent_bytes_total",
		"Payload bytes of the MESSAGE packets sent (one copy per recipient)", nil, nil)
	descDeflateNegotiated = prometheus.NewDesc("engineio_ws_deflate_negotiated_total",
		"WebSocket connections that negotiated permessage-deflate (-ws-compression)", nil, nil)
	descDeflatedMsgs = prometheus.NewDesc("engineio_ws_deflated_messages_total",
		"WebSocket messages sent compressed (one per recipient; a broadcast is compressed once)", nil, nil)
	descDeflatedBytes = prometheus.NewDesc("engineio_ws_deflated_bytes_total",
		"Bytes of the WebSocket messages sent compressed, before (payload) and after (wire) compression", []string{"of"}, nil)
	descKeepAlive = prometheus.NewDesc("engineio_polling_keepalive_connections",
		"Keep-alive connections whose long polls the engine serves on its event loop now (-polling-keepalive)", nil, nil)
	descKeepAliveMoves = prometheus.NewDesc("engineio_polling_keepalive_moves_total",
		"Keep-alive connections taken over from net/http by the long-polling fast path (to=engine), and given back to it for another request (to=net_http)", []string{"to"}, nil)
	descKeepAliveRequests = prometheus.NewDesc("engineio_polling_keepalive_requests_total",
		"Long-polling requests (GETs and POSTs) served on the event loop by the keep-alive fast path, without net/http", nil, nil)
	descQueue = prometheus.NewDesc("engineio_send_queue_packets",
		"Packets waiting in each open session's send queue, sampled at the scrape", nil, nil)
	descQueueBytes = prometheus.NewDesc("engineio_send_queue_bytes",
		"Bytes waiting in every session's send queue, at the scrape", nil, nil)
	descSockets = prometheus.NewDesc("socketio_sockets",
		"Sockets connected to each namespace on this node", []string{"namespace"}, nil)
)

// queueBuckets are the bounds of the send-queue depth histogram.
var queueBuckets = []float64{0, 1, 4, 16, 64, 256, 1024, 4096}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descSessions, descOpened, descUpgrades, descClosed,
		descRefused, descSlow, descShed, descMsgsIn, descBytesIn, descMsgsOut, descBytesOut, descQueue, descQueueBytes, descSockets,
		descDeflateNegotiated, descDeflatedMsgs, descDeflatedBytes, descKeepAlive, descKeepAliveMoves, descKeepAliveRequests} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	eng := c.srv.Engine()
	st := eng.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descConnected, float64(st.Polling+st.WebSocket))
	gauge(descSessions, float64(st.Polling), "polling")
	gauge(descSessions, float64(st.WebSocket), "websocket")
	counter(descOpened, st.Opened)
	counter(descUpgrades, st.Upgrades)
	for reason, n := range st.Closed {
		counter(descClosed, n, reason)
	}
	for r, n := range st.Refusals {
		counter(descRefused, n, strconv.Itoa(r.Status), r.Reason)
	}
	counter(descSlow, st.Overflows)
	counter(descShed, st.Shed)
	counter(descMsgsIn, st.MessagesIn)
	counter(descBytesIn, st.BytesIn)
	counter(descMsgsOut, st.MessagesOut)
	counter(descBytesOut, st.BytesOut)
	counter(descDeflateNegotiated, st.DeflateNegotiated)
	counter(descDeflatedMsgs, st.DeflatedMessages)
	counter(descDeflatedBytes, st.DeflatedFrom, "payload")
	counter(descDeflatedBytes, st.DeflatedTo, "wire")
	gauge(descKeepAlive, float64(st.KeepAliveConns))
	counter(descKeepAliveMoves, st.KeepAliveTaken, "engine")
	counter(descKeepAliveMoves, st.KeepAliveGiven, "net_http")
	counter(descKeepAliveRequests, st.KeepAliveRequests)

	buckets := make(map[float64]uint64, len(queueBuckets))
	for _, le := range queueBuckets {
		buckets[le] = 0
	}
	var count uint64
	var sum, bytes float64
	eng.Queues(func(packets int, b int64) {
		count++
		sum += float64(packets)
		bytes += float64(b)
		for _, le := range queueBuckets {
			if float64(packets) <= le {
				buckets[le]++
			}
		}
	})
	ch <- prometheus.MustNewConstHistogram(descQueue, count, sum, buckets)
	gauge(descQueueBytes, bytes)
	for _, n := range c.srv.Namespaces() {
		gauge(descSockets, float64(n.Len()), n.Name())
	}
}
