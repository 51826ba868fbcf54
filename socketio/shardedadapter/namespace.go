package shardedadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/internal/redisconn"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/chatio/socketio-chat/socketio/redisadapter"
	"github.com/redis/go-redis/v9"
)

// nsAdapter is one namespace's side of the Adapter.
//
// Channels, as Node's ShardedRedisAdapter with subscriptionMode "dynamic":
// prefix#nsp# (every message but the answers and the room broadcasts),
// prefix#nsp#uid# (this node's answers), and prefix#nsp#room# for each
// room that has a local member and is not a socket's own room: a
// broadcast without ack to exactly one room that does not look like a
// socket id (20 characters) goes there.
//
// Goroutines: Broadcast and the requests run on their callers' goroutines
// and only queue (the Adapter's publisher publishes). The socketio hooks
// (Connect, Disconnect, Join, Leave, on the goroutines socketio names)
// count the members of each room under roomMu and wake subscriber, which
// alone subscribes and unsubscribes the room channels. One forwarding
// goroutine per shard connection (go-redis's PubSub.Channel, which pings
// and reconnects) hands messages to run, which handles them one at a time;
// handlers of application code (server-side events, disconnections) run on
// runTasks, in order.
type nsAdapter struct {
	c     *Adapter
	nsp   *socketio.Namespace
	local socketio.LocalNamespace // what the other nodes do on this node
	name  string
	uid   string

	main, response string // prefix#nsp#, prefix#nsp#uid#

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{} // closed when the two channels are first subscribed
	once   sync.Once
	closed sync.Once

	subscribed atomic.Bool // main and response channels subscribed now

	in    chan delivery
	tasks chan func()

	roomMu sync.Mutex
	counts map[string]int      // local members per room (public rooms)
	dirty  map[string]struct{} // rooms whose subscription may have to change
	wake   chan struct{}

	// subscriber's
	shards map[string]*shardConn // by shard address ("" on a single Redis)
	failed chan shardFailure     // readers to subscriber: a connection failed

	reqMu    sync.Mutex
	requests map[string]*pending
	acks     map[string]*ackRequest
}

type delivery struct{ channel, payload string }

type pending struct {
	want, got int
	args      []socketio.Arg
	sockets   []*socketio.RemoteSocket
	done      chan struct{}
}

type ackRequest struct {
	clientCount func(int)
	ack         func(socketio.Arg)
}

var _ socketio.NamespaceAdapter = (*nsAdapter)(nil)

