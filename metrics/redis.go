package metrics

import (
	"github.com/chatio/socketio-chat/socketio/redisadapter"
	"github.com/chatio/socketio-chat/socketio/streamsadapter"
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

// StreamsAdapter is the Redis Streams adapter's counters and state: a
// *streamsadapter.Cluster.
type StreamsAdapter interface {
	Stats() streamsadapter.Stats
	Up() bool
}

// InstrumentStreams exports the Streams adapter's counters and state, read
// at each scrape, under the names of the other adapters' (InstrumentCluster)
// plus the sessions it keeps in Redis. Its publish queue is the outbox:
// what waits while Redis is down, published when it is back.
func (m *Metrics) InstrumentStreams(c StreamsAdapter) {
	m.reg.MustRegister(&streamsCollector{c: c})
}

type streamsCollector struct{ c StreamsAdapter }

var descRedisSessions = prometheus.NewDesc("socketio_redis_sessions",
	"With the Streams adapter and -recovery: sessions of this node's connected clients kept in Redis", nil, nil)

func (c *streamsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRedisUp, descRedisPublished, descRedisReceived, descRedisDropped,
		descRedisReconnects, descRedisQueue, descRedisSessions} {
		ch <- d
	}
}

func (c *streamsCollector) Collect(ch chan<- prometheus.Metric) {
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
	ch <- prometheus.MustNewConstMetric(descRedisQueue, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(descRedisSessions, prometheus.GaugeValue, float64(st.Sessions))
}
