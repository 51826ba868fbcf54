package metrics

import (
	"github.com/chatio/socketio-chat/socketio/redisadapter"
	"github.com/prometheus/client_golang/prometheus"
)

// ClusterAdapter is a Redis adapter's counters and state: a
// *redisadapter.Cluster or a *shardedadapter.Adapter.
type ClusterAdapter interface {
	Stats() redisadapter.Stats
	Up() bool
}

// InstrumentCluster exports the Redis adapter's counters and state, read
// at each scrape.
func (m *Metrics) InstrumentCluster(c ClusterAdapter) {
	m.reg.MustRegister(&clusterCollector{c: c})
}

type clusterCollector struct{ c ClusterAdapter }

var (
	descRedisUp = prometheus.NewDesc("socketio_redis_up",
		"1 while the node hears the cluster: every namespace's subscriptions confirmed by Redis and the last publication succeeded", nil, nil)
	descRedisPublished = prometheus.NewDesc("socketio_redis_published_total",
		"Messages published to Redis (broadcasts, requests, responses)", nil, nil)
	descRedisReceived = prometheus.NewDesc("socketio_redis_received_total",
		"Broadcasts of other nodes delivered to this node's clients", nil, nil)
	descRedisDropped = prometheus.NewDesc("socketio_redis_dropped_total",
		"Messages not published: queue full, Redis down, publication or encoding failed (local delivery is unaffected)", nil, nil)
	descRedisReconnects = prometheus.NewDesc("socketio_redis_reconnects_total",
		"Subscriptions re-established after a failure", nil, nil)
	descRedisQueue = prometheus.NewDesc("socketio_redis_publish_queue",
		"Messages waiting to be published", nil, nil)
)

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRedisUp, descRedisPublished, descRedisReceived, descRedisDropped,
		descRedisReconnects, descRedisQueue} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.c.Stats()
	up := 0.0
	if c.c.Up() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descRedisUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descRedisPublished, prometheus.CounterValue, float64(st.Published))
	ch <- prometheus.MustNewConstMetric(descRedisReceived, prometheus.CounterValue, float64(st.Received))
	ch <- prometheus.MustNewConstMetric(descRedisDropped, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(descRedisReconnects, prometheus.CounterValue, float64(st.Reconnects))
	ch <- prometheus.MustNewConstMetric(descRedisQueue, prometheus.GaugeValue, float64(st.Queued))
}
