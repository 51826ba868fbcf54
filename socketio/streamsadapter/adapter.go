// Package streamsadapter is a socketio.Adapter on Redis Streams, wire
// compatible with Node's @socket.io/redis-streams-adapter 0.3.1: Go and
// Node nodes share one stream. Unlike Redis pub/sub, the stream keeps what
// is published, so a node that lost Redis resumes reading where it
// stopped, broadcasts made during an outage are kept and published when
// Redis is back, and, with connection state recovery, sessions are kept in
// Redis and a client recovers on any node (see docs/CLUSTER.md).
package streamsadapter

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/internal/redisconn"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/redis/go-redis/v9"
)

// Options configures a Cluster. The zero value of each field means its
// default, which is Node's.
type Options struct {
	// URL is the Redis server: redis://[user:pass@]host:port/db, rediss://
	// or unix://; or a Redis Cluster: a comma-separated list of its nodes'
	// URLs (see internal/redisconn). On a cluster each stream is a key of
	// its own (a namespace's stream is read with a one-key XREAD), sessions
	// are keys, and the requests use classic pub/sub, which a cluster
	// relays to every node.
	URL string
	// StreamName is the stream (Node's streamName). Defaults to "socket.io".
	StreamName string
	// StreamCount spreads the namespaces over this many streams,
	// "<name>-<i>", by a hash of the namespace name, as Node. Defaults to 1.
	StreamCount int
	// ChannelPrefix starts the pub/sub channels of the requests (Node's
	// channelPrefix). Defaults to "socket.io".
	ChannelPrefix string
	// MaxLen trims the stream to about this many entries (XADD MAXLEN ~).
	// Defaults to 10000.
	MaxLen int64
	// ReadCount is the most entries one XREAD returns. Defaults to 100.
	ReadCount int64
	// BlockTime is how long one XREAD waits for entries. Defaults to 5s.
	BlockTime time.Duration
	// SessionKeyPrefix starts the keys of the saved sessions. Defaults to "sio:session:".
	SessionKeyPrefix string
	// MaxPending bounds the messages kept while Redis cannot be reached
	// (or is slower than the node). Past it, new messages are dropped,
	// counted (Stats.Dropped) and logged once per outage; those kept are
	// published, in order, when Redis is back. Defaults to 10000.
	MaxPending int
	// RequestsTimeout bounds requests that wait for the other nodes
	// (FetchSockets, ServerSideEmit with an ack). Defaults to 5s, as Node.
	RequestsTimeout time.Duration
	// ReconnectDelay and ReconnectDelayMax bound the back-off between two
	// attempts after a Redis failure. Default to 50ms and 1s.
	ReconnectDelay, ReconnectDelayMax time.Duration
	// StartupWait bounds how long a new namespace waits for its stream
	// before the server goes on without it. Defaults to 3s.
	StartupWait time.Duration
	// Ordered makes every node deliver its own broadcasts from the stream,
	// in the stream's order, like the others' (the namespace adapters are
	// socketio.OrderedAdapters: the server does not deliver a broadcast
	// when it is made), so every client of every node sees one order
	// (-cluster-order). It is always on for a namespace with connection
	// state recovery (the offsets are the entry ids, known once an entry
	// is added).
	Ordered bool
	// Log receives the outage and recovery lines. Defaults to slog.Default().
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.StreamName == "" {
		o.StreamName = "socket.io"
	}
	if o.StreamCount <= 0 {
		o.StreamCount = 1
	}
	if o.ChannelPrefix == "" {
		o.ChannelPrefix = "socket.io"
	}
	if o.MaxLen <= 0 {
		o.MaxLen = 10000
	}
	if o.ReadCount <= 0 {
		o.ReadCount = 100
	}
	if o.BlockTime <= 0 {
		o.BlockTime = 5 * time.Second
	}
	if o.SessionKeyPrefix == "" {
		o.SessionKeyPrefix = "sio:session:"
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 10000
	}
	if o.RequestsTimeout <= 0 {
		o.RequestsTimeout = 5 * time.Second
	}
	if o.ReconnectDelay <= 0 {
		o.ReconnectDelay = 50 * time.Millisecond
	}
	if o.ReconnectDelayMax < o.ReconnectDelay {
		o.ReconnectDelayMax = max(time.Second, o.ReconnectDelay)
	}
	if o.StartupWait <= 0 {
		o.StartupWait = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Cluster is one server's connection to the stream(s): the
// socketio.Adapter given to socketio.Options.Adapter.
//
// Goroutines: one publisher (the outbox: every XADD, session SET and
// PUBLISH of the node, in order); per stream, a fetcher (XREAD) and a
// dispatcher (delivers the entries one at a time and serves the session
// recoveries between two entries); per namespace, a subscriber (the
// requests over pub/sub).
type Cluster struct {
	opts   Options
	log    *slog.Logger
	client redis.UniversalClient // a *redis.Client, or a *redis.ClusterClient on a Redis Cluster
	addr   string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	out outbox

	mu      sync.Mutex
	nsps    map[string]*nsAdapter
	readers map[string]*reader

	health health
	stats  counters
}

var _ socketio.Adapter = (*Cluster)(nil)

// Stats counts what a Cluster did since it was created.
type Stats struct {
	Published  uint64 // stream entries added and messages published
	Received   uint64 // stream entries delivered to local clients (own ones included when ordered)
	Dropped    uint64 // messages dropped: MaxPending passed, or refused by Redis
	Reconnects uint64 // reads resumed after a Redis failure
	Pending    int    // messages waiting to be published now
	Sessions   int    // sessions kept alive in Redis by this node
}

type counters struct{ published, received, dropped, reconnects atomic.Uint64 }

// New checks the options and starts the publisher. It does not wait for
// Redis: each namespace waits for its stream, up to StartupWait.
func New(opts Options) (*Cluster, error) {
	// RESP2, as Node's redis client (see redisadapter); a command is sent
	// once: the publisher resends what Redis did not take.
	client, addr, err := redisconn.Open(opts.URL, "socket.io-go-streams", redisconn.NoRetry())
	if err != nil {
		return nil, err
	}
	opts.defaults()
	c := &Cluster{
		opts:    opts,
		log:     opts.Log,
		client:  client,
		addr:    addr,
		nsps:    make(map[string]*nsAdapter),
		readers: make(map[string]*reader),
	}
	c.health = health{log: opts.Log, addr: addr}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.out.init(c)
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.out.run() }()
	return c, nil
}

// Namespace builds the adapter of a namespace, starts reading its stream
// and subscribing to its channels, and waits up to StartupWait for the
// stream. The socketio server calls it.
func (c *Cluster) Namespace(local socketio.LocalNamespace) (socketio.NamespaceAdapter, error) {
	if c.closed.Load() {
		return nil, errors.New("streams adapter: closed")
	}
	a := newNSAdapter(c, local)
	c.mu.Lock()
	c.nsps[a.name] = a
	r := c.readers[a.stream]
	if r == nil {
		r = newReader(c, a.stream)
		c.readers[a.stream] = r
		c.wg.Add(2)
		go func() { defer c.wg.Done(); r.fetch() }()
		go func() { defer c.wg.Done(); r.dispatch() }()
	}
	c.mu.Unlock()
	a.r = r
	a.start()
	t := time.NewTimer(c.opts.StartupWait)
	defer t.Stop()
	select {
	case <-r.ready:
	case <-t.C:
	}
	if a.window > 0 {
		return &sessionNSAdapter{a}, nil
	}
	return a, nil
}

// adapter returns the adapter of the namespace name, or nil.
func (c *Cluster) adapter(name string) *nsAdapter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nsps[name]
}

