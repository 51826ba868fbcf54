package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/engineio"
)

// Options configure a Server. The zero value of each field means its
// default, which is Node's wherever Node has one.
type Options struct {
	// Engine configures the Engine.IO server underneath.
	Engine engineio.Options
	// ConnectTimeout closes a session that joins no namespace in time.
	// Defaults to 45s.
	ConnectTimeout time.Duration
	// Recovery turns on connection state recovery: a client that
	// reconnects within Recovery.MaxDisconnectionDuration gets its socket
	// back (id, rooms, data) and the broadcasts it missed, once each.
	// Broadcasts then carry their offset as an extra last argument.
	Recovery *RecoveryOptions
	// Adapter joins the server to the other nodes of a cluster. Nil is one
	// node (MemoryAdapter).
	Adapter Adapter
	// MaxAttachmentBytes bounds the attachments of one binary packet
	// together. Defaults to Engine.MaxBufferSize.
	MaxAttachmentBytes int64
	// Logger receives refused packets (warn) and server errors. Defaults
	// to Engine.Logger, then slog.Default().
	Logger *slog.Logger
	// Hooks are called at the seams of the server's life, for metrics and
	// monitoring (see Hooks); Server.AddHooks adds more. Nil is none.
	Hooks *Hooks
	// Parser is the packets' wire format (Node's parser option):
	// JSONParser (nil, the default), MsgpackParser, or AutoParser for
	// clients of both.
	Parser Parser
	// ServeClient serves the official browser client (ClientFiles) under
	// the server's path, as Node's serveClient option: a page loads
	// /socket.io/socket.io.min.js from the server it talks to. The files are
	// read from ClientDir (DefaultClientDir when empty) by NewServer, which
	// fails with ErrClientMissing when they are not there.
	ServeClient bool
	ClientDir   string
	// Path is where the server is mounted, for ServeClient: the bundle is
	// served at Path+"socket.io.min.js" and so on. Defaults to
	// "/socket.io/", the clients' default path.
	Path string
	// CleanupEmptyChildNamespaces removes a child of a dynamic namespace
	// (see ParentNamespace) when its last socket leaves, as Node's option of
	// that name; the next CONNECT creates it again.
	CleanupEmptyChildNamespaces bool
	// CORS, when set, is the cross-origin policy of the Engine.IO requests
	// (see CORSOptions). Nil lets every origin open sessions without CORS
	// headers, as Node without its cors option (browsers then refuse
	// cross-origin polling, not WebSocket).
	CORS *CORSOptions
	// The engine's Cookie and Transports options (Node's cookie and
	// transports) are in Engine.
}

// RecoveryOptions configure connection state recovery.
type RecoveryOptions struct {
	// MaxDisconnectionDuration is how long a disconnected socket can be
	// recovered. Defaults to 2 minutes, as in Node.
	MaxDisconnectionDuration time.Duration
	// SkipMiddlewares lets a recovered socket skip the namespace
	// middlewares (Node's default is true).
	SkipMiddlewares bool
}

// Server is a Socket.IO v5 server. It is an http.Handler, to be mounted at
// the Socket.IO path (/socket.io/ by default in clients).
//
// Goroutines: each Engine.IO session's packets are handled one at a time,
// in arrival order, on the goroutine that read them or on the session's
// own executor goroutine (see engineio.SessionHandler), never on another
// client's or a caller's. So for one socket, the connection handlers,
// event handlers, acknowledgement callbacks and disconnect handlers never
// run concurrently, and run in the order the client's packets arrived;
// handlers of different sockets run concurrently. Emitting is safe from
// any goroutine. Handlers, hooks and adapter calls run with no lock of the
// server's held: they may call back into it.
//
// Ordering: the broadcasts of a namespace (Emit on the namespace, a room of
// it or a socket's Broadcast) are delivered to all their recipients on this
// node in one order, the same for all of them: a broadcast is handed to
// every recipient's send queue under the namespace's order lock, which
// joins and leaves of the namespace take too. Each namespace has its own
// lock: broadcasts of different namespaces proceed in parallel, and two
// broadcasts of different namespaces may reach two clients of both in
// different orders (each namespace of Node has its own adapter too).
type Server struct {
	opts    Options
	eio     *engineio.Server
	log     *slog.Logger
	adapter Adapter
	parsers parserUse // sessions of each wire format

	nspMu    sync.RWMutex
	nsps     map[string]*Namespace
	creating map[string]*nspInit // namespaces whose adapter is being set up

	parentMu sync.Mutex
	parents  []*ParentNamespace // dynamic namespaces, in the order of creation

	bundle *clientBundle // the browser client, with ServeClient

	hookMu sync.Mutex // serializes AddHooks
	hooks  atomic.Pointer[hookSet]

	closeOnce sync.Once
	clients   clientCount // for Shutdown
}

