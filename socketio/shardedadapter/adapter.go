package shardedadapter

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/internal/redisconn"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/chatio/socketio-chat/socketio/redisadapter"
	"github.com/redis/go-redis/v9"
)

// Options configures an Adapter. The zero value of each field means its
// default.
type Options struct {
	// URL is a Redis 7 server (redis://host:port) or a Redis Cluster: a
	// comma-separated list of its nodes' URLs (see redisadapter.Options.URL).
	URL string
	// Prefix is Node's channelPrefix; the same on every node. Defaults to
	// "socket.io".
	Prefix string
	// Log receives the outage and recovery lines. Defaults to slog.Default().
	Log *slog.Logger
	// PublishQueue bounds the messages waiting to be published; beyond it
	// the remote copy of a broadcast is dropped and counted (the local
	// delivery happens). Defaults to 4096.
	PublishQueue int
	// RequestsTimeout bounds FetchSockets and ServerSideEmit with an ack.
	// Defaults to 5s, as in Node.
	RequestsTimeout time.Duration
	// HealthCheck is the period of the PING of every Redis node that
	// tells Up. Defaults to 1s.
	HealthCheck time.Duration
	// StartupWait bounds how long a new namespace waits for its first
	// subscriptions. Defaults to 3s.
	StartupWait time.Duration
}

// Adapter is a server's connection to Redis, the socketio.Adapter: one
// client (single or cluster) shared by the namespaces, one publishing
// goroutine and one health goroutine.
type Adapter struct {
	opts   Options
	log    *slog.Logger
	client redis.UniversalClient
	addr   string

	queue   chan publication
	stop    chan struct{}
	stopped chan struct{} // publisher and health check returned
	once    sync.Once

	mu   sync.Mutex
	nsps map[*nsAdapter]struct{}

	up                                      atomic.Bool
	failing                                 atomic.Bool // the publisher's last publication failed
	published, received, dropped, reconnect atomic.Uint64
}

var _ socketio.Adapter = (*Adapter)(nil)

// publication is a payload for a channel, or a broadcast (p set) that the
// publisher encodes first.
type publication struct {
	a       *nsAdapter
	channel string
	payload []byte
	p       *socketio.BroadcastPacket
}

// New checks the options and starts the publisher and the health check.
func New(opts Options) (*Adapter, error) {
	if opts.Prefix == "" {
		opts.Prefix = "socket.io"
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.PublishQueue <= 0 {
		opts.PublishQueue = 4096
	}
	if opts.RequestsTimeout <= 0 {
		opts.RequestsTimeout = 5 * time.Second
	}
	if opts.HealthCheck <= 0 {
		opts.HealthCheck = time.Second
	}
	if opts.StartupWait <= 0 {
		opts.StartupWait = 3 * time.Second
	}
	client, addr, err := redisconn.Open(opts.URL, "socket.io-go-sharded")
	if err != nil {
		return nil, err
	}
	c := &Adapter{
		opts:    opts,
		log:     opts.Log,
		client:  client,
		addr:    addr,
		queue:   make(chan publication, opts.PublishQueue),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		nsps:    make(map[*nsAdapter]struct{}),
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.publishLoop() }()
	go func() { defer wg.Done(); c.healthLoop() }()
	go func() { wg.Wait(); close(c.stopped) }()
	return c, nil
}

// Namespace builds the adapter of a namespace and waits up to StartupWait
// for its subscriptions. The socketio server calls it.
func (c *Adapter) Namespace(local socketio.LocalNamespace) (socketio.NamespaceAdapter, error) {
	select {
	case <-c.stop:
		return nil, errors.New("sharded adapter: closed")
	default:
	}
	a := newNSAdapter(c, local)
	c.mu.Lock()
	c.nsps[a] = struct{}{}
	c.mu.Unlock()
	a.start()
	t := time.NewTimer(c.opts.StartupWait)
	defer t.Stop()
	select {
	case <-a.ready:
	case <-t.C:
		c.log.Warn("sharded adapter: namespace not subscribed yet; going on", "nsp", a.name, "redis", c.addr)
	}
	return a, nil
}

// Stats returns the counters, in the pub/sub adapter's form (Reconnects
// counts the health check's recoveries).
func (c *Adapter) Stats() redisadapter.Stats {
	return redisadapter.Stats{
		Published:  c.published.Load(),
		Received:   c.received.Load(),
		Dropped:    c.dropped.Load(),
		Reconnects: c.reconnect.Load(),
		Queued:     len(c.queue),
	}
}

// Up reports whether every Redis node answered the last health check and
// every namespace's first subscriptions were confirmed.
func (c *Adapter) Up() bool {
	if !c.up.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for a := range c.nsps {
		if !a.subscribed.Load() {
			return false
		}
	}
	return true
}

// Close closes the namespaces' adapters, publishes what is queued (for up
// to 2s) and closes the client. Later calls do nothing.
func (c *Adapter) Close() error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		list := make([]*nsAdapter, 0, len(c.nsps))
		for a := range c.nsps {
			list = append(list, a)
		}
		c.mu.Unlock()
		for _, a := range list {
			_ = a.Close()
		}
		close(c.stop)
		<-c.stopped
		err = c.client.Close()
	})
	return err
}

