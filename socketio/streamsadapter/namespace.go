package streamsadapter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chatio/socketio-chat/internal/redisconn"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/redis/go-redis/v9"
)

// nsAdapter is the adapter of one namespace. Broadcast and the other
// NamespaceAdapter methods only queue writes in the Cluster's outbox; the
// stream's dispatcher hands it the entries, which its lane delivers
// (onEntry); its subscriber
// goroutine (subscribe) receives the requests and responses of pub/sub.
type nsAdapter struct {
	c       *Cluster
	nsp     *socketio.Namespace
	local   socketio.LocalNamespace // what the other nodes do on this node
	name    string
	uid     string
	stream  string
	public  string // <prefix>#<nsp>#
	private string // <prefix>#<nsp>#<uid>#
	r       *reader
	lane    lane // the stream's entries of this namespace, delivered in order

	window  time.Duration // the recovery window; 0 without recovery
	ordered bool          // own broadcasts are delivered from the stream

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	psMu sync.Mutex
	ps   *redis.PubSub // the subscriber's connection, closed by Close

	smu  sync.Mutex
	live map[string]struct{} // pids of the connected sockets' sessions, kept from expiring

	reqMu    sync.Mutex
	requests map[string]*request
	acks     map[string]*ackRequest
}

var _ socketio.NamespaceAdapter = (*nsAdapter)(nil)

func newNSAdapter(c *Cluster, local socketio.LocalNamespace) *nsAdapter {
	nsp := local.Namespace()
	a := &nsAdapter{
		c:        c,
		nsp:      nsp,
		local:    local,
		name:     nsp.Name(),
		uid:      newUID(),
		done:     make(chan struct{}),
		live:     make(map[string]struct{}),
		lane:     lane{space: make(chan struct{}, 1)},
		requests: make(map[string]*request),
		acks:     make(map[string]*ackRequest),
	}
	a.stream = streamName(c.opts.StreamName, c.opts.StreamCount, a.name)
	a.public = c.opts.ChannelPrefix + "#" + a.name + "#"
	a.private = a.public + a.uid + "#"
	if srv := nsp.Server(); srv != nil {
		if r := srv.Options().Recovery; r != nil {
			a.window = r.MaxDisconnectionDuration
		}
	}
	a.ordered = c.opts.Ordered || a.window > 0
	a.ctx, a.cancel = context.WithCancel(c.ctx)
	return a
}

func (a *nsAdapter) start() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.subscribe() }()
	if a.window > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); a.refreshSessions() }()
	}
	go func() { wg.Wait(); close(a.done) }()
}

// Close stops the namespace's goroutines. Later calls do nothing.
func (a *nsAdapter) Close() error {
	a.once.Do(func() {
		a.cancel()
		a.psMu.Lock()
		if a.ps != nil {
			_ = a.ps.Close()
		}
		a.psMu.Unlock()
		<-a.done
		a.c.mu.Lock()
		if a.c.nsps[a.name] == a {
			delete(a.c.nsps, a.name)
		}
		a.c.mu.Unlock()
	})
	return nil
}

// xadd queues a stream entry.
func (a *nsAdapter) xadd(typ int, data string, p *socketio.BroadcastPacket) {
	a.c.out.add(item{kind: kindXAdd, stream: a.stream, uid: a.uid, nsp: a.name, typ: typ, data: data, p: p})
}

// Broadcast queues p for the stream. It runs under the server's order
// lock and only queues (the publisher encodes). When the outbox is full,
// p is dropped and counted (Stats.Dropped).
func (a *nsAdapter) Broadcast(p *socketio.BroadcastPacket) {
	if p.Opts.Local {
		return
	}
	a.xadd(typeBroadcast, "", p)
}

// DeliversOwn tells the server (socketio.OrderedAdapter) that, ordered,
// the adapter delivers this node's broadcasts back from the stream: the
// server does not deliver them when they are made.
func (a *nsAdapter) DeliversOwn() bool { return a.ordered }

// AddSockets, DelSockets and DisconnectSockets go through the stream, as Node.
func (a *nsAdapter) AddSockets(opts socketio.BroadcastOptions, rooms []string) {
	a.xadd(typeSocketsJoin, roomsData(opts, rooms), nil)
}

func (a *nsAdapter) DelSockets(opts socketio.BroadcastOptions, rooms []string) {
	a.xadd(typeSocketsLeave, roomsData(opts, rooms), nil)
}

func (a *nsAdapter) DisconnectSockets(opts socketio.BroadcastOptions, close bool) {
	a.xadd(typeDisconnectSockets, disconnectData(opts, close), nil)
}

// onEntry handles an entry of the stream, on the namespace's lane.
func (a *nsAdapter) onEntry(m *message, id string) {
	own := m.uid == a.uid
	switch m.typ {
	case typeBroadcast:
		if m.packet == nil || m.reqID != "" || (own && !a.ordered) {
			return
		}
		p := m.packet
		p.Opts = m.opts
		p.ID = -1
		a.c.stats.received.Add(1)
		if a.window > 0 {
			a.local.DeliverAt(p, id)
		} else {
			a.local.Deliver(p)
		}
	case typeSocketsJoin:
		if !own {
			a.local.AddSockets(m.opts, m.rooms)
		}
	case typeSocketsLeave:
		if !own {
			a.local.DelSockets(m.opts, m.rooms)
		}
	case typeDisconnectSockets:
		if !own {
			// Disconnect handlers are application code: off the dispatcher.
			go a.local.DisconnectSockets(m.opts, m.close)
		}
	}
}

