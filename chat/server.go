// Package chat is the Socket.IO chat tutorial's server (its index.js) on our
// Socket.IO core: the static page, the official browser client bundle, and
// a Socket.IO server that forwards every user-message to everyone as
// message, with the limits and the origin policy a public server needs.
package chat

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/metrics"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/chatio/socketio-chat/socketio/admin"
	"github.com/chatio/socketio-chat/socketio/redisadapter"
	"github.com/chatio/socketio-chat/socketio/shardedadapter"
	"github.com/chatio/socketio-chat/socketio/streamsadapter"
)

// Server is the tutorial's index.js in Go: static files, the client bundle,
// and a Socket.IO server that forwards every user-message to everyone.
//
// Its Socket.IO handlers run as the socketio package says: a socket's
// events one at a time, in arrival order, so each sender's messages keep
// their order; and every broadcast reaches every client in one order.
type Server struct {
	cfg     Config
	log     *slog.Logger
	io      *socketio.Server
	handler http.Handler

	// cluster joins the other nodes through Redis (-redis); nil for one node.
	cluster *redisadapter.Cluster
	// streams is the Redis Streams adapter (-redis-adapter streams) instead of cluster; nil otherwise.
	streams *streamsadapter.Cluster
	// sharded does instead with -redis-adapter sharded.
	sharded *shardedadapter.Adapter
	// history stores and orders the messages (-history); nil without.
	history *chatHistory

	// operating it (operating.go): metrics (-metrics-addr), the Admin UI
	// (-admin-ui), readiness
	metrics *metrics.Metrics
	admin   *admin.Admin
	adminUI http.Handler
	ready   readiness

	// handBack gives connections back to net/http; nil when
	// -polling-keepalive and -ws-front are off (see HandBack).
	handBack *engineio.HandBack

	closeOnce sync.Once
}

// New builds the server and every route main serves. It fails when the
// client bundle is missing, naming the set-up command.
func New(cfg Config, log *slog.Logger) (_ *Server, err error) {
	s := &Server{cfg: cfg, log: log}
	defer func() {
		if err == nil {
			return
		}
		if s.io != nil {
			s.io.Close()
		}
		if s.cluster != nil {
			_ = s.cluster.Close()
		}
		if s.streams != nil {
			_ = s.streams.Close()
		}
		if s.sharded != nil {
			_ = s.sharded.Close()
		}
	}()
	opts := s.socketOptions()
	if cfg.Redis != "" && cfg.RedisAdapter == "streams" {
		s.streams, err = streamsadapter.New(streamsadapter.Options{URL: cfg.Redis, StreamName: cfg.RedisPrefix, ChannelPrefix: cfg.RedisPrefix, Ordered: cfg.ClusterOrder, Log: log})
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		opts.Adapter = s.streams
	} else if cfg.Redis != "" && cfg.RedisAdapter == "sharded" {
		s.sharded, err = shardedadapter.New(shardedadapter.Options{URL: cfg.Redis, Prefix: cfg.RedisPrefix, Log: log})
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		opts.Adapter = s.sharded
	} else if cfg.Redis != "" {
		s.cluster, err = redisadapter.New(redisadapter.Options{URL: cfg.Redis, Prefix: cfg.RedisPrefix, Log: log})
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		opts.Adapter = s.cluster
	}
	if s.io, err = socketio.NewServer(opts); err != nil {
		return nil, err
	}
	if err := s.observe(); err != nil {
		return nil, err
	}
	if cfg.History != "" {
		if s.history, err = openHistory(cfg, log, s.io, s.metrics); err != nil {
			return nil, err
		}
	}
	s.io.OnConnection(s.onConnection)
	for _, name := range cfg.Namespaces {
		nsp, err := s.io.Namespace(name)
		if err != nil {
			return nil, fmt.Errorf("-namespaces %s: %w", name, err)
		}
		nsp.OnConnection(s.onConnection)
	}
	s.handler = s.routes()
	return s, nil
}