func (c *Adapter) forget(a *nsAdapter) {
	c.mu.Lock()
	delete(c.nsps, a)
	c.mu.Unlock()
}

// enqueue hands p to the publisher without blocking; a full queue drops it.
func (c *Adapter) enqueue(p publication) {
	select {
	case <-c.stop:
		c.dropped.Add(1)
		return
	default:
	}
	select {
	case c.queue <- p:
	default:
		c.dropped.Add(1)
		c.log.Debug("sharded adapter: publish queue full; dropped a message", "reason", "publish queue full")
	}
}

// publishLoop publishes the queue in order, in pipelines of up to 256
// (a cluster client sends each SPUBLISH to its channel's shard). A
// publication that fails is dropped and counted: sharded pub/sub keeps
// nothing, as in Node.
func (c *Adapter) publishLoop() {
	batch := make([]publication, 0, 256)
	for {
		select {
		case p := <-c.queue:
			batch = append(batch[:0], p)
		case <-c.stop:
			c.drain()
			return
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case p := <-c.queue:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		c.send(context.Background(), batch)
	}
}

func (c *Adapter) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for {
		select {
		case p := <-c.queue:
			c.send(ctx, []publication{p})
		default:
			return
		}
	}
}

func (c *Adapter) send(ctx context.Context, batch []publication) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cmds, err := c.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i := range batch {
			pub := &batch[i]
			if pub.p != nil {
				payload, err := encodeBroadcast(pub.a.uid, pub.p, "")
				if err != nil {
					c.dropped.Add(1)
					c.log.Warn("sharded adapter: cannot encode a broadcast", "nsp", pub.p.Nsp, "event", pub.p.Event, "err", err)
					continue
				}
				pub.channel, pub.payload = pub.a.broadcastChannel(pub.p.Opts), payload
			}
			pipe.SPublish(ctx, pub.channel, pub.payload)
		}
		return nil
	})
	failed := 0
	for _, cmd := range cmds {
		if cmd.Err() != nil {
			failed++
			err = cmd.Err()
		}
	}
	if err != nil && failed == 0 {
		// go-redis could not get a connection (a refused dial, a
		// connection closed during its setup) and returns the error
		// without marking the commands: none was sent.
		failed = len(cmds)
	}
	c.published.Add(uint64(len(cmds) - failed))
	if failed > 0 {
		c.dropped.Add(uint64(failed))
		if !c.failing.Swap(true) { // once per streak of failures
			c.log.Warn("sharded adapter: publications fail; dropping the remote copies until Redis answers",
				"count", failed, "redis", c.addr, "err", err)
		}
	} else if len(cmds) > 0 && c.failing.Swap(false) {
		c.log.Info("sharded adapter: publications succeed again", "redis", c.addr)
	}
}

// healthLoop pings every node each HealthCheck and logs the changes.
func (c *Adapter) healthLoop() {
	t := time.NewTicker(c.opts.HealthCheck)
	defer t.Stop()
	everUp, down := false, time.Time{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.HealthCheck)
		err := redisconn.Ping(ctx, c.client)
		cancel()
		switch {
		case err == nil && !c.up.Load():
			c.up.Store(true)
			if everUp {
				c.reconnect.Add(1)
				c.log.Info("sharded adapter: Redis is back", "redis", c.addr, "down_for", time.Since(down).Round(time.Millisecond))
			}
			everUp = true
		case err != nil && (c.up.Load() || down.IsZero()):
			c.up.Store(false)
			down = time.Now()
			c.log.Warn("sharded adapter: Redis unreachable; broadcasts reach this node's clients only", "redis", c.addr, "err", err)
		}
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}
