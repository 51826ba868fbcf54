// Package redisadapter is a Socket.IO adapter that joins the servers of a
// cluster through Redis pub/sub, speaking the wire format of Node's
// @socket.io/redis-adapter 8.x, so that Go and Node.js nodes can serve the
// same clients side by side.
//
// Delivery is at most once. A broadcast is handed to a bounded queue without
// waiting and delivered to the local clients synchronously; one goroutine
// publishes from the queue. So Redis never blocks or loses the local
// delivery, and the messages of one node reach the others in the order they
// were sent. While
// Redis is unreachable, broadcasts reach the local clients only; messages
// published during an outage are not replayed.
package redisadapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// Options configures a Cluster. The zero value of each field means its default.
type Options struct {
	// URL is the Redis server: redis://[user:pass@]host:port/db, rediss:// or unix://.
	URL string
	// Prefix starts every channel name; it is the `key` option of Node's
	// adapter and must be the same on every node. Defaults to "socket.io".
	Prefix string
	// Log receives the outage and recovery lines. Defaults to slog.Default().
	Log *slog.Logger
	// PublishQueue bounds the broadcasts waiting to be published. When it is
	// full, the remote copy of a broadcast is dropped (and counted); the local
	// delivery still happens. Defaults to 4096.
	PublishQueue int
	// RequestsTimeout bounds requests that wait for the other nodes
	// (FetchSockets, ServerSideEmit with an ack). Defaults to 5s, as in Node.
	RequestsTimeout time.Duration
	// HealthCheck is how long a subscription may stay silent before it is
	// pinged; a ping unanswered for as long again means the connection is
	// dead and is replaced. Defaults to 15s.
	HealthCheck time.Duration
	// ReconnectDelay and ReconnectDelayMax bound the exponential back-off
	// between two attempts to subscribe again. Default to 50ms and 1s.
	ReconnectDelay    time.Duration
	ReconnectDelayMax time.Duration
	// StartupWait bounds how long a new namespace waits for its subscriptions
	// before the server goes on without them. Defaults to 3s.
	StartupWait time.Duration
}

const (
	defaultPrefix          = "socket.io"
	defaultPublishQueue    = 4096
	defaultRequestsTimeout = 5 * time.Second
	defaultHealthCheck     = 15 * time.Second
	defaultReconnectDelay  = 50 * time.Millisecond
	defaultReconnectMax    = time.Second
	defaultStartupWait     = 3 * time.Second

	// maxBatch is the most publications sent in one pipeline.
	maxBatch = 256
	// publishTimeout bounds one pipeline of publications.
	publishTimeout = 2 * time.Second
	// drainTimeout bounds the publication of what is still queued at Close.
	drainTimeout = 2 * time.Second
)

// Cluster is the connection of one server to Redis. It is the
// socket.AdapterConstructor given to socket.ServerOptions.SetAdapter: it
// builds one adapter per namespace. All of them share the Redis client and
// the publishing goroutine; each has its own subscription connection.
type Cluster struct {
	opts   Options
	log    *slog.Logger
	client *redis.Client
	addr   string

	queue   chan publication
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	health health
	stats  counters
}

var _ socket.AdapterConstructor = (*Cluster)(nil)

// publication is one message waiting to be published.
type publication struct {
	channel string
	payload []byte
}

// Stats counts what a Cluster did since it was created.
type Stats struct {
	Published uint64 // messages published to Redis
	Received  uint64 // broadcasts of other nodes delivered to local clients
	Dropped   uint64 // broadcasts not published: queue full, Redis down or publish failed
}

type counters struct{ published, received, dropped atomic.Uint64 }

// New checks the options and starts the publishing goroutine. It does not
// wait for Redis: the first namespace adapter does, up to StartupWait.
func New(opts Options) (*Cluster, error) {
	ropts, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if opts.Prefix == "" {
		opts.Prefix = defaultPrefix
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.PublishQueue <= 0 {
		opts.PublishQueue = defaultPublishQueue
	}
	if opts.RequestsTimeout <= 0 {
		opts.RequestsTimeout = defaultRequestsTimeout
	}
	if opts.HealthCheck <= 0 {
		opts.HealthCheck = defaultHealthCheck
	}
	if opts.ReconnectDelay <= 0 {
		opts.ReconnectDelay = defaultReconnectDelay
	}
	if opts.ReconnectDelayMax < opts.ReconnectDelay {
		opts.ReconnectDelayMax = max(defaultReconnectMax, opts.ReconnectDelay)
	}
	if opts.StartupWait <= 0 {
		opts.StartupWait = defaultStartupWait
	}
	quietRedisLogs()
	ropts.ClientName = "socket.io-go"
	// RESP2, as Node's redis client. With RESP3 (go-redis's default),
	// go-redis v9.18 looks for its own push notifications ahead of every
	// read of a subscription, and when a pub/sub message is only partly in
	// its buffer, it reads the name cut short ("pmess"), takes the message
	// for a notification it does not know and discards it: about one
	// broadcast in a few thousand was lost under load.
	ropts.Protocol = 2
	c := &Cluster{
		opts:    opts,
		log:     opts.Log,
		client:  redis.NewClient(ropts),
		addr:    ropts.Addr,
		queue:   make(chan publication, opts.PublishQueue),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	c.health = health{log: opts.Log, addr: ropts.Addr, subs: map[*adapter]subState{}}
	go c.publishLoop()
	return c, nil
}

// New builds the adapter of a namespace. The socket library calls it.
func (c *Cluster) New(nsp socket.Namespace) socket.Adapter {
	return newAdapter(c, nsp)
}

// Stats returns the counters.
func (c *Cluster) Stats() Stats {
	return Stats{
		Published: c.stats.published.Load(),
		Received:  c.stats.received.Load(),
		Dropped:   c.stats.dropped.Load(),
	}
}

// Close publishes what is still queued (for up to 2s), then closes the Redis
// client. Close the Socket.IO server first: it closes the adapters. Later
// calls do nothing.
func (c *Cluster) Close() error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		<-c.stopped
		err = c.client.Close()
	})
	return err
}