// ServerCount is the number of nodes subscribed to the namespace's public
// channel, this one included, as Node.
func (a *nsAdapter) ServerCount(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, a.c.opts.RequestsTimeout)
	defer cancel()
	// On a cluster each node knows only its own subscribers: NumSub asks them all.
	n, err := redisconn.NumSub(ctx, a.c.client, a.public, false)
	if err != nil {
		return 1, err
	}
	return int(max(n, 1)), nil
}

// sessionNSAdapter is the adapter of a namespace with connection state
// recovery: an nsAdapter that also keeps the sessions in Redis.
type sessionNSAdapter struct{ *nsAdapter }

var _ socketio.SessionAdapter = sessionNSAdapter{}

func (a *nsAdapter) sessionKey(pid string) string { return a.c.opts.SessionKeyPrefix + pid }

// encodeSession is Node's persistSession value: base64(msgpack({sid, pid, rooms, data})).
func encodeSession(st socketio.SessionState) (string, error) {
	var e mpEncoder
	e.map_(4)
	e.str("sid")
	e.str(st.SID)
	e.str("pid")
	e.str(st.PID)
	e.str("rooms")
	_ = e.value(st.Rooms)
	e.str("data")
	if err := e.value(st.Data); err != nil {
		return "", err
	}
	return b64.EncodeToString(e.buf), nil
}

func decodeSession(s string) (*socketio.SessionState, error) {
	raw, err := b64.DecodeString(s)
	if err != nil {
		return nil, err
	}
	v, err := decodeMsgpack(raw)
	if err != nil {
		return nil, err
	}
	m := asObject(v)
	sid, _ := m.get("sid").(string)
	pid, _ := m.get("pid").(string)
	if sid == "" {
		return nil, errors.New("session without sid")
	}
	list, _ := m.get("rooms").([]any)
	return &socketio.SessionState{SID: sid, PID: pid, Rooms: roomList(list), Data: plain(m.get("data"))}, nil
}

// PersistSession queues the SET of st's session, with the recovery window
// as its time to live, after the writes queued before it. It runs under
// the server's order lock: it only queues.
func (a sessionNSAdapter) PersistSession(st socketio.SessionState) {
	a.smu.Lock()
	defer a.smu.Unlock()
	if st.Disconnected {
		delete(a.live, st.PID) // saved once: it runs out after the window
	} else {
		a.live[st.PID] = struct{}{}
	}
	a.persist(st)
}

// persist queues the SET of st. a.smu is held: the writes of the
// sessions are queued in the order their changes happened.
func (a *nsAdapter) persist(st socketio.SessionState) {
	v, err := encodeSession(st)
	if err != nil {
		a.c.log.Warn("streams adapter: cannot encode session", "sid", st.SID, "err", err)
		return
	}
	a.c.out.add(item{kind: kindSet, key: a.sessionKey(st.PID), value: v, ttl: a.window})
}

// DropSession queues the DEL of a session closed for good.
func (a sessionNSAdapter) DropSession(pid string) {
	a.smu.Lock()
	defer a.smu.Unlock()
	delete(a.live, pid)
	a.c.out.add(item{kind: kindDel, key: a.sessionKey(pid)})
}

// refreshSessions pushes back the expiry of the connected sockets'
// sessions every third of the window (PEXPIRE, which leaves a deleted
// session deleted), so that they outlive the node for a whole window
// whenever it dies. It writes directly, not through the outbox: a refresh
// missed during an outage is made up by the next one, and the outbox
// stays for the writes whose order matters.
func (a *nsAdapter) refreshSessions() {
	t := time.NewTicker(max(a.window/3, 10*time.Millisecond))
	defer t.Stop()
	var pids []string
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		a.smu.Lock()
		pids = pids[:0]
		for pid := range a.live {
			pids = append(pids, pid)
		}
		a.smu.Unlock()
		for len(pids) > 0 && a.ctx.Err() == nil {
			n := min(len(pids), 1000)
			ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
			_, _ = a.c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, pid := range pids[:n] {
					p.PExpire(ctx, a.sessionKey(pid), a.window)
				}
				return nil
			})
			cancel()
			pids = pids[n:]
		}
	}
}

// RestoreSession takes the session pid from Redis (GET and DEL in a
// transaction, as Node) when offset is still an entry of the stream.
func (a sessionNSAdapter) RestoreSession(ctx context.Context, pid, offset string) (*socketio.SessionState, error) {
	if _, ok := parseID(offset); !ok {
		return nil, errors.New("invalid offset")
	}
	var get *redis.StringCmd
	_, err := a.c.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, a.sessionKey(pid))
		p.Del(ctx, a.sessionKey(pid))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	raw, err := get.Result()
	if err != nil {
		return nil, fmt.Errorf("session not found: %w", err)
	}
	rng, err := a.c.client.XRange(ctx, a.stream, offset, offset).Result()
	if err != nil {
		return nil, err
	}
	if len(rng) == 0 {
		return nil, errors.New("offset not found (trimmed)")
	}
	st, err := decodeSession(raw)
	if err != nil {
		return nil, err
	}
	st.PID = pid
	return st, nil
}

// ResumeSession hands the recovery to the stream's dispatcher, which has
// the namespace's lane call join between two entries (see reader).
func (a sessionNSAdapter) ResumeSession(ctx context.Context, st *socketio.SessionState, offset string, join func([]socketio.MissedPacket) bool) error {
	id, ok := parseID(offset)
	if !ok {
		return errors.New("invalid offset")
	}
	q := &restore{a: a.nsAdapter, st: st, offset: id, join: join, ctx: ctx, done: make(chan error, 1)}
	select {
	case a.r.restores <- q:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-q.done:
		return err
	case <-ctx.Done():
		if q.state.CompareAndSwap(0, 2) {
			return ctx.Err()
		}
		return <-q.done // the dispatcher is serving it
	}
}