// streamStarted reports whether this node reads the stream from a known
// position (streams no namespace reads are written freely).
func (c *Cluster) streamStarted(stream string) bool {
	c.mu.Lock()
	r := c.readers[stream]
	c.mu.Unlock()
	return r == nil || r.started.Load()
}

// Stats returns the counters.
func (c *Cluster) Stats() Stats {
	c.mu.Lock()
	sessions := 0
	for _, a := range c.nsps {
		a.smu.Lock()
		sessions += len(a.live)
		a.smu.Unlock()
	}
	c.mu.Unlock()
	return Stats{
		Published:  c.stats.published.Load(),
		Received:   c.stats.received.Load(),
		Dropped:    c.stats.dropped.Load(),
		Reconnects: c.stats.reconnects.Load(),
		Pending:    c.out.len(),
		Sessions:   sessions,
	}
}

// Up reports whether the node reaches Redis: its reads and its last
// publication succeeded.
func (c *Cluster) Up() bool { return c.health.isUp() }

// Close stops reading, publishes what is pending (for up to 2s), then
// closes the Redis client. Later calls do nothing.
func (c *Cluster) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.mu.Lock()
	nsps := make([]*nsAdapter, 0, len(c.nsps))
	for _, a := range c.nsps {
		nsps = append(nsps, a)
	}
	c.mu.Unlock()
	for _, a := range nsps {
		_ = a.Close()
	}
	c.out.drain(2 * time.Second)
	c.cancel()
	err := c.client.Close() // ends the XREADs blocked in Redis
	c.wg.Wait()
	return err
}

// health is the state of the node's Redis connection, from the readers
// and the publisher; it logs its changes: one warning when Redis is lost,
// one line when it is back.
type health struct {
	log  *slog.Logger
	addr string

	mu        sync.Mutex
	readFail  int  // readers failing now
	pubFail   bool // the last publication failed
	everUp    bool
	down      bool
	downSince time.Time
}

func (h *health) set(readDelta int, pubFail *bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.readFail += readDelta
	if pubFail != nil {
		h.pubFail = *pubFail
	}
	down := h.readFail > 0 || h.pubFail
	switch {
	case down && !h.down:
		h.down, h.downSince = true, time.Now()
		h.log.Warn("redis unavailable: keeping this node's broadcasts until it is back",
			"redis", h.addr, "err", err)
	case !down && h.down:
		h.down = false
		h.log.Info("redis available again: publishing what was kept",
			"redis", h.addr, "down_for", time.Since(h.downSince).Round(time.Millisecond))
	}
	if !down {
		h.everUp = true
	}
}

func (h *health) isUp() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.everUp && !h.down
}

func (h *health) isDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down
}

// isRedisError reports whether err is an error reply of Redis (the command
// was refused: retrying it would not help), not a connection failure.
func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && err != redis.Nil && !isConnErr(err)
}

func isConnErr(err error) bool {
	s := err.Error()
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "MOVED ", "ASK "} {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}

// backoff waits d (or until ctx ends) and returns the next delay.
func (c *Cluster) backoff(ctx context.Context, d time.Duration) (time.Duration, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return d, false
	case <-t.C:
	}
	return min(2*d, c.opts.ReconnectDelayMax), true
}