func newNSAdapter(c *Adapter, local socketio.LocalNamespace) *nsAdapter {
	nsp := local.Namespace()
	a := &nsAdapter{
		c:        c,
		nsp:      nsp,
		local:    local,
		name:     nsp.Name(),
		uid:      newUID(),
		ready:    make(chan struct{}),
		in:       make(chan delivery, 1024),
		tasks:    make(chan func(), 1024),
		counts:   make(map[string]int),
		dirty:    make(map[string]struct{}),
		wake:     make(chan struct{}, 1),
		shards:   make(map[string]*shardConn),
		failed:   make(chan shardFailure),
		requests: make(map[string]*pending),
		acks:     make(map[string]*ackRequest),
	}
	a.main = c.opts.Prefix + "#" + a.name + "#"
	a.response = a.main + a.uid + "#"
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

func (a *nsAdapter) dynamicChannel(room string) string { return a.main + room + "#" }

// broadcastChannel is Node's computeChannel for a broadcast without ack.
func (a *nsAdapter) broadcastChannel(o socketio.BroadcastOptions) string {
	if r := unique(o.Rooms); len(r) == 1 && !looksLikeASocketID(r[0]) {
		return a.dynamicChannel(r[0])
	}
	return a.main
}

func (a *nsAdapter) start() {
	a.nsp.Server().AddHooks(&socketio.Hooks{
		Connect: func(s *socketio.Socket) {
			for _, r := range s.Rooms() {
				if r != s.ID() {
					a.roomChanged(s, r, +1)
				}
			}
		},
		Disconnect: func(s *socketio.Socket, _ string, _ error) {
			for _, r := range s.Rooms() {
				if r != s.ID() {
					a.roomChanged(s, r, -1)
				}
			}
		},
		Join:  func(s *socketio.Socket, r string) { a.roomChanged(s, r, +1) },
		Leave: func(s *socketio.Socket, r string) { a.roomChanged(s, r, -1) },
	})
	a.wg.Add(3)
	go func() { defer a.wg.Done(); a.subscriber() }()
	go func() { defer a.wg.Done(); a.run() }()
	go func() { defer a.wg.Done(); a.runTasks() }()
}

// roomChanged counts a member more or less in room, on the hook's
// goroutine, and wakes the subscriber. A socket's own room is not a
// public one (Node's shouldUseASeparateNamespace).
func (a *nsAdapter) roomChanged(s *socketio.Socket, room string, delta int) {
	if s.Namespace() != a.nsp || room == s.ID() || a.ctx.Err() != nil {
		return
	}
	a.roomMu.Lock()
	a.counts[room] += delta
	if a.counts[room] == 0 {
		delete(a.counts, room)
	}
	a.dirty[room] = struct{}{}
	a.roomMu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Close stops the subscriptions; later calls do nothing.
func (a *nsAdapter) Close() error {
	a.closed.Do(func() {
		a.cancel()
		a.wg.Wait()
		a.c.forget(a)
	})
	return nil
}

// shardOf names the shard that serves channel.
func (a *nsAdapter) shardOf(channel string) (string, error) {
	cc, ok := a.c.client.(*redis.ClusterClient)
	if !ok {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.c.opts.RequestsTimeout)
	defer cancel()
	m, err := cc.MasterForKey(ctx, channel)
	if err != nil {
		return "", err
	}
	return m.Options().Addr, nil
}

// shardConn is the subscription connection to one shard and its reader.
type shardConn struct {
	addr string
	ps   *redis.PubSub
}

// subscribe adds channel to its shard's connection, opening the
// connection (and waiting for Redis's confirmation, then starting its
// reader) when it is the shard's first channel.
func (a *nsAdapter) subscribe(channel string) (*shardConn, error) {
	shard, err := a.shardOf(channel)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.c.opts.RequestsTimeout)
	defer cancel()
	if sc := a.shards[shard]; sc != nil {
		return sc, sc.ps.SSubscribe(ctx, channel)
	}
	ps := a.c.client.SSubscribe(ctx)
	if err := ps.SSubscribe(ctx, channel); err != nil {
		_ = ps.Close()
		return nil, err
	}
	msg, err := ps.ReceiveTimeout(ctx, a.c.opts.RequestsTimeout)
	if err == nil {
		if sub, ok := msg.(*redis.Subscription); !ok || sub.Kind != "ssubscribe" {
			err = fmt.Errorf("unexpected answer to SSUBSCRIBE: %v", msg)
		}
	}
	if err != nil {
		_ = ps.Close()
		return nil, err
	}
	sc := &shardConn{addr: shard, ps: ps}
	a.shards[shard] = sc
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.read(sc) }()
	return sc, nil
}

// read receives one shard connection's messages until it fails; then it
// tells subscriber, which opens a new connection (routing each channel
// anew: a resharding or a failover moves them).
//
// go-redis's own reconnection is not used: on a cluster it resubscribes
// sharded channels on a random node, which answers MOVED.
func (a *nsAdapter) read(sc *shardConn) {
	pinged := false
	for {
		msg, err := sc.ps.ReceiveTimeout(a.ctx, a.c.opts.HealthCheck)
		if a.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				if err = sc.ps.Ping(a.ctx); err == nil {
					pinged = true
					continue
				}
			}
			select {
			case a.failed <- shardFailure{sc, err}:
			case <-a.ctx.Done():
			}
			return
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			select {
			case a.in <- delivery{m.Channel, m.Payload}:
			case <-a.ctx.Done():
				return
			}
		}
	}
}

type shardFailure struct {
	sc  *shardConn
	err error
}

