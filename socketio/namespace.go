package socketio

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Namespace is a Socket.IO namespace: its sockets, its rooms, its
// middlewares and handlers. Its methods are safe for concurrent use.
//
// Rooms are sets of sockets of this node. Every socket is implicitly in the
// room named by its id (it cannot leave it).
type Namespace struct {
	srv     *Server
	name    string
	adapter NamespaceAdapter
	single  bool             // adapter is the single node's: nothing to publish
	outbox  outbox           // broadcasts for the adapter, in order
	parent  *ParentNamespace // for a child of a dynamic namespace
	child   childState       // used when parent is set

	hmu          sync.RWMutex
	onConnect    []func(*Socket)
	middlewares  []func(*Socket) error
	serverEvents map[string]func(*Event)

	ackIDs   atomic.Int64
	tracking atomic.Bool // a broadcast's fan-out is being followed (Hooks.BroadcastDelivered)

	// mu is the namespace's order lock: it guards the membership of the
	// namespace (its sockets, their rooms) and its recovery log, and is
	// held while a broadcast of the namespace is handed to its recipients.
	// Each namespace has its own: broadcasts of different namespaces do
	// not wait for each other, and the order guarantee is per namespace.
	// Only leaf locks are taken after it (the outbox's, a socket's s.mu, a
	// client's c.mu, the engine's sessions'), never another namespace's;
	// none is held when it is taken but srv.nspMu (cleanupIfEmpty).
	mu sync.Mutex
	// guarded by mu
	sockets map[string]*Socket
	list    []*Socket // the same sockets, densely, for broadcasts
	rooms   map[string]map[*Socket]struct{}
	log     *recoveryLog // nil without connection state recovery
}

func newNamespace(srv *Server, name string) *Namespace {
	n := &Namespace{
		srv:     srv,
		name:    name,
		sockets: make(map[string]*Socket),
		rooms:   make(map[string]map[*Socket]struct{}),
	}
	if r := srv.opts.Recovery; r != nil {
		n.log = newRecoveryLog(r.MaxDisconnectionDuration)
	}
	return n
}

// Name is the namespace's name, such as "/" or "/admin".
func (n *Namespace) Name() string { return n.name }

// Server is the namespace's server.
func (n *Namespace) Server() *Server { return n.srv }

// Adapter is the namespace's side of the cluster adapter.
func (n *Namespace) Adapter() NamespaceAdapter { return n.adapter }

// OnConnection adds a handler called for each new socket (recovered ones
// included), after its CONNECT answer was queued, on the goroutine that
// read the client's CONNECT. Events the client sends are handled once the
// connection handlers returned, so handlers registered here miss nothing.
func (n *Namespace) OnConnection(fn func(*Socket)) {
	n.hmu.Lock()
	n.onConnect = append(n.onConnect, fn)
	n.hmu.Unlock()
}

// Use adds a middleware, run for each connecting socket in the order they
// were added, on the goroutine that read the client's CONNECT. An error
// refuses the connection: the client gets a CONNECT_ERROR with the error's
// message (and a *ConnectError's Data).
func (n *Namespace) Use(fn func(*Socket) error) {
	n.hmu.Lock()
	n.middlewares = append(n.middlewares, fn)
	n.hmu.Unlock()
}

// OnServerSideEmit handles event when another node of the cluster sends it
// with ServerSideEmit.
func (n *Namespace) OnServerSideEmit(event string, fn func(*Event)) {
	n.hmu.Lock()
	if n.serverEvents == nil {
		n.serverEvents = make(map[string]func(*Event))
	}
	n.serverEvents[event] = fn
	n.hmu.Unlock()
}

// handlers returns the connection handlers and middlewares of the
// namespace, its parent's first.
func (n *Namespace) handlers() ([]func(*Socket), []func(*Socket) error) {
	n.hmu.RLock()
	onConnect, middlewares := n.onConnect, n.middlewares
	n.hmu.RUnlock()
	if n.parent != nil {
		pc, pm := n.parent.handlers()
		onConnect = append(slices.Clip(pc), onConnect...)
		middlewares = append(slices.Clip(pm), middlewares...)
	}
	return onConnect, middlewares
}

// Emit broadcasts event to every socket of the namespace, on every node.
func (n *Namespace) Emit(event string, args ...any) error { return n.op().Emit(event, args...) }

// To selects the sockets in any of rooms.
func (n *Namespace) To(rooms ...string) *BroadcastOperator { return n.op().To(rooms...) }

// In is To.
func (n *Namespace) In(rooms ...string) *BroadcastOperator { return n.op().To(rooms...) }

// Except selects the sockets in none of rooms.
func (n *Namespace) Except(rooms ...string) *BroadcastOperator { return n.op().Except(rooms...) }

// Local limits a broadcast to this node.
func (n *Namespace) Local() *BroadcastOperator { return n.op().Local() }

// Volatile drops a broadcast for clients that are not ready for it.
func (n *Namespace) Volatile() *BroadcastOperator { return n.op().Volatile() }

// Compress(false) sends a broadcast without WebSocket compression (see
// BroadcastOperator.Compress).
func (n *Namespace) Compress(compress bool) *BroadcastOperator { return n.op().Compress(compress) }

// Timeout bounds the wait for the acknowledgements of a broadcast to the
// namespace (see BroadcastOperator.Timeout).
func (n *Namespace) Timeout(d time.Duration) *BroadcastOperator { return n.op().Timeout(d) }