// NewServer returns a server with the main namespace "/".
func NewServer(opts Options) (*Server, error) {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 45 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = opts.Engine.Logger
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Engine.Logger == nil {
		opts.Engine.Logger = opts.Logger
	}
	if r := opts.Recovery; r != nil && r.MaxDisconnectionDuration <= 0 {
		r.MaxDisconnectionDuration = 2 * time.Minute
	}
	if opts.Adapter == nil {
		opts.Adapter = MemoryAdapter{}
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		adapter: opts.Adapter,
		nsps:    make(map[string]*Namespace),
	}
	if s.opts.Path == "" {
		s.opts.Path = "/socket.io/"
	}
	if !strings.HasSuffix(s.opts.Path, "/") {
		s.opts.Path += "/"
	}
	if opts.ServeClient {
		dir := opts.ClientDir
		if dir == "" {
			dir = DefaultClientDir
		}
		b, err := loadClientBundle(dir)
		if err != nil {
			return nil, err
		}
		s.bundle = b
	}
	s.AddHooks(opts.Hooks)
	s.eio = engineio.NewServer(opts.Engine, s.newClient)
	if opts.MaxAttachmentBytes <= 0 {
		s.opts.MaxAttachmentBytes = s.eio.Options().MaxBufferSize
	}
	if _, err := s.Namespace("/"); err != nil {
		return nil, err
	}
	return s, nil
}

// Engine is the Engine.IO server underneath.
func (s *Server) Engine() *engineio.Server { return s.eio }

// Options returns the server's options, with defaults filled in.
func (s *Server) Options() Options { return s.opts }

// Of returns the namespace name, creating it (and its adapter) on first
// use. Clients can join only namespaces that exist.
//
// Of is kept for the callers that cannot handle an error: when the
// cluster adapter fails to take the new namespace, Of logs the failure (at
// error level, with the namespace and the error) and returns a namespace
// of this node only, whose broadcasts reach no other node; it stays so.
// Code that must not run partitioned from the cluster uses Namespace,
// which reports the failure and creates nothing.
func (s *Server) Of(name string) *Namespace {
	n, err := s.Namespace(name)
	if err == nil {
		return n
	}
	s.log.Error("socketio: the cluster adapter refused the namespace; it serves this node only",
		"nsp", canonicalNsp(name), "err", err)
	n, _ = s.of(canonicalNsp(name), true, nil)
	return n
}

// Namespace returns the namespace name, creating it on first use with its
// cluster adapter. If the adapter fails, it returns the adapter's error
// and creates nothing: a later call tries again.
//
// The adapter's set-up (a Redis subscription, up to seconds) runs without
// the server's locks: clients keep joining the other namespaces
// meanwhile, and concurrent calls for the same name wait for that one
// set-up and share its result.
func (s *Server) Namespace(name string) (*Namespace, error) {
	return s.of(canonicalNsp(name), false, nil)
}

func canonicalNsp(name string) string {
	if name == "" || name[0] != '/' {
		return "/" + name
	}
	return name
}

// nspInit is a namespace being created: its adapter is being set up.
type nspInit struct {
	done chan struct{} // closed when n, err are set
	n    *Namespace
	err  error
}

