package socketio

import (
	"context"
	"slices"
	"time"
)

// SessionAdapter is a NamespaceAdapter that keeps connection state
// recovery in the cluster (Node's adapter.persistSession and
// restoreSession, as @socket.io/redis-streams-adapter implements them), so
// that a client recovers its session on any node. The server uses it
// instead of its own recovery log when recovery is on (Options.Recovery).
//
// The adapter then owns the order and the offsets of the namespace's
// broadcasts: the server hands every broadcast that is not Local to
// Broadcast and delivers none of them itself; the adapter delivers each
// one back, this node's own included, with DeliverAt, in the cluster's
// order and with the offset it was given there (a stream entry id). So
// the broadcasts a client received are a prefix of that order, and a
// session resumes from its offset exactly once, on any node.
// (Added for socketio/streamsadapter.)
type SessionAdapter interface {
	NamespaceAdapter
	// PersistSession saves the state of a connected or disconnecting
	// socket, for the recovery window. The server calls it when the socket
	// has connected, when its rooms or data change, and when it disconnects
	// for a reason that allows recovery: not under any lock of the
	// server's, one call at a time per namespace with Broadcast and
	// DropSession, in the order of the changes. It should not block long:
	// the namespace's next calls wait for it.
	PersistSession(st SessionState)
	// DropSession forgets the session pid: its socket left for good.
	// Called as PersistSession.
	DropSession(pid string)
	// RestoreSession takes the saved session pid, if there is one and
	// offset is still in the cluster's log. It runs on the goroutine that
	// read the client's CONNECT, and may wait for Redis until ctx ends.
	RestoreSession(ctx context.Context, pid, offset string) (*SessionState, error)
	// ResumeSession finds the broadcasts after offset that st's rooms
	// select and calls join with them, in order, atomically with respect to
	// DeliverAt: every later broadcast is delivered live, after join. join
	// reports false when the socket can no longer join (its connection
	// closed). It runs on the goroutine that read the CONNECT.
	ResumeSession(ctx context.Context, st *SessionState, offset string, join func(missed []MissedPacket) bool) error
}

// SessionState is a socket's recoverable state (Node's Session).
type SessionState struct {
	SID   string
	PID   string
	Rooms []string // its own room (SID) included, as Node lists them
	Data  any
	// Disconnected is set when the socket is disconnecting: the state is
	// saved once, for the window, and no longer kept alive.
	Disconnected bool
}

// MissedPacket is a broadcast a recovered socket missed, with its offset.
type MissedPacket struct {
	Packet *BroadcastPacket
	Offset string
}

// restoreTimeout bounds the Redis round trips of a session's recovery.
const restoreTimeout = 3 * time.Second

// sessionAdapter returns the namespace's SessionAdapter when recovery is
// on and the adapter is one, else nil.
func (n *Namespace) sessionAdapter() SessionAdapter {
	if n.log == nil {
		return nil
	}
	sa, _ := n.adapter.(SessionAdapter)
	return sa
}

// deliverRemoteAt hands a broadcast of the cluster (another node's, or this
// node's own back from the cluster's log) to the local sockets it
// selects, with offset as its recovery offset. SessionAdapters call it.
func (n *Namespace) deliverRemoteAt(p *BroadcastPacket, offset string) {
	n.deliverAt(p.Event, p.Args, p.Opts, false, offset)
}

// sessionStateLocked is s's state for its SessionAdapter. n.mu is held.
func (s *Socket) sessionStateLocked() SessionState {
	return SessionState{SID: s.id, PID: s.pid(), Rooms: append([]string{s.id}, s.rooms...), Data: s.Data()}
}

// persistSession saves s's state with its namespace's SessionAdapter, if
// it has one and s is connected.
func (s *Socket) persistSession() {
	sa := s.nsp.sessionAdapter()
	if sa == nil || s.pid() == "" {
		return
	}
	s.nsp.mu.Lock()
	if s.connected {
		s.nsp.persistLocked(s.sessionStateLocked())
	}
	s.nsp.mu.Unlock()
	s.nsp.outbox.publish(sa)
}

// persistLocked queues the save of st with the namespace's SessionAdapter,
// in the order lock's order; the caller calls outbox.publish once it has
// let go of n.mu. n.mu is held.
func (n *Namespace) persistLocked(st SessionState) {
	n.outbox.addCall(func(a NamespaceAdapter) { a.(SessionAdapter).PersistSession(st) })
}

// dropLocked queues the end of session pid, as persistLocked. n.mu is held.
func (n *Namespace) dropLocked(pid string) {
	n.outbox.addCall(func(a NamespaceAdapter) { a.(SessionAdapter).DropSession(pid) })
}

// restoreFromAdapter recovers s from the namespace's SessionAdapter: the
// session first (id, rooms, data), then, after the middlewares, its
// missed broadcasts and its membership in one step (resume).
func (c *client) restoreFromAdapter(sa SessionAdapter, pid, offset string) *SessionState {
	ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
	defer cancel()
	st, err := sa.RestoreSession(ctx, pid, offset)
	if err != nil || st == nil {
		return nil
	}
	return st
}

// joinRestored makes the recovered socket s a member, with its saved
// rooms, and queues the CONNECT answer and its missed broadcasts; it runs
// inside the adapter's ResumeSession.
func (c *client) joinRestored(s *Socket, st *SessionState, missed []MissedPacket) bool {
	nsp := s.nsp
	nsp.mu.Lock()
	if c.conn.Closed() {
		nsp.mu.Unlock()
		return false
	}
	for _, r := range st.Rooms {
		if r != s.id && !slices.Contains(s.rooms, r) {
			s.rooms = append(s.rooms, r)
		}
	}
	nsp.addLocked(s)
	c.mu.Lock()
	c.sockets = append(c.sockets, s)
	if c.connectTimer != nil {
		c.connectTimer.Stop()
		c.connectTimer = nil
	}
	c.mu.Unlock()
	_ = c.conn.Send(c.connectPacket(s))
	for _, m := range missed {
		p := m.Packet
		args := append(slices.Clip(p.Args), Arg{JSON: appendQuote(nil, m.Offset)})
		_ = s.send(encodeEvent(nsp.name, -1, p.Event, args))
	}
	nsp.persistLocked(s.sessionStateLocked())
	nsp.mu.Unlock()
	nsp.outbox.publish(nsp.adapter)
	return true
}
