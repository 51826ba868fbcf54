package socketio

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// BroadcastOperator selects sockets of a namespace (rooms, exceptions,
// this node only) and acts on them, on every node. Its selectors return a
// new operator; it is safe for concurrent use.
type BroadcastOperator struct {
	nsp  *Namespace
	opts BroadcastOptions
}

// To adds rooms: the sockets in any of them are selected.
func (b *BroadcastOperator) To(rooms ...string) *BroadcastOperator {
	c := *b
	c.opts.Rooms = append(slices.Clip(b.opts.Rooms), rooms...)
	return &c
}

// In is To.
func (b *BroadcastOperator) In(rooms ...string) *BroadcastOperator { return b.To(rooms...) }

// Except excludes the sockets in any of rooms.
func (b *BroadcastOperator) Except(rooms ...string) *BroadcastOperator {
	c := *b
	c.opts.Except = append(slices.Clip(b.opts.Except), rooms...)
	return &c
}

// Local keeps the operation on this node.
func (b *BroadcastOperator) Local() *BroadcastOperator {
	c := *b
	c.opts.Local = true
	return &c
}

// Volatile drops the broadcast for clients that are not ready for it.
func (b *BroadcastOperator) Volatile() *BroadcastOperator {
	c := *b
	c.opts.Volatile = true
	return &c
}

// Timeout bounds the wait for the acknowledgements of Emit with an AckFunc.
func (b *BroadcastOperator) Timeout(d time.Duration) *BroadcastOperator {
	c := *b
	c.opts.Timeout = d
	return &c
}

// Compress(false) sends the broadcast without WebSocket compression,
// whatever its size (Node's compress(false)); compression applies only to
// clients that negotiated it (engineio.Options.PerMessageDeflate).
func (b *BroadcastOperator) Compress(compress bool) *BroadcastOperator {
	c := *b
	c.opts.NoCompress = !compress
	return &c
}

// Emit broadcasts event to the selected sockets. The packet is encoded
// once for all of them. With an AckFunc as last argument, every recipient
// is asked to acknowledge, and the AckFunc receives their responses (one
// Arg each, the first argument they acknowledged with) once all have
// answered, or ErrAckTimeout with those that did after Timeout.
func (b *BroadcastOperator) Emit(event string, args ...any) error {
	if reservedEvents[event] || event == "connection" {
		return fmt.Errorf("socketio: %q is a reserved event name", event)
	}
	a, ack, err := encodeArgs(args)
	if err != nil {
		return err
	}
	if ack != nil {
		return b.emitWithAck(event, a, ack)
	}
	b.nsp.deliver(event, a, b.opts, !b.opts.Local)
	return nil
}

// deliver hands a broadcast to every local recipient, under the order
// lock, and to the adapter when publish is set. With recovery, the
// broadcast gets its offset as a last argument and is logged.
func (n *Namespace) deliver(event string, args []Arg, opts BroadcastOptions, publish bool) {
	if publish && !opts.Local && n.adapterDeliversOwn() {
		// The adapter delivers it back, in the cluster's order (with its
		// offset there, for a SessionAdapter). Handed over in the order
		// lock's order, outside the lock, as any adapter call.
		n.mu.Lock()
		n.outbox.add(&BroadcastPacket{Nsp: n.name, Event: event, Args: args, ID: -1, Opts: opts})
		n.mu.Unlock()
		n.outbox.publish(n.adapter)
		return
	}
	n.deliverAt(event, args, opts, publish, "")
}

// adapterDeliversOwn reports whether the namespace's adapter delivers this
// node's broadcasts back to it, in the cluster's order: a SessionAdapter
// (recovery in the cluster), or an OrderedAdapter that says so.
func (n *Namespace) adapterDeliversOwn() bool {
	if n.sessionAdapter() != nil {
		return true
	}
	oa, ok := n.adapter.(OrderedAdapter)
	return ok && !n.single && oa.DeliversOwn()
}