// subscriber owns the connections: it keeps the namespace's two channels
// and the channels of the rooms with local members subscribed, on the
// shard serving each, and replaces the connections that fail.
func (a *nsAdapter) subscriber() {
	have := make(map[string]*shardConn) // subscribed channel -> its connection
	defer func() {
		for _, sc := range a.shards {
			_ = sc.ps.Close()
		}
	}()
	want := map[string]bool{a.main: true, a.response: true}
	delay := 50 * time.Millisecond
	var retry <-chan time.Time
	for {
		failures := 0
		for ch, on := range want {
			sc, ok := have[ch]
			switch {
			case on && !ok:
				sc, err := a.subscribe(ch)
				if err != nil {
					if a.ctx.Err() != nil {
						return
					}
					failures++
					a.c.log.Warn("sharded adapter: cannot subscribe; retrying", "nsp", a.name, "channel", ch, "err", err)
					continue
				}
				have[ch] = sc
			case !on && ok:
				delete(have, ch)
				ctx, cancel := context.WithTimeout(a.ctx, a.c.opts.RequestsTimeout)
				_ = sc.ps.SUnsubscribe(ctx, ch)
				cancel()
			}
			if !on {
				delete(want, ch)
			}
		}
		up := have[a.main] != nil && have[a.response] != nil
		if up && !a.subscribed.Swap(true) {
			a.markReady()
		} else if !up {
			a.subscribed.Store(false)
		}
		retry = nil
		if failures > 0 {
			retry = time.After(delay)
			delay = min(2*delay, time.Second)
		} else {
			delay = 50 * time.Millisecond
		}
		select {
		case <-a.ctx.Done():
			return
		case <-retry:
		case f := <-a.failed:
			if a.shards[f.sc.addr] == f.sc {
				delete(a.shards, f.sc.addr)
			}
			_ = f.sc.ps.Close()
			n := 0
			for ch, sc := range have {
				if sc == f.sc {
					delete(have, ch)
					n++
				}
			}
			a.c.log.Warn("sharded adapter: subscription lost; subscribing again", "nsp", a.name,
				"shard", f.sc.addr, "channels", n, "err", f.err)
			a.c.reconnect.Add(1)
		case <-a.wake:
			a.roomMu.Lock()
			for r := range a.dirty {
				want[a.dynamicChannel(r)] = a.counts[r] > 0
			}
			clear(a.dirty)
			a.roomMu.Unlock()
		}
	}
}

func (a *nsAdapter) markReady() { a.once.Do(func() { close(a.ready) }) }

// run handles the messages, one at a time.
func (a *nsAdapter) run() {
	for {
		select {
		case <-a.ctx.Done():
			return
		case d := <-a.in:
			a.handle(d.channel, []byte(d.payload))
		}
	}
}

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

func (a *nsAdapter) task(what string, fn func()) {
	select {
	case a.tasks <- fn:
	default:
		a.c.log.Warn("sharded adapter: too many requests waiting for their handlers; dropped one", "nsp", a.name, "request", what)
	}
}

// to returns the function that queues a message (an encoder's results)
// for channel.
func (a *nsAdapter) to(channel string) func([]byte, error) {
	return func(payload []byte, err error) { a.publish(channel, payload, err) }
}

// publish queues a message of this namespace for channel.
func (a *nsAdapter) publish(channel string, payload []byte, err error) {
	if err != nil {
		a.c.dropped.Add(1)
		a.c.log.Warn("sharded adapter: cannot encode a message", "nsp", a.name, "err", err)
		return
	}
	a.c.enqueue(publication{a: a, channel: channel, payload: payload})
}

// responseChannel is the channel of requester's answers.
func (a *nsAdapter) responseChannel(requester string) string { return a.main + requester + "#" }