// of returns the namespace name, creating it when it does not exist, with
// the server's adapter (or, for Of's fallback, the single node's), set up
// without nspMu held. A namespace it creates is a child of parent, when
// not nil.
func (s *Server) of(name string, single bool, parent *ParentNamespace) (*Namespace, error) {
	s.nspMu.RLock()
	n := s.nsps[name]
	s.nspMu.RUnlock()
	if n != nil {
		return n, nil
	}
	for {
		s.nspMu.Lock()
		if n := s.nsps[name]; n != nil {
			s.nspMu.Unlock()
			return n, nil
		}
		if in := s.creating[name]; in != nil {
			s.nspMu.Unlock()
			<-in.done
			if in.err == nil {
				return in.n, nil
			}
			if !single {
				return nil, in.err
			}
			continue // Of's fallback: try again, with its own adapter
		}
		in := &nspInit{done: make(chan struct{})}
		if s.creating == nil {
			s.creating = make(map[string]*nspInit)
		}
		s.creating[name] = in
		s.nspMu.Unlock()

		n := newNamespace(s, name)
		n.parent = parent
		var na NamespaceAdapter = memoryNamespace{}
		var err error
		if !single {
			na, err = s.adapter.Namespace(localNamespace{n})
		}
		if err == nil && na == nil {
			err = fmt.Errorf("socketio: the adapter returned no adapter for namespace %q", name)
		}
		s.nspMu.Lock()
		delete(s.creating, name)
		if err == nil {
			n.adapter = na
			_, n.single = na.(memoryNamespace)
			s.nsps[name] = n
			in.n = n
		}
		in.err = err
		s.nspMu.Unlock()
		close(in.done)
		return in.n, err
	}
}

// namespace returns an existing namespace, or nil.
func (s *Server) namespace(name string) *Namespace {
	s.nspMu.RLock()
	defer s.nspMu.RUnlock()
	return s.nsps[name]
}

// Namespaces returns the server's namespaces.
func (s *Server) Namespaces() []*Namespace {
	s.nspMu.RLock()
	defer s.nspMu.RUnlock()
	out := make([]*Namespace, 0, len(s.nsps))
	for _, n := range s.nsps {
		out = append(out, n)
	}
	return out
}

func (s *Server) upgraded(so *Socket) { s.hooks.Load().onUpgrade(so) }

// Sockets is the main namespace "/".
func (s *Server) Sockets() *Namespace { return s.Of("/") }

// OnConnection adds a connection handler to the main namespace.
func (s *Server) OnConnection(fn func(*Socket)) { s.Sockets().OnConnection(fn) }

// Use adds a middleware to the main namespace.
func (s *Server) Use(fn func(*Socket) error) { s.Sockets().Use(fn) }

// Emit broadcasts to every socket of the main namespace.
func (s *Server) Emit(event string, args ...any) error { return s.Sockets().Emit(event, args...) }

// To selects the sockets of the main namespace in room.
func (s *Server) To(rooms ...string) *BroadcastOperator { return s.Sockets().To(rooms...) }

// In is To.
func (s *Server) In(rooms ...string) *BroadcastOperator { return s.Sockets().To(rooms...) }

// Except selects the sockets of the main namespace not in rooms.
func (s *Server) Except(rooms ...string) *BroadcastOperator { return s.Sockets().Except(rooms...) }

// Local limits a broadcast of the main namespace to this node.
func (s *Server) Local() *BroadcastOperator { return s.Sockets().Local() }

// Volatile drops a broadcast of the main namespace for clients that are
// not ready for it.
func (s *Server) Volatile() *BroadcastOperator { return s.Sockets().Volatile() }

// Compress(false) sends a broadcast of the main namespace without
// WebSocket compression (see BroadcastOperator.Compress).
func (s *Server) Compress(compress bool) *BroadcastOperator { return s.Sockets().Compress(compress) }

// Timeout bounds the wait for the acknowledgements of a broadcast of the
// main namespace (see BroadcastOperator.Timeout).
func (s *Server) Timeout(d time.Duration) *BroadcastOperator { return s.Sockets().Timeout(d) }

// FetchSockets returns the sockets of the main namespace, on every node.
func (s *Server) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	return s.Sockets().FetchSockets(ctx)
}

// SocketsJoin makes every socket of the main namespace join rooms.
func (s *Server) SocketsJoin(rooms ...string) { s.Sockets().SocketsJoin(rooms...) }

// SocketsLeave makes every socket of the main namespace leave rooms.
func (s *Server) SocketsLeave(rooms ...string) { s.Sockets().SocketsLeave(rooms...) }