// enqueue hands a message to the publishing goroutine without ever blocking.
func (c *Cluster) enqueue(channel string, payload []byte) {
	select {
	case <-c.stop:
		c.stats.dropped.Add(1)
		return
	default:
	}
	select {
	case c.queue <- publication{channel, payload}:
	default:
		c.stats.dropped.Add(1)
	}
}

// publishLoop is the only goroutine that publishes broadcasts, so they leave
// in the order they were queued. It sends what has piled up in one pipeline.
func (c *Cluster) publishLoop() {
	defer close(c.stopped)
	batch := make([]publication, 0, maxBatch)
	for {
		select {
		case p := <-c.queue:
			batch = c.fill(append(batch[:0], p))
			c.flush(context.Background(), batch)
		case <-c.stop:
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			for len(c.queue) > 0 && ctx.Err() == nil {
				batch = c.fill(batch[:0])
				c.flush(ctx, batch)
			}
			c.stats.dropped.Add(uint64(len(c.queue)))
			return
		}
	}
}

// fill adds queued publications to batch without waiting.
func (c *Cluster) fill(batch []publication) []publication {
	for len(batch) < maxBatch {
		select {
		case p := <-c.queue:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

func (c *Cluster) flush(ctx context.Context, batch []publication) {
	if len(batch) == 0 {
		return
	}
	if c.health.subscriberDown() {
		// The outage has been seen and logged; do not pile up attempts.
		c.stats.dropped.Add(uint64(len(batch)))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	var err error
	failed := 0
	if len(batch) == 1 {
		if err = c.client.Publish(ctx, batch[0].channel, batch[0].payload).Err(); err != nil {
			failed = 1
		}
	} else {
		cmds, _ := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, pub := range batch {
				p.Publish(ctx, pub.channel, pub.payload)
			}
			return nil
		})
		for _, cmd := range cmds {
			if cmd.Err() != nil {
				failed++
				err = cmd.Err()
			}
		}
		if len(cmds) == 0 {
			failed, err = len(batch), errors.New("pipeline not sent")
		}
	}
	c.stats.published.Add(uint64(len(batch) - failed))
	c.stats.dropped.Add(uint64(failed))
	if err != nil {
		c.health.publishFailed(err)
	} else {
		c.health.publishOK()
	}
}

// subState is the state of one adapter's subscriptions.
type subState int

const (
	subConnecting subState = iota // not subscribed yet, no failure seen
	subUp                         // every channel confirmed by Redis
	subDown                       // the connection failed; retrying
)

// health aggregates the state of the subscriptions and of the publisher
// into one "Redis is reachable" state, and logs its changes: one warning
// when Redis is lost, one line when it is back.
type health struct {
	log  *slog.Logger
	addr string

	mu        sync.Mutex
	subs      map[*adapter]subState
	pubFailed bool
	down      bool
	downSince time.Time
	everUp    bool
}

func (h *health) setSub(a *adapter, s subState, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[a] = s
	if s == subUp {
		// A confirmed subscription proves Redis answers again.
		h.pubFailed = false
	}
	h.update(err)
}

func (h *health) removeSub(a *adapter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, a)
	h.update(nil)
}

func (h *health) publishFailed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pubFailed = true
	h.update(err)
}

func (h *health) publishOK() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pubFailed {
		h.pubFailed = false
		h.update(nil)
	}
}

// subscriberDown reports whether a subscription is known to be broken.
func (h *health) subscriberDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.subs {
		if s == subDown {
			return true
		}
	}
	return false
}

// update logs a change of the overall state. h.mu is held.
func (h *health) update(err error) {
	down, up := h.pubFailed, len(h.subs) > 0
	for _, s := range h.subs {
		down = down || s == subDown
		up = up && s == subUp
	}
	switch {
	case down && !h.down:
		h.down, h.downSince = true, time.Now()
		h.log.Warn("redis unavailable: broadcasting to this node's clients only until it is back",
			"redis", h.addr, "err", err)
	case !down && h.down && up:
		h.down = false
		h.log.Info("redis available again: broadcasting to the cluster",
			"redis", h.addr, "down_for", time.Since(h.downSince).Round(time.Millisecond))
	case up && !h.everUp:
		h.everUp = true
		h.log.Info("redis adapter subscribed", "redis", h.addr)
	}
	if up {
		h.everUp = true
	}
}

var quietOnce sync.Once

// quietRedisLogs sends go-redis's own log lines (one per failed dial during
// an outage) to slog at debug level: the adapter logs the outage once.
func quietRedisLogs() {
	quietOnce.Do(func() { redis.SetLogger(debugLogger{}) })
}

type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