// deliverAt is deliver with the recovery offset given by a SessionAdapter
// (offset not empty): the broadcast then carries it and is not logged.
func (n *Namespace) deliverAt(event string, args []Arg, opts BroadcastOptions, publish bool, offset string) {
	logIt := n.log != nil && !opts.Volatile && offset == ""
	if logIt && n.sessionAdapter() != nil {
		// A Local broadcast: the cluster's log does not have it, so it
		// has no offset (as in Node), and the client's stays valid.
		logIt = false
	}
	m := &multiEncoded{nsp: n.name, id: -1, event: event, args: args}
	if offset != "" && n.log != nil && !opts.Volatile {
		m.args = append(slices.Clip(args), Arg{JSON: appendQuote(nil, offset)})
	}
	if !logIt {
		m.encodeAhead(n.srv) // outside the lock
	}
	srv := n.srv
	hooks := srv.hooks.Load()
	publish = publish && !opts.Local && !n.single
	n.mu.Lock()
	if publish {
		// Queued in the order of the lock, handed to the adapter after it.
		n.outbox.add(&BroadcastPacket{Nsp: n.name, Event: event, Args: args, ID: -1, Opts: opts})
	}
	if logIt {
		seq, offset := n.log.nextLocked()
		m.args = append(slices.Clip(args), Arg{JSON: appendQuote(nil, offset)})
		n.log.appendLocked(seq, opts, m.get(kindJSON))
	}
	m.nocomp = opts.NoCompress
	f := hooks.fanout(n)
	if f != nil {
		// The recipients' copies are tracked, not the recovery log's.
		m.track = f.d
	}
	// One payload for all the queues: the engine's process-wide budget
	// counts a share of it in each (engineio.Message.Shared).
	m.share = n.selectedLocked(opts)
	volatile := opts.Volatile
	recipients := 0
	n.forEachLocked(opts, func(s *Socket) {
		if f != nil {
			f.d.Add()
		}
		var ok bool
		out := m.forRecipient(s.client.kind())
		if volatile {
			ok = s.client.conn.TrySend(out...)
		} else {
			ok = s.send(out) == nil
		}
		switch {
		case ok:
			recipients++
		case f != nil:
			f.d.Done()
		}
	})
	if logIt && m.msgs[kindMsgpack] != nil {
		n.log.packets[len(n.log.packets)-1].mp = m.msgs[kindMsgpack]
	}
	n.mu.Unlock()
	if publish {
		n.outbox.publish(n.adapter)
	}
	if f != nil {
		f.recipients = recipients
		f.d.Done()
	}
	if hooks != nil && len(hooks.eventSent) > 0 {
		hooks.onEventSent(n, event, m.get(kindJSON), recipients)
	}
}

// outbox hands a namespace's broadcasts (and, for a SessionAdapter, its
// session saves) to its adapter in the order the order lock gave them,
// without holding that lock: the adapter is not our code, and may call back
// into the server. The caller that finds no hand-off under way hands over
// everything queued, its own call and those queued meanwhile, one at a
// time; the others return at once.
type outbox struct {
	mu       sync.Mutex
	q        []func(NamespaceAdapter)
	draining bool
}

// add queues the broadcast p. n.mu is held.
func (o *outbox) add(p *BroadcastPacket) {
	o.addCall(func(a NamespaceAdapter) { a.Broadcast(p) })
}

// addCall queues a call of the adapter. n.mu is held.
func (o *outbox) addCall(fn func(NamespaceAdapter)) {
	o.mu.Lock()
	o.q = append(o.q, fn)
	o.mu.Unlock()
}

// publish makes the queued calls on a, unless another goroutine does.
func (o *outbox) publish(a NamespaceAdapter) {
	o.mu.Lock()
	if o.draining {
		o.mu.Unlock()
		return
	}
	o.draining = true
	for len(o.q) > 0 {
		q := o.q
		o.q = nil
		o.mu.Unlock()
		for i, fn := range q {
			q[i] = nil
			fn(a)
		}
		o.mu.Lock()
	}
	o.draining = false
	o.mu.Unlock()
}

// deliverRemote hands a broadcast from another node to the local sockets it
// selects, exactly as a broadcast of this node (in the same order as
// them, with a recovery offset when recovery is on). Adapters call it.
func (n *Namespace) deliverRemote(p *BroadcastPacket) {
	n.deliver(p.Event, p.Args, p.Opts, false)
}

// emitWithAck broadcasts an event whose recipients acknowledge it.
func (b *BroadcastOperator) emitWithAck(event string, args []Arg, ack AckFunc) error {
	n := b.nsp
	timeout := b.opts.Timeout
	if timeout <= 0 {
		return errors.New("socketio: a broadcast with an acknowledgement needs a Timeout")
	}
	var (
		mu               sync.Mutex
		responses        []Arg
		expectedServers  = -1
		servers, clients int
		done             bool
		timer            *time.Timer
	)
	finish := func(err error) {
		done = true
		timer.Stop()
		out := slices.Clone(responses)
		go ack(out, err)
	}
	check := func() {
		if !done && expectedServers == servers && len(responses) == clients {
			finish(nil)
		}
	}
	mu.Lock()
	timer = time.AfterFunc(timeout, func() {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			finish(ErrAckTimeout)
		}
	})
	mu.Unlock()
	onCount := func(k int) {
		mu.Lock()
		defer mu.Unlock()
		clients += k
		servers++
		check()
	}
	onAck := func(a Arg) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			responses = append(responses, a)
			check()
		}
	}
	id := n.nextAckID()
	p := &BroadcastPacket{Nsp: n.name, Event: event, Args: args, ID: id, Opts: b.opts}
	if !b.opts.Local {
		n.adapter.BroadcastWithAck(p, onCount, onAck)
	}
	n.localBroadcastWithAck(p, onCount, onAck)
	go func() {
		count := 1
		if !b.opts.Local {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			c, err := n.adapter.ServerCount(ctx)
			cancel()
			if err == nil {
				count = c
			}
		}
		mu.Lock()
		defer mu.Unlock()
		expectedServers = count
		check()
	}()
	return nil
}

