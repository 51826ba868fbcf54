package redisadapter

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/internal/redisconn"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/redis/go-redis/v9"
)

// Options configures a Cluster. The zero value of each field means its default.
type Options struct {
	// URL is the Redis server: redis://[user:pass@]host:port/db, rediss://
	// or unix://; or a Redis Cluster: a comma-separated list of its nodes'
	// URLs (as Node's createCluster rootNodes; "redis://host:port," for a
	// single seed). Classic pub/sub reaches every node of a cluster, so the
	// adapter works there as Node's does (see internal/redisconn).
	URL string
	// Prefix starts every channel name; it is the `key` option of Node's
	// adapter and must be the same on every node. Defaults to "socket.io".
	Prefix string
	// Log receives the outage and recovery lines. Defaults to slog.Default().
	Log *slog.Logger
	// PublishQueue bounds the messages waiting to be published. When it is
	// full, the remote copy of a broadcast is dropped (and counted); the local
	// delivery still happens. Defaults to 4096.
	PublishQueue int
	// PublishRetry bounds how long a publication that failed (a deadline
	// passed, the connection broke) is tried again, in order: the
	// publications queued behind it wait (up to PublishQueue of them).
	// Past it, the failed ones are dropped, counted and logged. A node
	// whose subscription is down (Redis unreachable) does not retry.
	// Defaults to 10s.
	PublishRetry time.Duration
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
	// before the server goes on without them. Defaults to 3s. A namespace
	// created while Redis is known to be down does not wait.
	StartupWait time.Duration
}

const (
	defaultPrefix          = "socket.io"
	defaultPublishQueue    = 4096
	defaultPublishRetry    = 10 * time.Second
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

// Cluster is the connection of one server to Redis: the socketio.Adapter
// given to socketio.Options.Adapter. It builds one adapter per namespace.
// All of them share the Redis client and the publishing goroutine; each has
// its own subscription connection and receiving goroutine.
type Cluster struct {
	opts   Options
	log    *slog.Logger
	client redis.UniversalClient

	queue   chan publication
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	mu   sync.Mutex
	nsps map[*nsAdapter]struct{}

	health health
	stats  counters
	// queueFull is set by the first publication dropped because the queue
	// was full, and cleared by the publishing goroutine once a publication
	// went out: one warning per streak.
	queueFull atomic.Bool
}

var _ socketio.Adapter = (*Cluster)(nil)

// publication is one message waiting to be published: payload on channel,
// or, for a broadcast (p set), the broadcast to encode first.
type publication struct {
	channel string
	payload []byte
	a       *nsAdapter
	p       *socketio.BroadcastPacket
}

// Stats counts what a Cluster did since it was created.
type Stats struct {
	Published  uint64 // messages published to Redis (broadcasts, requests, responses)
	Received   uint64 // broadcasts of other nodes delivered to local clients
	Dropped    uint64 // messages not published: queue full, Redis down, publish or encoding failed
	Reconnects uint64 // subscriptions re-established after a failure
	Queued     int    // messages waiting to be published now
}

type counters struct{ published, received, dropped, reconnects atomic.Uint64 }

// New checks the options and starts the publishing goroutine. It does not
// wait for Redis: each namespace's adapter does, up to StartupWait.
func New(opts Options) (*Cluster, error) {
	client, addr, err := redisconn.Open(opts.URL, "socket.io-go")
	if err != nil {
		return nil, err
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
	if opts.PublishRetry <= 0 {
		opts.PublishRetry = defaultPublishRetry
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
	// redisconn.Open sets RESP2, as Node's redis client. With RESP3
	// (go-redis's default), go-redis v9.18 looks for its own push
	// notifications ahead of every read of a subscription, and when a
	// pub/sub message is only partly in its buffer, it reads the name cut
	// short ("pmess"), takes the message for a notification it does not
	// know and discards it: about one broadcast in a few thousand was lost
	// under load.
	c := &Cluster{
		opts:    opts,
		log:     opts.Log,
		client:  client,
		queue:   make(chan publication, opts.PublishQueue),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		nsps:    make(map[*nsAdapter]struct{}),
	}
	c.health = health{log: opts.Log, addr: addr, subs: map[*nsAdapter]subState{}}
	go c.publishLoop()
	return c, nil
}

// Namespace builds the adapter of a namespace: it subscribes, and waits up
// to StartupWait until Redis has confirmed the subscriptions, so that a
// server does not accept clients before it hears the cluster. The socketio
// server calls it.
func (c *Cluster) Namespace(local socketio.LocalNamespace) (socketio.NamespaceAdapter, error) {
	select {
	case <-c.stop:
		return nil, errors.New("redis adapter: closed")
	default:
	}
	a := newNSAdapter(c, local)
	c.mu.Lock()
	c.nsps[a] = struct{}{}
	c.mu.Unlock()
	a.start()
	if !c.health.isDown() {
		t := time.NewTimer(c.opts.StartupWait)
		defer t.Stop()
		select {
		case <-a.ready:
		case <-t.C:
		}
	}
	return a, nil
}

// Stats returns the counters.
func (c *Cluster) Stats() Stats {
	return Stats{
		Published:  c.stats.published.Load(),
		Received:   c.stats.received.Load(),
		Dropped:    c.stats.dropped.Load(),
		Reconnects: c.stats.reconnects.Load(),
		Queued:     len(c.queue),
	}
}

// Up reports whether the node hears the cluster: every namespace's
// subscriptions are confirmed by Redis and the last publication succeeded.
func (c *Cluster) Up() bool { return c.health.isUp() }

// Close stops the namespaces' subscriptions, publishes what is still queued
// (for up to 2s), then closes the Redis client. The socketio server calls it
// when it closes; later calls do nothing.
func (c *Cluster) Close() error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		nsps := make([]*nsAdapter, 0, len(c.nsps))
		for a := range c.nsps {
			nsps = append(nsps, a)
		}
		c.mu.Unlock()
		for _, a := range nsps {
			_ = a.Close()
		}
		close(c.stop)
		<-c.stopped
		err = c.client.Close()
	})
	return err
}