// FetchSockets returns the sockets of the namespace, on every node.
func (n *Namespace) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	return n.op().FetchSockets(ctx)
}

// SocketsJoin makes every socket of the namespace join rooms.
func (n *Namespace) SocketsJoin(rooms ...string) { n.op().SocketsJoin(rooms...) }

// SocketsLeave makes every socket of the namespace leave rooms.
func (n *Namespace) SocketsLeave(rooms ...string) { n.op().SocketsLeave(rooms...) }

// DisconnectSockets disconnects every socket of the namespace.
func (n *Namespace) DisconnectSockets(close bool) { n.op().DisconnectSockets(close) }

// ServerSideEmit sends event to the other nodes' namespace (see
// OnServerSideEmit). With an AckFunc as last argument, it is called with
// the responses of the other nodes.
func (n *Namespace) ServerSideEmit(event string, args ...any) error {
	a, ack, err := encodeArgs(args)
	if err != nil {
		return err
	}
	return n.adapter.ServerSideEmit(event, a, ack)
}

func (n *Namespace) op() *BroadcastOperator { return &BroadcastOperator{nsp: n} }

// Len is the number of sockets of the namespace on this node.
func (n *Namespace) Len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.list)
}

// Socket returns the socket of this node with id, or nil.
func (n *Namespace) Socket(id string) *Socket {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sockets[id]
}

// Rooms returns the rooms of the namespace on this node that have sockets
// (the sockets' own rooms included).
func (n *Namespace) Rooms() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.rooms)+len(n.list))
	for r := range n.rooms {
		out = append(out, r)
	}
	for _, s := range n.list {
		if _, ok := n.rooms[s.id]; !ok {
			out = append(out, s.id)
		}
	}
	return out
}

// addLocked makes s a member of the namespace. n.mu is held.
func (n *Namespace) addLocked(s *Socket) {
	s.index = int32(len(n.list))
	n.list = append(n.list, s)
	n.sockets[s.id] = s
	s.connected = true
	for _, r := range s.rooms {
		n.roomAddLocked(r, s)
	}
}

// removeLocked takes s out of the namespace and its rooms. n.mu is held.
func (n *Namespace) removeLocked(s *Socket) {
	if !s.connected {
		return
	}
	s.connected = false
	for _, r := range s.rooms {
		n.roomDelLocked(r, s)
	}
	last := len(n.list) - 1
	n.list[s.index] = n.list[last]
	n.list[s.index].index = s.index
	n.list[last] = nil
	n.list = n.list[:last]
	if cap(n.list) > 64 && len(n.list) < cap(n.list)/4 {
		n.list = append(make([]*Socket, 0, cap(n.list)/2), n.list...)
	}
	delete(n.sockets, s.id)
}

func (n *Namespace) roomAddLocked(room string, s *Socket) {
	m := n.rooms[room]
	if m == nil {
		m = make(map[*Socket]struct{})
		n.rooms[room] = m
	}
	m[s] = struct{}{}
}

func (n *Namespace) roomDelLocked(room string, s *Socket) {
	if m := n.rooms[room]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(n.rooms, room)
		}
	}
}

// forEachLocked calls fn for every local socket selected by opts (in any
// of opts.Rooms, or all when there is none; in none of opts.Except), once
// each. n.mu is held.
func (n *Namespace) forEachLocked(opts BroadcastOptions, fn func(*Socket)) {
	var except map[*Socket]struct{}
	if len(opts.Except) > 0 {
		except = make(map[*Socket]struct{})
		for _, r := range opts.Except {
			n.membersLocked(r, func(s *Socket) { except[s] = struct{}{} })
		}
	}
	if len(opts.Rooms) == 0 {
		for _, s := range n.list {
			if _, skip := except[s]; !skip {
				fn(s)
			}
		}
		return
	}
	if len(opts.Rooms) == 1 {
		n.membersLocked(opts.Rooms[0], func(s *Socket) {
			if _, skip := except[s]; !skip {
				fn(s)
			}
		})
		return
	}
	seen := make(map[*Socket]struct{})
	for _, r := range opts.Rooms {
		n.membersLocked(r, func(s *Socket) {
			if _, skip := except[s]; skip {
				return
			}
			if _, dup := seen[s]; dup {
				return
			}
			seen[s] = struct{}{}
			fn(s)
		})
	}
}

// selectedLocked is about how many local sockets opts selects: the sockets
// of its rooms (counted once per room they are in), or all; exceptions are
// not subtracted. It costs a map lookup per room. n.mu is held.
func (n *Namespace) selectedLocked(opts BroadcastOptions) int {
	if len(opts.Rooms) == 0 {
		return len(n.list)
	}
	k := 0
	for _, r := range opts.Rooms {
		k += len(n.rooms[r])
		if n.sockets[r] != nil {
			k++
		}
	}
	return k
}

// membersLocked calls fn for every member of room: the sockets that joined
// it, and the socket whose id it is.
func (n *Namespace) membersLocked(room string, fn func(*Socket)) {
	own := n.sockets[room]
	for s := range n.rooms[room] {
		if s != own {
			fn(s)
		}
	}
	if own != nil {
		fn(own)
	}
}

// localSockets returns the local sockets selected by opts.
func (n *Namespace) localSockets(opts BroadcastOptions) []*Socket {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*Socket
	n.forEachLocked(opts, func(s *Socket) { out = append(out, s) })
	return out
}

// nextAckID returns a new acknowledgement id, unique in the namespace.
func (n *Namespace) nextAckID() int64 { return n.ackIDs.Add(1) - 1 }
