package socketio

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
)

// ParentNamespace is a dynamic namespace (Node's io.of(regexp) or
// io.of(function)): it matches namespace names rather than having one, and
// a client's CONNECT to a name it matches creates that namespace, its
// child, on first use. The parent's connection handlers and middlewares
// apply to every child, those added later included (they run before the
// child's own); a broadcast of the parent reaches every child of this node
// (and, through each child's adapter, the same child on the other nodes).
// Its methods are safe for concurrent use.
//
// With Options.CleanupEmptyChildNamespaces, a child is removed (and its
// adapter closed) when its last socket leaves, and created again by the
// next CONNECT.
type ParentNamespace struct {
	srv   *Server
	name  string // for logs: the regexp, or "func"
	match func(name string, auth json.RawMessage) bool

	hmu         sync.RWMutex
	onConnect   []func(*Socket)
	middlewares []func(*Socket) error
}

// OfRegexp returns the parent namespace of the names re matches (such as
// regexp.MustCompile(`^/room-\d+$`)), creating it on first use; the same
// expression (by its text) gives the same parent.
func (s *Server) OfRegexp(re *regexp.Regexp) *ParentNamespace {
	key := "regexp:" + re.String()
	s.parentMu.Lock()
	defer s.parentMu.Unlock()
	for _, p := range s.parents {
		if p.name == key {
			return p
		}
	}
	p := &ParentNamespace{srv: s, name: key, match: func(name string, _ json.RawMessage) bool { return re.MatchString(name) }}
	s.parents = append(s.parents, p)
	return p
}

// OfFunc returns a new parent namespace of the names for which match
// returns true. match is given the client's auth payload (a JSON object,
// or nil) too; it runs on the goroutine that read the client's CONNECT,
// with no lock of the server's held, for each CONNECT to a namespace that
// does not exist yet (parents are asked in the order they were created;
// the first that matches creates the child).
func (s *Server) OfFunc(match func(name string, auth json.RawMessage) bool) *ParentNamespace {
	p := &ParentNamespace{srv: s, name: "func", match: match}
	s.parentMu.Lock()
	s.parents = append(s.parents, p)
	s.parentMu.Unlock()
	return p
}

// OnConnection adds a handler called for each new socket of every child,
// before the child's own handlers (see Namespace.OnConnection).
func (p *ParentNamespace) OnConnection(fn func(*Socket)) {
	p.hmu.Lock()
	p.onConnect = append(p.onConnect, fn)
	p.hmu.Unlock()
}

// Use adds a middleware run for each socket connecting to a child, before
// the child's own (see Namespace.Use).
func (p *ParentNamespace) Use(fn func(*Socket) error) {
	p.hmu.Lock()
	p.middlewares = append(p.middlewares, fn)
	p.hmu.Unlock()
}

// Children returns the child namespaces of this node.
func (p *ParentNamespace) Children() []*Namespace {
	var out []*Namespace
	for _, n := range p.srv.Namespaces() {
		if n.parent == p {
			out = append(out, n)
		}
	}
	return out
}

// Emit broadcasts event to every socket of every child, on every node
// where the child exists.
func (p *ParentNamespace) Emit(event string, args ...any) error {
	return p.op(BroadcastOptions{}).Emit(event, args...)
}

// To selects the sockets in any of rooms, in every child.
func (p *ParentNamespace) To(rooms ...string) *ParentBroadcast {
	return p.op(BroadcastOptions{}).To(rooms...)
}

// Except selects the sockets in none of rooms, in every child.
func (p *ParentNamespace) Except(rooms ...string) *ParentBroadcast {
	return p.op(BroadcastOptions{}).Except(rooms...)
}

// Local limits a broadcast of the parent to this node.
func (p *ParentNamespace) Local() *ParentBroadcast { return p.op(BroadcastOptions{Local: true}) }

func (p *ParentNamespace) op(o BroadcastOptions) *ParentBroadcast {
	return &ParentBroadcast{p: p, opts: o}
}

// ParentBroadcast is a broadcast to the children of a ParentNamespace,
// with selectors like BroadcastOperator's. It is safe for concurrent use.
type ParentBroadcast struct {
	p    *ParentNamespace
	opts BroadcastOptions
}