// DisconnectSockets disconnects every socket of the main namespace; with
// close, their sessions end too.
func (s *Server) DisconnectSockets(close bool) { s.Sockets().DisconnectSockets(close) }

// ServerSideEmit sends event to the main namespace of the other nodes (see
// Namespace.ServerSideEmit).
func (s *Server) ServerSideEmit(event string, args ...any) error {
	return s.Sockets().ServerSideEmit(event, args...)
}

// OnServerSideEmit handles event sent by other nodes' ServerSideEmit to the
// main namespace (see Namespace.OnServerSideEmit).
func (s *Server) OnServerSideEmit(event string, fn func(*Event)) {
	s.Sockets().OnServerSideEmit(event, fn)
}

// Close disconnects every socket with the reason "server shutting down",
// closes every session (clients see their transport close and reconnect)
// and the adapter. Every session is told at once, in parallel (see
// engineio.Server.CloseSessions): its queued packets, then a WebSocket close
// frame or a polling CLOSE packet. The sockets' disconnect handlers run on
// their sessions' executors, as the session's OnClose. No DISCONNECT packet
// is sent, as in Node: a client that receives one does not reconnect,
// while a client that sees its transport close does, to this node or
// another. Close returns once every session was told; Engine().Len() tells
// when they are gone. Later calls do nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.eio.CloseSessions(ReasonServerShuttingDown)
		for _, n := range s.Namespaces() {
			if err := n.adapter.Close(); err != nil {
				s.log.Warn("socketio: closing the adapter", "nsp", n.name, "err", err)
			}
		}
		if err := s.adapter.Close(); err != nil {
			s.log.Warn("socketio: closing the adapter", "err", err)
		}
	})
}

// Disconnect reasons, as Node reports them to "disconnect" handlers.
const (
	ReasonTransportClose            = "transport close"
	ReasonTransportError            = "transport error"
	ReasonPingTimeout               = "ping timeout"
	ReasonParseError                = "parse error"
	ReasonForcedClose               = "forced close"
	ReasonForcedServerClose         = "forced server close"
	ReasonServerShuttingDown        = "server shutting down"
	ReasonClientNamespaceDisconnect = "client namespace disconnect"
	ReasonServerNamespaceDisconnect = "server namespace disconnect"
)

// recoverable are the reasons after which a socket's state is kept for
// connection state recovery (Node's RECOVERABLE_DISCONNECT_REASONS).
var recoverable = map[string]bool{
	ReasonTransportError:     true,
	ReasonTransportClose:     true,
	ReasonForcedClose:        true,
	ReasonPingTimeout:        true,
	ReasonServerShuttingDown: true,
	ReasonForcedServerClose:  true,
}

var (
	errInvalidNamespace = errors.New("Invalid namespace")
	errNotJoined        = errors.New("packet for a namespace the client has not joined")
	errJoinedTwice      = errors.New("CONNECT for a namespace the client has joined")
)

// ErrSlowConsumer is the cause given to disconnect handlers when a client
// was disconnected because its send queue overflowed.
var ErrSlowConsumer = errors.New("socketio: send queue full (slow consumer)")

// ConnectError refuses a connection from a namespace middleware; the
// client receives Message and Data in its CONNECT_ERROR packet.
type ConnectError struct {
	Message string // the error's message, err.message on the client
	Data    any    // err.data on the client (nil: none), encoded as an emit's argument
}

// Error is the message the client receives.
func (e *ConnectError) Error() string { return e.Message }

// errorPayload is the JSON of a CONNECT_ERROR for err.
func errorPayload(err error, protocol int) []byte {
	var ce *ConnectError
	msg, data := err.Error(), any(nil)
	if errors.As(err, &ce) {
		msg, data = ce.Message, ce.Data
	}
	if protocol == 3 {
		v := any(msg)
		if data != nil {
			v = data
		}
		b, _ := appendValue(nil, v, new([][]byte))
		return b
	}
	obj := map[string]any{"message": msg}
	if data != nil {
		obj["data"] = data
	}
	b, err2 := appendValue(nil, obj, new([][]byte))
	if err2 != nil {
		b, _ = json.Marshal(struct {
			Message string `json:"message"`
		}{msg}) // cannot fail: a string
		return b
	}
	return b
}