// socketOptions maps the configuration onto the core's options.
func (s *Server) socketOptions() socketio.Options {
	c := s.cfg
	opts := socketio.Options{
		Engine: engineio.Options{
			PingInterval:     c.PingInterval,
			PingTimeout:      c.PingTimeout,
			MaxBufferSize:    c.MaxHTTPBufferSize,
			AllowEIO3:        c.AllowEIO3,
			MaxSessions:      c.MaxConnections,
			MaxQueuedPackets: c.SendQueuePackets,
			MaxQueuedBytes:   c.SendQueueBytes,
			QueueBudget:      c.QueueBudget,
			IOMode:           ioMode(c.WebSocketIO),
			KeepAlive:        s.keepAlive(),

			PerMessageDeflate:          c.WSCompression,
			PerMessageDeflateThreshold: deflateThreshold(c.WSCompressionThreshold),
			Logger:                     s.log,
		},
		ConnectTimeout: c.ConnectTimeout,
		Logger:         s.log,
		ServeClient:    true,
		Path:           c.Path,
		ClientDir:      c.ClientDir,
		CORS: &socketio.CORSOptions{
			Origins:   c.CORSOrigins,
			OnRefused: func(*http.Request) { s.metrics.Refused(http.StatusForbidden, "origin_not_allowed") },
		},
	}
	opts.Parser, _ = socketio.ParserByName(c.Parser) // checked by Validate
	if c.Recovery > 0 {
		opts.Recovery = &socketio.RecoveryOptions{MaxDisconnectionDuration: c.Recovery, SkipMiddlewares: true}
	}
	return opts
}

// deflateThreshold is -ws-compression-threshold as engineio takes it:
// there 0 means its default, and negative compresses every message.
func deflateThreshold(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// keepAlive is the engine's keep-alive fast path for long-polling, with
// the HTTP server's limits (run.go), or nil when it is off.
func (s *Server) keepAlive() *engineio.KeepAlive {
	if !s.cfg.PollingKeepAlive || ioMode(s.cfg.WebSocketIO) != engineio.IOModeEpoll {
		return nil
	}
	if s.handBack == nil {
		s.handBack = engineio.NewHandBack(nil)
	}
	return &engineio.KeepAlive{
		HandBack:       s.handBack,
		IdleTimeout:    s.cfg.HTTPIdleTimeout,
		HeaderTimeout:  HTTPHeaderTimeout,
		MaxHeaderBytes: HTTPMaxHeaderBytes,
	}
}

// Front is the front door of the HTTP server's listener (engineio.Front):
// it serves WebSocket handshakes to the engine's path with h (the HTTP
// server's handler) on the event loop's readers, and gives every other
// connection to net/http through HandBack. nil when -ws-front is off or
// the engine is not epoll.
func (s *Server) Front(h http.Handler) *engineio.Front {
	if !s.cfg.WSFront || ioMode(s.cfg.WebSocketIO) != engineio.IOModeEpoll {
		return nil
	}
	if s.handBack == nil {
		s.handBack = engineio.NewHandBack(nil)
	}
	f := &engineio.Front{
		Handler:        h,
		HandBack:       s.handBack,
		Paths:          []string{s.cfg.Path},
		HeaderTimeout:  HTTPHeaderTimeout,
		MaxHeaderBytes: HTTPMaxHeaderBytes,
		Log:            s.log,
	}
	if s.metrics != nil {
		s.metrics.InstrumentFront(f)
	}
	return f
}

// HandBack is the listener through which the engine gives keep-alive
// connections back to net/http (engineio.KeepAlive): the HTTP server
// serving the chat must serve it too. nil when the fast path is off.
func (s *Server) HandBack() net.Listener {
	if s.handBack == nil {
		return nil
	}
	return s.handBack
}

// The HTTP server's limits on a request's head (run.go), which the
// keep-alive fast path applies too.
const (
	HTTPHeaderTimeout  = 10 * time.Second
	HTTPMaxHeaderBytes = 64 << 10
)

func ioMode(name string) engineio.IOMode {
	if name == "goroutine" {
		return engineio.IOModeGoroutine
	}
	return engineio.IOModeEpoll
}

// routes is the one http.Handler with every route, used by main and the tests.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	index := filepath.Join(s.cfg.PublicDir, "index.html")
	static := http.FileServer(http.Dir(s.cfg.PublicDir))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, index)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		static.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.operatingRoutes(mux)
	// The client bundle (Node's serveClient) and the origin policy are the
	// library's: socketio.Options.ServeClient and CORS (socketOptions).
	mux.Handle(s.cfg.Path, s.io)
	return &hostGuard{policy: newHostPolicy(s.cfg), next: mux, sioPath: s.cfg.Path, log: s.log, metrics: s.metrics}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// IO is the Socket.IO server.