func (c *Cluster) forget(a *nsAdapter) {
	c.mu.Lock()
	delete(c.nsps, a)
	c.mu.Unlock()
	c.health.removeSub(a)
}

// enqueue hands a publication to the publishing goroutine without ever
// blocking; when the queue is full, it is dropped and counted.
func (c *Cluster) enqueue(p publication) {
	select {
	case <-c.stop:
		c.stats.dropped.Add(1)
		return
	default:
	}
	select {
	case c.queue <- p:
	default:
		c.stats.dropped.Add(1)
		if !c.queueFull.Swap(true) {
			c.log.Warn("redis adapter: publish queue full; dropping the remote copies of broadcasts until it drains",
				"queue", c.opts.PublishQueue, "reason", "publish queue full")
		}
	}
}

// publishLoop is the only goroutine that publishes, so messages leave in
// the order they were queued. It encodes what has piled up and sends it in
// one pipeline.
func (c *Cluster) publishLoop() {
	defer close(c.stopped)
	batch := make([]publication, 0, maxBatch)
	var enc encoder
	for {
		select {
		case p := <-c.queue:
			batch = c.fill(append(batch[:0], p))
			c.flush(context.Background(), &enc, batch)
		case <-c.stop:
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			for len(c.queue) > 0 && ctx.Err() == nil {
				batch = c.fill(batch[:0])
				c.flush(ctx, &enc, batch)
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

// flush encodes the broadcasts of batch (into one buffer, reused by the
// next batch once this one is sent) and publishes the batch.
func (c *Cluster) flush(ctx context.Context, enc *encoder, batch []publication) {
	if len(batch) == 0 {
		return
	}
	if c.health.subscriberDown() {
		// The outage has been seen and logged; do not pile up attempts.
		c.stats.dropped.Add(uint64(len(batch)))
		return
	}
	enc.Buf = enc.Buf[:0]
	enc.spans = enc.spans[:0]
	out := batch[:0]
	for _, p := range batch {
		if p.p != nil {
			start := len(enc.Buf)
			if err := enc.broadcast(p.a.uid, p.p); err != nil {
				c.stats.dropped.Add(1)
				c.log.Warn("redis adapter: cannot encode broadcast", "nsp", p.p.Nsp, "event", p.p.Event, "err", err)
				continue
			}
			p.channel = p.a.ch.broadcastChannel(unique(p.p.Opts.Rooms))
			p.p = nil
			enc.spans = append(enc.spans, [3]int{len(out), start, len(enc.Buf)})
		}
		out = append(out, p)
	}
	// The payloads are slices of enc.Buf, taken once it stopped growing.
	for _, sp := range enc.spans {
		out[sp[0]].payload = enc.Buf[sp[1]:sp[2]:sp[2]]
	}
	batch = out
	if len(batch) == 0 {
		return
	}
	c.publish(ctx, batch)
	for i := range batch {
		batch[i] = publication{} // let the packets go
	}
}

// publish sends batch in order, and tries again what failed, in order,
// waiting 50 ms, then twice as long each time up to 1 s, for up to
// PublishRetry (what is queued meanwhile waits behind it). It gives up,
// dropping and counting what is left, when the bound is passed, when the
// node's subscription is down (Redis unreachable: the outage is logged
// once, and the other nodes cannot hear anyway), or when ctx ends. After
// Close, retries are bounded by drainTimeout. Runs on the publishing
// goroutine.
func (c *Cluster) publish(ctx context.Context, batch []publication) {
	var (
		firstFailure time.Time
		delay        = 50 * time.Millisecond
		stopping     <-chan struct{}
		attempts     int
	)
	deadline := time.Time{}
	select {
	case <-c.stop:
	default:
		stopping = c.stop
	}
	for {
		attempts++
		left, err := c.send(ctx, batch)
		c.stats.published.Add(uint64(len(batch) - len(left)))
		if err == nil {
			c.health.publishOK()
			c.queueFull.Store(false)
			if attempts > 1 {
				c.log.Info("redis adapter: publications sent after retrying", "attempts", attempts,
					"retried_for", time.Since(firstFailure).Round(time.Millisecond))
			}
			return
		}
		c.health.publishFailed(err)
		now := time.Now()
		if firstFailure.IsZero() {
			firstFailure, deadline = now, now.Add(c.opts.PublishRetry)
			if stopping == nil {
				deadline = now.Add(min(drainTimeout, c.opts.PublishRetry))
			}
		}
		giveUp := ""
		switch {
		case ctx.Err() != nil:
			giveUp = "closing"
		case c.health.subscriberDown():
			giveUp = "redis unavailable"
		case !now.Add(delay).Before(deadline):
			giveUp = "retry bound passed"
		}
		if giveUp != "" {
			// Logged before it is counted: whoever sees the count (a
			// test, a scrape) finds the reason in the log.
			c.log.Warn("redis adapter: publications dropped", "dropped", len(left), "attempts", attempts,
				"retried_for", now.Sub(firstFailure).Round(time.Millisecond), "err", err, "reason", giveUp)
			c.stats.dropped.Add(uint64(len(left)))
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-stopping:
			// Close: what is still failing gets drainTimeout at most.
			t.Stop()
			stopping = nil
			deadline = minTime(deadline, time.Now().Add(drainTimeout))
		case <-ctx.Done():
			t.Stop()
		}
		delay = min(2*delay, time.Second)
		batch = left
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// send publishes batch in one pipeline (or one command), bounded by
// publishTimeout, and returns the publications that failed, in order, and
// the last error.
func (c *Cluster) send(ctx context.Context, batch []publication) ([]publication, error) {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	client := redisconn.Publisher(ctx, c.client, c.opts.Prefix) // one node of a cluster: in order
	if len(batch) == 1 {
		if err := client.Publish(ctx, batch[0].channel, batch[0].payload).Err(); err != nil {
			return batch, err
		}
		return nil, nil
	}
	cmds, perr := client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, pub := range batch {
			p.Publish(ctx, pub.channel, pub.payload)
		}
		return nil
	})
	if len(cmds) != len(batch) {
		return batch, errors.New("pipeline not sent")
	}
	if perr != nil && !slices.ContainsFunc(cmds, func(cmd redis.Cmder) bool { return cmd.Err() != nil }) {
		// go-redis could not get a connection (a refused dial, a
		// connection closed during its setup) and returns the error
		// without marking the commands: none was sent.
		return batch, perr
	}
	var (
		left []publication
		err  error
	)
	for i, cmd := range cmds {
		if cmd.Err() != nil {
			left = append(left, batch[i])
			err = cmd.Err()
		}
	}
	return left, err
}

// subState is the state of one namespace adapter's subscriptions.
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
	subs      map[*nsAdapter]subState
	pubFailed bool
	down      bool
	downSince time.Time
	everUp    bool
}

func (h *health) setSub(a *nsAdapter, s subState, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[a] = s
	if s == subUp {
		// A confirmed subscription proves Redis answers again.
		h.pubFailed = false
	}
	h.update(err)
}

func (h *health) removeSub(a *nsAdapter) {
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

// isDown reports whether an outage has been seen and not ended.
func (h *health) isDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down
}

// isUp reports whether every subscription is confirmed and the publisher
// is not failing.
func (h *health) isUp() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pubFailed || len(h.subs) == 0 {
		return false
	}
	for _, s := range h.subs {
		if s != subUp {
			return false
		}
	}
	return true
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

// quietRedisLogs sends go-redis's own log lines (one per failed dial during
// an outage) to slog at debug level: the adapter logs the outage once.
func quietRedisLogs() { redisconn.QuietLogs() }