// localBroadcastWithAck sends p to the local sockets it selects, each
// asked to acknowledge with p.ID; clientCount is called with their number,
// ack with each response. Adapters call it for other nodes' broadcasts.
func (n *Namespace) localBroadcastWithAck(p *BroadcastPacket, clientCount func(int), ack func(Arg)) {
	m := &multiEncoded{nsp: n.name, id: p.ID, event: p.Event, args: p.Args}
	m.encodeAhead(n.srv)
	var targets []*Socket
	srv := n.srv
	n.mu.Lock()
	n.forEachLocked(p.Opts, func(s *Socket) { targets = append(targets, s) })
	for _, s := range targets {
		s.registerAck(p.ID, func(args []Arg, err error) {
			if err == nil {
				if len(args) > 0 {
					ack(args[0])
				} else {
					ack(Arg{JSON: []byte("null")})
				}
			}
		}, p.Opts.Timeout)
		_ = s.send(m.get(s.client.kind()))
	}
	n.mu.Unlock()
	if hooks := srv.hooks.Load(); hooks != nil && len(hooks.eventSent) > 0 {
		hooks.onEventSent(n, p.Event, m.get(kindJSON), len(targets))
	}
	clientCount(len(targets))
}

// FetchSockets returns the selected sockets, on every node.
func (b *BroadcastOperator) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	out := b.nsp.localFetchSockets(b.opts)
	if b.opts.Local {
		return out, nil
	}
	remote, err := b.nsp.adapter.FetchSockets(ctx, b.opts)
	return append(out, remote...), err
}

// localFetchSockets describes the local sockets selected by opts.
func (n *Namespace) localFetchSockets(opts BroadcastOptions) []*RemoteSocket {
	sockets := n.localSockets(opts)
	out := make([]*RemoteSocket, 0, len(sockets))
	for _, s := range sockets {
		out = append(out, &RemoteSocket{ID: s.id, Handshake: s.Handshake(), Rooms: s.Rooms(), Data: s.Data(), nsp: n})
	}
	return out
}

// SocketsJoin makes the selected sockets join rooms, on every node.
func (b *BroadcastOperator) SocketsJoin(rooms ...string) {
	b.nsp.localAddSockets(b.opts, rooms)
	if !b.opts.Local {
		b.nsp.adapter.AddSockets(b.opts, rooms)
	}
}

// localAddSockets makes the local sockets selected by opts join rooms.
func (n *Namespace) localAddSockets(opts BroadcastOptions, rooms []string) {
	for _, s := range n.localSockets(opts) {
		s.Join(rooms...)
	}
}

// SocketsLeave makes the selected sockets leave rooms, on every node.
func (b *BroadcastOperator) SocketsLeave(rooms ...string) {
	b.nsp.localDelSockets(b.opts, rooms)
	if !b.opts.Local {
		b.nsp.adapter.DelSockets(b.opts, rooms)
	}
}

// localDelSockets makes the local sockets selected by opts leave rooms.
func (n *Namespace) localDelSockets(opts BroadcastOptions, rooms []string) {
	for _, s := range n.localSockets(opts) {
		s.Leave(rooms...)
	}
}

// DisconnectSockets disconnects the selected sockets, on every node.
func (b *BroadcastOperator) DisconnectSockets(close bool) {
	b.nsp.localDisconnectSockets(b.opts, close)
	if !b.opts.Local {
		b.nsp.adapter.DisconnectSockets(b.opts, close)
	}
}

// localDisconnectSockets disconnects the local sockets selected by opts.
func (n *Namespace) localDisconnectSockets(opts BroadcastOptions, close bool) {
	for _, s := range n.localSockets(opts) {
		s.Disconnect(close)
	}
}

// localServerSideEmit runs this node's handler of a server-side event from
// another node; reply, when not nil, receives the handler's Ack.
func (n *Namespace) localServerSideEmit(event string, args []Arg, reply func([]Arg)) {
	n.hmu.RLock()
	fn := n.serverEvents[event]
	n.hmu.RUnlock()
	if fn == nil {
		return
	}
	ev := &Event{Name: event, Args: args, id: -1, reply: reply}
	if reply != nil {
		ev.id = 0
	}
	fn(ev)
}