func (s *Server) IO() *socketio.Server { return s.io }

// Cluster is the Redis adapter, or nil for one node.
func (s *Server) Cluster() *redisadapter.Cluster { return s.cluster }

// Streams is the Redis Streams adapter (-redis-adapter streams), or nil.
func (s *Server) Streams() *streamsadapter.Cluster { return s.streams }

// conn is what the chat keeps for one connection, in one allocation: its
// event limiter's state and what its handlers need (an idle connection's
// budget, docs/ARCHITECTURE.md "Per-connection budget"). Its handlers are
// its methods.
type conn struct {
	s           *Server
	client      *socketio.Socket
	lim         eventLimiter
	lastRefused time.Duration // since clockEpoch
	dropped     int32         // events refused in the current streak
}

// remote is the client's address, for log lines.
func (c *conn) remote() string { return c.client.Conn().RemoteAddr() }

// onConnection runs once per Socket.IO connection to the main namespace
// (and to each of -namespaces: a user-message goes to the clients of the
// namespace it was sent in).
func (s *Server) onConnection(client *socketio.Socket) {
	c := &conn{s: s, client: client, lim: newEventLimiter(s.cfg.EventBurst, time.Now())}
	if s.log.Enabled(context.Background(), slog.LevelInfo) {
		s.log.Info("A new user has connected", "id", client.ID(),
			"transport", client.Conn().Transport(),
			"remote", c.remote(),
			"recovered", client.Recovered())
	}
	client.Use(c.limit)
	client.On("user-message", c.onMessage)
	if s.history != nil {
		s.history.connect(client) // its catch-up, then the live messages
	}
	client.OnDisconnect(c.onDisconnect)
}

func (c *conn) onMessage(e *socketio.Event) {
	s := c.s
	// The first argument, whatever its type, as the client sent it.
	message := e.Arg(0)
	if n := message.Size(); n > s.cfg.MaxMessageBytes {
		s.metrics.EventDropped("too_large")
		s.log.Warn("dropping oversized chat message", "sid", c.client.ID(), "transport", c.client.Conn().Transport(), "remote", c.remote(),
			"bytes", n, "max", s.cfg.MaxMessageBytes, "reason", "message too large")
		return
	}
	if s.history != nil {
		s.history.submit(e, message, c.client.ID(), c.remote()) // stored, then broadcast with its offset
		return
	}
	if err := c.client.Namespace().Emit("message", message); err != nil {
		s.log.Error("broadcast failed", "sid", c.client.ID(), "err", err)
	}
}

func (c *conn) onDisconnect(reason string, cause error) {
	if cause != nil {
		c.s.log.Info("user disconnected", "id", c.client.ID(), "reason", reason, "cause", cause)
		return
	}
	c.s.log.Info("user disconnected", "id", c.client.ID(), "reason", reason)
}

// Close disconnects every client (they see the transport close and
// reconnect, to this node or another), closes the cluster adapter, then
// stores the history's queued messages (a few seconds at most) and closes
// the store. Later calls do nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.ready.draining.Store(true) // silently: a server that never served (a failed listen) is not draining
		if s.admin != nil {
			s.admin.Close()
		}
		s.io.Close()
		if s.cluster != nil {
			_ = s.cluster.Close() // after io.Close, which closes the namespaces' adapters
		}
		if s.streams != nil {
			_ = s.streams.Close() // after io.Close, as the cluster
		}
		if s.sharded != nil {
			_ = s.sharded.Close()
		}
		if s.history != nil {
			s.history.close() // after io.Close: no new message, the queued ones stored
		}
	})
}

// Sessions is the number of Engine.IO sessions not yet gone.
func (s *Server) Sessions() int { return s.io.Engine().Len() }

// SessionsReserved is the number of sessions -max-connections counts: open,
// closing, or being opened by a handshake under way.
func (s *Server) SessionsReserved() int { return s.io.Engine().Reserved() }

// WaitDrained waits until no Engine.IO session is left or ctx ends.
func (s *Server) WaitDrained(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.Sessions() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d sessions still open: %w", s.Sessions(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
