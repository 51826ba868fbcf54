package redisadapter

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// adapter is the adapter of one namespace. It embeds the library's
// in-memory adapter (the session-aware one when connection state recovery
// is on), which keeps the rooms and delivers to local clients, and adds the
// Redis side: Broadcast also publishes, and one goroutine (run) receives the
// other nodes' broadcasts and requests.
type adapter struct {
	socket.Adapter

	cluster *Cluster
	uid     string
	ch      channels

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{} // closed at the first subscription or failure
	once   sync.Once

	mu     sync.Mutex
	pubsub *redis.PubSub

	requests    types.Map[string, *pendingRequest]
	ackRequests types.Map[string, *ackRequest]
}

var _ socket.Adapter = (*adapter)(nil)

func newAdapter(c *Cluster, nsp socket.Namespace) *adapter {
	a := &adapter{cluster: c}
	if nsp.Server().Opts().ConnectionStateRecovery() != nil {
		a.Adapter = socket.MakeSessionAwareAdapter()
	} else {
		a.Adapter = socket.MakeAdapter()
	}
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

// Construct subscribes and waits, up to StartupWait, until Redis has
// confirmed the subscriptions, so that a server does not accept clients
// before it hears the cluster.
func (a *adapter) Construct(nsp socket.Namespace) {
	a.Adapter.Construct(nsp)
	a.uid = newUID()
	a.ch = newChannels(a.cluster.opts.Prefix, nsp.Name(), a.uid)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.done = make(chan struct{})
	a.ready = make(chan struct{})
	a.cluster.health.setSub(a, subConnecting, nil)
	go a.run()
	select {
	case <-a.ready:
	case <-time.After(a.cluster.opts.StartupWait):
	}
}

// newUID is a node id as Node's uid2(6): 8 URL-safe characters.
func newUID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Close stops the subscriptions. The socket library calls it when the
// server closes.
func (a *adapter) Close() {
	a.cancel()
	a.mu.Lock()
	if a.pubsub != nil {
		_ = a.pubsub.Close()
	}
	a.mu.Unlock()
	<-a.done
	a.cluster.health.removeSub(a)
	a.Adapter.Close()
}

// Broadcast delivers to the local clients and queues the message for the
// other nodes, unless it is flagged local.
func (a *adapter) Broadcast(packet *parser.Packet, opts *socket.BroadcastOptions) {
	packet.Nsp = a.Nsp().Name()
	if !isLocal(opts) {
		a.publishBroadcast(packet, opts)
	}
	a.Adapter.Broadcast(packet, opts)
}

func (a *adapter) publishBroadcast(packet *parser.Packet, opts *socket.BroadcastOptions) {
	msg, err := encodeBroadcast(a.uid, packet, opts)
	if err != nil {
		a.cluster.stats.dropped.Add(1)
		a.cluster.log.Warn("redis adapter: cannot encode broadcast", "nsp", packet.Nsp, "err", err)
		return
	}
	var rooms []string
	if opts != nil {
		rooms = roomList(opts.Rooms)
	}
	a.cluster.enqueue(a.ch.broadcastChannel(rooms), msg)
}

func isLocal(opts *socket.BroadcastOptions) bool {
	return opts != nil && opts.Flags != nil && opts.Flags.Local
}

// run keeps the namespace subscribed: it (re)connects with back-off and
// hands every message to onBroadcast or onRequest, one at a time, so the
// broadcasts of a node are delivered in the order it published them.
func (a *adapter) run() {
	defer close(a.done)
	delay := a.cluster.opts.ReconnectDelay
	for {
		wasUp, err := a.session()
		if a.ctx.Err() != nil {
			return
		}
		a.cluster.health.setSub(a, subDown, err)
		a.markReady()
		if wasUp {
			delay = a.cluster.opts.ReconnectDelay
		}
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, a.cluster.opts.ReconnectDelayMax)
	}
}

func (a *adapter) markReady() { a.once.Do(func() { close(a.ready) }) }

// session runs one subscription connection until it fails. It reports
// whether every subscription had been confirmed.
func (a *adapter) session() (wasUp bool, err error) {
	ps := a.cluster.client.Subscribe(a.ctx)
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
	check := a.cluster.opts.HealthCheck
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
					a.cluster.health.setSub(a, subUp, nil)
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
// a broadcast to everyone) and skips rooms that have no local member.
func (a *adapter) onBroadcast(channel, payload string) {
	room, ok := a.ch.roomOf(channel)
	if !ok {
		return
	}
	if room != "" {
		if _, ok := a.Rooms().Load(socket.Room(room)); !ok {
			return
		}
	}
	msg, err := decodeBroadcast([]byte(payload))
	if err != nil {
		a.cluster.log.Debug("redis adapter: ignoring malformed broadcast", "channel", channel, "err", err)
		return
	}
	if msg.uid == a.uid || msg.packet.Nsp != a.Nsp().Name() {
		return
	}
	a.cluster.stats.received.Add(1)
	a.Adapter.Broadcast(msg.packet, msg.opts)
}

// ServerCount is the number of nodes subscribed to the namespace's request
// channel, this one included, as in Node.
func (a *adapter) ServerCount() int64 {
	ctx, cancel := context.WithTimeout(a.ctx, a.cluster.opts.RequestsTimeout)
	defer cancel()
	res, err := a.cluster.client.PubSubNumSub(ctx, a.ch.request).Result()
	if err != nil {
		return 1
	}
	return max(res[a.ch.request], 1)
}
