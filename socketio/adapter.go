package socketio

import (
	"context"
	"time"
)

// Adapter joins a server to the other nodes of a cluster (Node's adapter,
// e.g. @socket.io/redis-adapter). The server keeps its rooms and delivers
// to its own clients itself; the adapter carries what must reach the other
// nodes, and hands what they send to the namespace's LocalNamespace.
// MemoryAdapter, the default, is a single node.
type Adapter interface {
	// Namespace returns the adapter of a new namespace, given what other
	// nodes may do on this node's side of it. It is called once per
	// namespace, before the namespace serves clients.
	Namespace(nsp LocalNamespace) (NamespaceAdapter, error)
	// Close releases the adapter, after the namespaces' adapters.
	Close() error
}

// NamespaceAdapter is an Adapter's side of one namespace. Its methods
// concern the other nodes only: the server has already done (or will do)
// the same on its own sockets.
type NamespaceAdapter interface {
	// Broadcast sends a broadcast to the other nodes. It is called in the
	// order in which this node delivers its broadcasts, one call at a time
	// per namespace, with no lock of the server's held (it may call back
	// into the server), on the goroutine of one of the broadcasters; it
	// should only queue: the namespace's later broadcasts wait for it.
	Broadcast(p *BroadcastPacket)
	// BroadcastWithAck sends a broadcast whose recipients acknowledge it:
	// clientCount is called once per other node with its number of
	// recipients, ack with each recipient's response.
	BroadcastWithAck(p *BroadcastPacket, clientCount func(int), ack func(Arg))
	// FetchSockets returns the other nodes' sockets selected by opts.
	FetchSockets(ctx context.Context, opts BroadcastOptions) ([]*RemoteSocket, error)
	// AddSockets makes the other nodes' sockets selected by opts join rooms.
	AddSockets(opts BroadcastOptions, rooms []string)
	// DelSockets makes them leave rooms.
	DelSockets(opts BroadcastOptions, rooms []string)
	// DisconnectSockets disconnects them.
	DisconnectSockets(opts BroadcastOptions, close bool)
	// ServerSideEmit sends an event to the other nodes' namespace; ack,
	// when not nil, receives their responses.
	ServerSideEmit(event string, args []Arg, ack AckFunc) error
	// ServerCount is the number of nodes, this one included.
	ServerCount(ctx context.Context) (int, error)
	// Close stops the namespace's adapter.
	Close() error
}

// OrderedAdapter is a NamespaceAdapter that can hand this node's own
// broadcasts back to it (through LocalNamespace.Deliver), in the cluster's
// order, as the other nodes' (socketio/streamsadapter with Ordered). When
// DeliversOwn reports true, the server does not deliver a broadcast to its
// own sockets when it is made, only when the adapter hands it back, so all
// nodes deliver all broadcasts in one order. DeliversOwn must not change
// over the adapter's life; it is called on the broadcaster's goroutine.
type OrderedAdapter interface {
	NamespaceAdapter
	DeliversOwn() bool
}

// BroadcastOptions select the recipients of a broadcast.
type BroadcastOptions struct {
	// Rooms selects the sockets in any of them; none selects all.
	Rooms []string
	// Except excludes the sockets in any of them.
	Except []string
	// Local keeps the broadcast on this node.
	Local bool
	// Volatile drops the broadcast for clients that are not ready for it
	// (something is still waiting to be sent to them).
	Volatile bool
	// Timeout bounds the wait for acknowledgements.
	Timeout time.Duration
	// NoCompress sends the broadcast without WebSocket compression (Node's
	// compress(false); see engineio.Options.PerMessageDeflate).
	NoCompress bool
}

// BroadcastPacket is a broadcast event as adapters carry it.
type BroadcastPacket struct {
	Nsp   string // the namespace's name
	Event string // the event's name
	Args  []Arg  // the event's arguments
	// ID is the acknowledgement id of a broadcast with acknowledgements,
	// -1 otherwise.
	ID   int64
	Opts BroadcastOptions
}

// RemoteSocket is a socket as FetchSockets returns it, on this node or
// another. Its methods act on the socket wherever it is.
type RemoteSocket struct {
	// ID is the socket's id.
	ID string
	// Handshake describes its connection.
	Handshake Handshake
	// Rooms are the rooms it is in, its own first.
	Rooms []string
	// Data is the socket's data as its node has it: the Go value given to
	// SetData on this node, a json.RawMessage from another node. Read it
	// with DecodeData to get the same on every node.
	Data any

	nsp *Namespace
}

// Emit sends event to the socket.
func (r *RemoteSocket) Emit(event string, args ...any) error {
	return r.nsp.To(r.ID).Emit(event, args...)
}

// Join makes the socket join rooms.
func (r *RemoteSocket) Join(rooms ...string) { r.nsp.To(r.ID).SocketsJoin(rooms...) }

// Leave makes the socket leave rooms.
func (r *RemoteSocket) Leave(rooms ...string) { r.nsp.To(r.ID).SocketsLeave(rooms...) }

// Disconnect disconnects the socket (and closes its session with close).
func (r *RemoteSocket) Disconnect(close bool) { r.nsp.To(r.ID).DisconnectSockets(close) }

// newRemoteSocket describes a socket of this node or another.
func (n *Namespace) newRemoteSocket(id string, h Handshake, rooms []string, data any) *RemoteSocket {
	return &RemoteSocket{ID: id, Handshake: h, Rooms: rooms, Data: data, nsp: n}
}

// MemoryAdapter is the adapter of a single node: nothing leaves it.
type MemoryAdapter struct{}

// Namespace returns the adapter of a single node's namespace, which does
// nothing.
func (MemoryAdapter) Namespace(LocalNamespace) (NamespaceAdapter, error) {
	return memoryNamespace{}, nil
}

// Close does nothing.
func (MemoryAdapter) Close() error { return nil }

type memoryNamespace struct{}

func (memoryNamespace) Broadcast(*BroadcastPacket) {}
func (memoryNamespace) BroadcastWithAck(p *BroadcastPacket, clientCount func(int), ack func(Arg)) {
}
func (memoryNamespace) FetchSockets(context.Context, BroadcastOptions) ([]*RemoteSocket, error) {
	return nil, nil
}
func (memoryNamespace) AddSockets(BroadcastOptions, []string)    {}
func (memoryNamespace) DelSockets(BroadcastOptions, []string)    {}
func (memoryNamespace) DisconnectSockets(BroadcastOptions, bool) {}
func (memoryNamespace) ServerCount(context.Context) (int, error) { return 1, nil }
func (memoryNamespace) Close() error                             { return nil }
func (memoryNamespace) ServerSideEmit(_ string, _ []Arg, ack AckFunc) error {
	if ack != nil {
		ack(nil, nil) // no other node to answer
	}
	return nil
}

var (
	_ Adapter          = MemoryAdapter{}
	_ NamespaceAdapter = memoryNamespace{}
)