// handle is Node's onRawMessage: a message of another node, on run's
// goroutine.
func (a *nsAdapter) handle(channel string, payload []byte) {
	m, err := decode(payload)
	if err != nil {
		a.c.log.Debug("sharded adapter: ignoring a message", "channel", channel, "err", err)
		return
	}
	if m.uid == a.uid || m.nsp != a.name {
		return
	}
	switch m.typ {
	case msgBroadcastClientCount, msgBroadcastAck, msgFetchSocketsResponse, msgServerSideEmitResponse:
		a.onResponse(m)
		return
	}
	if channel == a.response {
		return
	}
	opts := m.opts()
	switch m.typ {
	case msgBroadcast:
		p, err := m.broadcast()
		if err != nil {
			a.c.log.Debug("sharded adapter: ignoring a broadcast", "channel", channel, "err", err)
			return
		}
		id, withAck := m.requestID()
		if !withAck {
			a.c.received.Add(1)
			a.local.Deliver(p)
			return
		}
		p.Opts = socketio.BroadcastOptions{Rooms: opts.Rooms, Except: opts.Except, Timeout: opts.Timeout}
		p.ID = a.local.NextAckID()
		from := m.uid
		a.local.BroadcastWithAck(p, func(n int) {
			a.to(a.responseChannel(from))(encodeClientCount(a.uid, a.name, id, n))
		}, func(arg socketio.Arg) {
			a.to(a.responseChannel(from))(encodeArgResponse(msgBroadcastAck, a.uid, a.name, id, &arg))
		})
	case msgSocketsJoin:
		a.local.AddSockets(opts, rooms(m.data.Rooms))
	case msgSocketsLeave:
		a.local.DelSockets(opts, rooms(m.data.Rooms))
	case msgDisconnectSockets:
		closeSession := truthy(m.data.Close)
		a.task("disconnect", func() { a.local.DisconnectSockets(opts, closeSession) })
	case msgFetchSockets:
		id, _ := m.requestID()
		sockets := a.local.FetchSockets(opts)
		a.to(a.responseChannel(m.uid))(encodeFetchResponse(a.uid, a.name, id, sockets))
	case msgServerSideEmit:
		event, args, err := m.event(m.data.Packet)
		if err != nil {
			return
		}
		var reply func([]socketio.Arg)
		if id, ok := m.requestID(); ok {
			var once sync.Once
			from := m.uid
			reply = func(args []socketio.Arg) {
				once.Do(func() {
					var arg *socketio.Arg
					if len(args) > 0 {
						arg = &args[0]
					}
					a.to(a.responseChannel(from))(encodeArgResponse(msgServerSideEmitResponse, a.uid, a.name, id, arg))
				})
			}
		}
		a.task("server-side event "+event, func() { a.local.ServerSideEmit(event, args, reply) })
	}
}

// onResponse routes an answer to the request waiting for it, on run's
// goroutine; the callbacks of a broadcast with acks run there, with no lock
// held, in the order the answers came (the client count first).
func (a *nsAdapter) onResponse(m *decoded) {
	id, _ := m.requestID()
	a.reqMu.Lock()
	ack, p := a.acks[id], a.requests[id]
	a.reqMu.Unlock()
	switch m.typ {
	case msgBroadcastClientCount:
		if ack != nil {
			ack.clientCount(int(m.data.ClientCount))
		}
		return
	case msgBroadcastAck:
		if ack != nil {
			if arg, err := m.arg(m.data.Packet); err == nil {
				ack.ack(arg)
			}
		}
		return
	}
	if p == nil {
		return
	}
	var (
		sockets []*socketio.RemoteSocket
		arg     socketio.Arg
	)
	if m.typ == msgFetchSocketsResponse {
		for _, raw := range m.data.Sockets {
			if s, err := redisadapter.SocketFromJSON(a.local, raw); err == nil {
				sockets = append(sockets, s)
			}
		}
	} else {
		var err error
		if arg, err = m.arg(m.data.Packet); err != nil {
			arg = socketio.Arg{JSON: json.RawMessage("null")}
		}
	}
	a.reqMu.Lock()
	defer a.reqMu.Unlock()
	if a.requests[id] != p {
		return // answered, or timed out, meanwhile
	}
	if m.typ == msgFetchSocketsResponse {
		p.sockets = append(p.sockets, sockets...)
	} else {
		p.args = append(p.args, arg)
	}
	p.got++
	if p.got == p.want {
		delete(a.requests, id)
		close(p.done)
	}
}

// ServerCount is the number of nodes subscribed to the namespace's
// channel, summed over the shards, this one included (Node's PUBSUB
// SHARDNUMSUB).
func (a *nsAdapter) ServerCount(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, a.c.opts.RequestsTimeout)
	defer cancel()
	n, err := redisconn.NumSub(ctx, a.c.client, a.main, true)
	if err != nil {
		return 1, err
	}
	return int(max(n, 1)), nil
}

// Broadcast queues p; the publisher encodes it.
func (a *nsAdapter) Broadcast(p *socketio.BroadcastPacket) {
	if !p.Opts.Local {
		a.c.enqueue(publication{a: a, p: p})
	}
}