// To adds rooms: the sockets in any of them are selected.
func (b *ParentBroadcast) To(rooms ...string) *ParentBroadcast {
	c := *b
	c.opts.Rooms = append(slices.Clip(b.opts.Rooms), rooms...)
	return &c
}

// Except excludes the sockets in any of rooms.
func (b *ParentBroadcast) Except(rooms ...string) *ParentBroadcast {
	c := *b
	c.opts.Except = append(slices.Clip(b.opts.Except), rooms...)
	return &c
}

// Emit broadcasts event to the selected sockets of every child; the
// arguments are encoded once. Acknowledgements are not supported (as in
// Node): an AckFunc is refused.
func (b *ParentBroadcast) Emit(event string, args ...any) error {
	if reservedEvents[event] || event == "connection" {
		return errReserved(event)
	}
	a, ack, err := encodeArgs(args)
	if err != nil {
		return err
	}
	if ack != nil {
		return errParentAck
	}
	for _, n := range b.p.Children() {
		n.deliver(event, a, b.opts, !b.opts.Local)
	}
	return nil
}

// handlers returns the parent's connection handlers and middlewares.
func (p *ParentNamespace) handlers() ([]func(*Socket), []func(*Socket) error) {
	p.hmu.RLock()
	defer p.hmu.RUnlock()
	return p.onConnect, p.middlewares
}

// childState is what a child namespace keeps of its parent.
type childState struct {
	parent  *ParentNamespace
	pending atomic.Int64 // CONNECTs between lookup and join (cleanup waits)
	removed bool         // taken out of the server's table; guarded by srv.nspMu
}

// connectNamespace returns the namespace a CONNECT to name joins: an
// existing one, or a child created by the first parent that matches; nil
// when there is none. A child is held (not cleaned up) until connectDone.
func (s *Server) connectNamespace(name string, auth json.RawMessage) *Namespace {
	for {
		s.nspMu.RLock()
		n := s.nsps[name]
		if n != nil && n.parent != nil {
			n.child.pending.Add(1)
		}
		s.nspMu.RUnlock()
		if n != nil {
			return n
		}
		s.parentMu.Lock()
		parents := slices.Clone(s.parents)
		s.parentMu.Unlock()
		var parent *ParentNamespace
		for _, p := range parents {
			if p.match(name, auth) {
				parent = p
				break
			}
		}
		if parent == nil {
			return nil
		}
		if _, err := s.of(name, false, parent); err != nil {
			s.log.Error("socketio: the cluster adapter refused a dynamic namespace", "nsp", name, "err", err)
			return nil
		}
		// Loop: hold it under the table's lock (it may be gone already).
	}
}

// connectDone releases the hold connectNamespace took on a child, and
// removes it if it is empty and cleanup is on.
func (n *Namespace) connectDone() {
	if n.parent != nil && n.child.pending.Add(-1) == 0 {
		n.cleanupIfEmpty()
	}
}

// cleanupIfEmpty removes a child namespace that has no socket and no
// CONNECT under way, with Options.CleanupEmptyChildNamespaces. Its adapter
// is closed without a lock held.
func (n *Namespace) cleanupIfEmpty() {
	srv := n.srv
	if n.parent == nil || !srv.opts.CleanupEmptyChildNamespaces {
		return
	}
	srv.nspMu.Lock()
	if n.child.removed || n.child.pending.Load() > 0 || srv.nsps[n.name] != n {
		srv.nspMu.Unlock()
		return
	}
	n.mu.Lock()
	empty := len(n.list) == 0
	n.mu.Unlock()
	if empty {
		n.child.removed = true
		delete(srv.nsps, n.name)
	}
	srv.nspMu.Unlock()
	if empty {
		if err := n.adapter.Close(); err != nil {
			srv.log.Warn("socketio: closing the adapter", "nsp", n.name, "err", err)
		}
	}
}

var errParentAck = errors.New("socketio: a broadcast to a parent namespace cannot ask for acknowledgements")

func errReserved(event string) error {
	return fmt.Errorf("socketio: %q is a reserved event name", event)
}
