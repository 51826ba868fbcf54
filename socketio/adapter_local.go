package socketio

// LocalNamespace is what a cluster Adapter is handed for one namespace:
// the namespace, and what the other nodes may do with this node's side of
// it (deliver their broadcasts, ask for acknowledgements, fetch, move and
// disconnect sockets, run server-side events). Adapters call it from their
// own goroutines, with no lock of theirs held that the server could need:
// each call takes the server's locks itself, and runs no handler of
// another client on the caller's goroutine. Users of a Server do not need
// it; it keeps these operations off Namespace's own methods.
type LocalNamespace interface {
	// Namespace is the namespace itself (its name, rooms, sockets).
	Namespace() *Namespace
	// Deliver hands a broadcast from another node to the local sockets it
	// selects, exactly as a broadcast of this node (in one order with
	// them, with a recovery offset when recovery is on).
	Deliver(p *BroadcastPacket)
	// DeliverAt is Deliver with the recovery offset the cluster gave the
	// broadcast (a SessionAdapter's; see SessionAdapter).
	DeliverAt(p *BroadcastPacket, offset string)
	// BroadcastWithAck sends p to the local sockets it selects, each asked
	// to acknowledge with p.ID (an id of NextAckID); clientCount is called
	// with their number, ack with each response.
	BroadcastWithAck(p *BroadcastPacket, clientCount func(int), ack func(Arg))
	// FetchSockets describes the local sockets selected by opts.
	FetchSockets(opts BroadcastOptions) []*RemoteSocket
	// AddSockets makes the local sockets selected by opts join rooms.
	AddSockets(opts BroadcastOptions, rooms []string)
	// DelSockets makes them leave rooms.
	DelSockets(opts BroadcastOptions, rooms []string)
	// DisconnectSockets disconnects them (their sessions too with close).
	DisconnectSockets(opts BroadcastOptions, close bool)
	// ServerSideEmit runs this node's handler of a server-side event from
	// another node; reply, when not nil, receives the handler's Ack.
	ServerSideEmit(event string, args []Arg, reply func([]Arg))
	// NewRemoteSocket describes a socket of another node, whose methods act
	// on it through the cluster.
	NewRemoteSocket(id string, h Handshake, rooms []string, data any) *RemoteSocket
	// NextAckID returns a new acknowledgement id of the namespace: another
	// node's broadcast with acknowledgements gets an id of this node (each
	// node numbers the acks of its own sockets, as in Node), so that it
	// cannot collide with the acks the namespace is already waiting for.
	NextAckID() int64
}

// localNamespace is a Namespace's LocalNamespace.
type localNamespace struct{ n *Namespace }

var _ LocalNamespace = localNamespace{}

func (l localNamespace) Namespace() *Namespace      { return l.n }
func (l localNamespace) Deliver(p *BroadcastPacket) { l.n.deliverRemote(p) }
func (l localNamespace) NextAckID() int64           { return l.n.nextAckID() }
func (l localNamespace) DeliverAt(p *BroadcastPacket, offset string) {
	l.n.deliverRemoteAt(p, offset)
}
func (l localNamespace) BroadcastWithAck(p *BroadcastPacket, clientCount func(int), ack func(Arg)) {
	l.n.localBroadcastWithAck(p, clientCount, ack)
}
func (l localNamespace) FetchSockets(opts BroadcastOptions) []*RemoteSocket {
	return l.n.localFetchSockets(opts)
}
func (l localNamespace) AddSockets(opts BroadcastOptions, rooms []string) {
	l.n.localAddSockets(opts, rooms)
}
func (l localNamespace) DelSockets(opts BroadcastOptions, rooms []string) {
	l.n.localDelSockets(opts, rooms)
}
func (l localNamespace) DisconnectSockets(opts BroadcastOptions, close bool) {
	l.n.localDisconnectSockets(opts, close)
}
func (l localNamespace) ServerSideEmit(event string, args []Arg, reply func([]Arg)) {
	l.n.localServerSideEmit(event, args, reply)
}
func (l localNamespace) NewRemoteSocket(id string, h Handshake, rooms []string, data any) *RemoteSocket {
	return l.n.newRemoteSocket(id, h, rooms, data)
}