// BroadcastWithAck publishes p on the namespace's channel (never a room's:
// every node must answer with its count, as in Node) and routes the
// answers until the broadcast's timeout.
func (a *nsAdapter) BroadcastWithAck(p *socketio.BroadcastPacket, clientCount func(int), ack func(socketio.Arg)) {
	if p.Opts.Local {
		return
	}
	id := newUID()
	payload, err := encodeBroadcast(a.uid, p, id)
	if err != nil {
		a.publish("", nil, err)
		return
	}
	a.reqMu.Lock()
	a.acks[id] = &ackRequest{clientCount: clientCount, ack: ack}
	a.reqMu.Unlock()
	timeout := p.Opts.Timeout
	if timeout <= 0 {
		timeout = a.c.opts.RequestsTimeout
	}
	time.AfterFunc(timeout, func() {
		a.reqMu.Lock()
		delete(a.acks, id)
		a.reqMu.Unlock()
	})
	a.publish(a.main, payload, nil)
}

func (a *nsAdapter) AddSockets(opts socketio.BroadcastOptions, rooms []string) {
	if !opts.Local {
		a.to(a.main)(encodeRooms(msgSocketsJoin, a.uid, a.name, opts, rooms))
	}
}

func (a *nsAdapter) DelSockets(opts socketio.BroadcastOptions, rooms []string) {
	if !opts.Local {
		a.to(a.main)(encodeRooms(msgSocketsLeave, a.uid, a.name, opts, rooms))
	}
}

func (a *nsAdapter) DisconnectSockets(opts socketio.BroadcastOptions, close bool) {
	if !opts.Local {
		a.to(a.main)(encodeDisconnect(a.uid, a.name, opts, close))
	}
}

// request publishes a request that every other node answers, and waits
// for the answers, up to timeout.
func (a *nsAdapter) request(ctx context.Context, timeout time.Duration, build func(id string) ([]byte, error)) (*pending, error) {
	n, err := a.ServerCount(ctx)
	if err != nil {
		return nil, fmt.Errorf("sharded adapter: counting the nodes: %w", err)
	}
	p := &pending{want: n - 1, done: make(chan struct{})}
	if p.want <= 0 {
		return p, nil
	}
	id := newUID()
	payload, err := build(id)
	if err != nil {
		return nil, err
	}
	a.reqMu.Lock()
	a.requests[id] = p
	a.reqMu.Unlock()
	a.publish(a.main, payload, nil)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p, nil
	case <-t.C:
	case <-ctx.Done():
	case <-a.ctx.Done():
	}
	a.reqMu.Lock()
	defer a.reqMu.Unlock()
	delete(a.requests, id)
	select {
	case <-p.done:
		return p, nil
	default:
	}
	return p, fmt.Errorf("%w: only %d responses received out of %d", socketio.ErrAckTimeout, p.got, p.want)
}

// FetchSockets asks the other nodes for their sockets selected by opts.
func (a *nsAdapter) FetchSockets(ctx context.Context, opts socketio.BroadcastOptions) ([]*socketio.RemoteSocket, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = a.c.opts.RequestsTimeout
	}
	p, err := a.request(ctx, timeout, func(id string) ([]byte, error) {
		return encodeFetchSockets(a.uid, a.name, id, opts)
	})
	if err != nil {
		return nil, err
	}
	a.reqMu.Lock()
	defer a.reqMu.Unlock()
	return p.sockets, nil
}

// ServerSideEmit sends an event to the other nodes. With an ack, it
// returns at once and ack gets their answers on another goroutine.
func (a *nsAdapter) ServerSideEmit(event string, args []socketio.Arg, ack socketio.AckFunc) error {
	for i, arg := range args {
		if !json.Valid(arg.JSON) {
			return fmt.Errorf("sharded adapter: server-side event %q: argument %d is not JSON", event, i)
		}
	}
	if ack == nil {
		a.to(a.main)(encodeServerSideEmit(a.uid, a.name, "", event, args))
		return nil
	}
	go func() {
		p, err := a.request(a.ctx, a.c.opts.RequestsTimeout, func(id string) ([]byte, error) {
			return encodeServerSideEmit(a.uid, a.name, id, event, args)
		})
		var out []socketio.Arg
		if p != nil {
			a.reqMu.Lock()
			out = p.args
			a.reqMu.Unlock()
		}
		ack(out, err)
	}()
	return nil
}
