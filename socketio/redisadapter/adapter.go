package redisadapter

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/chatio/socketio-chat/internal/redisconn"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/redis/go-redis/v9"
)

// nsAdapter is the adapter of one namespace: it publishes the namespace's
// broadcasts and requests (through the Cluster's queue) and, on a goroutine
// of its own (run), receives those of the other nodes.
//
// Goroutines: Broadcast runs on a broadcaster's goroutine, in the order of
// the server's order lock (after it), and only queues.
// run receives every message of the namespace's channels, one at a time, in
// the order Redis delivers them: it hands the other nodes' broadcasts to
// Namespace.Deliver and answers their requests (joins and leaves in order
// with the broadcasts), except those that run application code, which may
// wait for the cluster itself: server-side events and disconnections (their
// handlers) run on a second goroutine (runTasks), one at a time, in order.
type nsAdapter struct {
	c     *Cluster
	nsp   *socketio.Namespace
	local socketio.LocalNamespace // what the other nodes do on this node
	name  string
	uid   string
	ch    channels

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run and events returned
	ready  chan struct{} // closed at the first subscription or failure
	once   sync.Once
	closed sync.Once

	mu     sync.Mutex
	pubsub *redis.PubSub

	tasks chan func() // requests that run application code
	dec   decoder     // run's

	reqMu    sync.Mutex
	requests map[string]*pendingRequest // this node's requests waiting for answers
	acks     map[string]*ackRequest     // this node's broadcasts with acks
}

var _ socketio.NamespaceAdapter = (*nsAdapter)(nil)

// taskQueue bounds the requests waiting for runTasks; beyond, they are
// dropped (and logged).
const taskQueue = 1024

func newNSAdapter(c *Cluster, local socketio.LocalNamespace) *nsAdapter {
	nsp := local.Namespace()
	a := &nsAdapter{
		c:        c,
		nsp:      nsp,
		local:    local,
		name:     nsp.Name(),
		uid:      newUID(),
		done:     make(chan struct{}),
		ready:    make(chan struct{}),
		tasks:    make(chan func(), taskQueue),
		requests: make(map[string]*pendingRequest),
		acks:     make(map[string]*ackRequest),
	}
	a.ch = newChannels(c.opts.Prefix, a.name, a.uid)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

func (a *nsAdapter) start() {
	a.c.health.setSub(a, subConnecting, nil)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.run() }()
	go func() { defer wg.Done(); a.runTasks() }()
	go func() { wg.Wait(); close(a.done) }()
}

// Close stops the subscriptions. The socketio server calls it when it
// closes, and the Cluster when it does; later calls do nothing.
func (a *nsAdapter) Close() error {
	a.closed.Do(func() {
		a.cancel()
		a.mu.Lock()
		if a.pubsub != nil {
			_ = a.pubsub.Close()
		}
		a.mu.Unlock()
		<-a.done
		a.c.forget(a)
	})
	return nil
}

// Broadcast queues p for the other nodes. The namespace's broadcasts wait
// for it: it neither blocks nor encodes (the publishing goroutine encodes).
func (a *nsAdapter) Broadcast(p *socketio.BroadcastPacket) {
	if p.Opts.Local {
		return
	}
	a.c.enqueue(publication{a: a, p: p})
}

// run keeps the namespace subscribed: it (re)connects with back-off and
// handles every message, one at a time, so that the broadcasts of a node
// are delivered in the order it published them.
func (a *nsAdapter) run() {
	delay := a.c.opts.ReconnectDelay
	everUp := false
	for {
		wasUp, err := a.session(&everUp)
		if a.ctx.Err() != nil {
			return
		}
		a.c.health.setSub(a, subDown, err)
		a.markReady()
		if wasUp {
			delay = a.c.opts.ReconnectDelay
		}
		t := time.NewTimer(delay)
		select {
		case <-a.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, a.c.opts.ReconnectDelayMax)
	}
}

func (a *nsAdapter) markReady() { a.once.Do(func() { close(a.ready) }) }

// task hands fn to runTasks, without waiting.
func (a *nsAdapter) task(what string, fn func()) {
	select {
	case a.tasks <- fn:
	default:
		a.c.log.Warn("redis adapter: too many requests waiting for their handlers; dropped one",
			"nsp", a.name, "request", what)
	}
}

// session runs one subscription connection until it fails. It reports
// whether every subscription had been confirmed.
func (a *nsAdapter) session(everUp *bool) (wasUp bool, err error) {
	ps := a.c.client.Subscribe(a.ctx)
	a.mu.Lock()
	if a.ctx.Err() != nil {
		a.mu.Unlock()
		_ = ps.Close()
		return false, a.ctx.Err()
	}
	a.pubsub = ps
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.pubsub = nil
		a.mu.Unlock()
		_ = ps.Close()
	}()

	if err := ps.PSubscribe(a.ctx, a.ch.pattern()); err != nil {
		return false, err
	}
	if err := ps.Subscribe(a.ctx, a.ch.request, a.ch.response, a.ch.specificResponse); err != nil {
		return false, err
	}
	pending := 4 // confirmations: the pattern and three channels
	pinged := false
	check := a.c.opts.HealthCheck
	for {
		msg, err := ps.ReceiveTimeout(a.ctx, check)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged && a.ctx.Err() == nil {
				if err := ps.Ping(a.ctx); err != nil {
					return wasUp, err
				}
				pinged = true
				continue
			}
			if pinged && errors.As(err, &ne) && ne.Timeout() {
				err = errors.New("no answer to ping: " + err.Error())
			}
			return wasUp, err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "psubscribe" {
				pending--
				if pending == 0 {
					wasUp = true
					if *everUp {
						a.c.stats.reconnects.Add(1)
					}
					*everUp = true
					a.c.health.setSub(a, subUp, nil)
					a.markReady()
				}
			}
		case *redis.Message:
			if m.Pattern != "" {
				a.onBroadcast(m.Channel, m.Payload)
			} else {
				a.onRequest(m.Channel, []byte(m.Payload))
			}
		case *redis.Pong:
		}
	}
}

// onBroadcast delivers another node's broadcast to the local clients. Like
// Node's adapter, it accepts the namespace's own channel (the empty room:
// a broadcast to everyone). Unlike Node, it does not skip a room that has no
// local member: the namespace finds no recipient then, but with connection
// state recovery it keeps the broadcast for the room's disconnected
// sockets.
func (a *nsAdapter) onBroadcast(channel, payload string) {
	if _, ok := a.ch.roomOf(channel); !ok {
		return
	}
	d := &a.dec
	d.Reset([]byte(payload))
	p, err := d.broadcast(a.uid)
	if err != nil {
		a.c.log.Debug("redis adapter: ignoring a broadcast", "channel", channel, "err", err)
		return
	}
	if p == nil || p.Nsp != a.name {
		return // our own, or another namespace's
	}
	p.ID = -1
	p.Opts.Local = false
	a.c.stats.received.Add(1)
	a.local.Deliver(p)
}

// runTasks runs the requests that run application code, in order.
func (a *nsAdapter) runTasks() {
	for {
		select {
		case fn := <-a.tasks:
			fn()
		case <-a.ctx.Done():
			return
		}
	}
}

// ServerCount is the number of nodes subscribed to the namespace's request
// channel, this one included, as in Node (on a Redis Cluster, summed over
// its nodes: each knows only its own subscribers).
func (a *nsAdapter) ServerCount(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, a.c.opts.RequestsTimeout)
	defer cancel()
	n, err := redisconn.NumSub(ctx, a.c.client, a.ch.request, false)
	if err != nil {
		return 1, err
	}
	return int(max(n, 1)), nil
}
