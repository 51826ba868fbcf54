package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/chatio/socketio-chat/internal/redisadapter"
	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// chatServer is the tutorial's index.js in Go: static files, the client bundle,
// and a Socket.IO server that forwards every user-message to everyone.
//
// Socket.IO callbacks run on the library's goroutines: a socket's events are
// handled one at a time, in arrival order, on that socket's own queue, so
// per-sender order is kept end to end.
type chatServer struct {
	cfg     Config
	log     *slog.Logger
	io      *socket.Server
	engine  http.Handler
	bundle  *clientBundle
	handler http.Handler

	// libraryBroadcast sends every broadcast through the library's adapter
	// (recovery offsets, cluster fan-out) instead of the direct path.
	libraryBroadcast bool

	// cluster joins the other nodes through Redis (-redis); nil for one node.
	cluster *redisadapter.Cluster

	closeOnce sync.Once
}

// newChatServer builds the server and every route main serves. It fails when
// the client bundle is missing, naming the set-up command.
func newChatServer(cfg Config, log *slog.Logger) (*chatServer, error) {
	bundle, err := loadClientBundle(cfg.ClientDir)
	if err != nil {
		return nil, err
	}
	s := &chatServer{cfg: cfg, log: log, bundle: bundle,
		libraryBroadcast: cfg.Recovery > 0 || cfg.Redis != ""}
	if cfg.Redis != "" {
		s.cluster, err = redisadapter.New(redisadapter.Options{URL: cfg.Redis, Prefix: cfg.RedisPrefix, Log: log})
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
	}
	s.io = socket.NewServer(nil, s.socketOptions())
	s.engine = guardSocketIO(s.io, cfg, log)
	s.io.On("connection", func(args ...any) { s.onConnection(args[0].(*socket.Socket)) })
	s.handler = s.routes()
	return s, nil
}

// socketOptions maps the configuration onto the library's options.
func (s *chatServer) socketOptions() *socket.ServerOptions {
	opts := socket.DefaultServerOptions()
	opts.SetPath(s.cfg.Path)
	opts.SetServeClient(false) // we serve the bundle ourselves, from memory
	// Chat messages are forwarded as the client's JSON; events are rate limited on arrival.
	// strictParser adds Node's placeholder rules and the attachment byte cap.
	opts.SetParser(newStrictParser(rawParser{rate: s.cfg.EventRate, burst: s.cfg.EventBurst}, s.cfg.MaxHTTPBufferSize))
	opts.SetPingInterval(s.cfg.PingInterval)
	opts.SetPingTimeout(s.cfg.PingTimeout)
	opts.SetMaxHttpBufferSize(s.cfg.MaxHTTPBufferSize)
	opts.SetConnectTimeout(s.cfg.ConnectTimeout)
	opts.SetAllowEIO3(s.cfg.AllowEIO3)
	// Origins are checked by originPolicy before a request reaches the engine,
	// so the engine reflects any origin that got this far.
	opts.SetCors(&types.Cors{Origin: func(string) bool { return true }, Credentials: true})
	opts.SetTransports(types.NewSet[transports.TransportCtor](engine.Polling, &wsBuilder{limits: s.sendLimits(), log: s.log}))
	if s.cfg.Recovery > 0 {
		rec := socket.DefaultConnectionStateRecovery()
		rec.SetMaxDisconnectionDuration(s.cfg.Recovery.Milliseconds())
		rec.SetSkipMiddlewares(true)
		opts.SetConnectionStateRecovery(rec)
	}
	if s.cluster != nil {
		opts.SetAdapter(s.cluster) // keeps recovery (per node) when it is on
	}
	return opts
}

// sendLimits is the per-client outgoing queue bound.
func (s *chatServer) sendLimits() sendLimits {
	return sendLimits{
		packets:      s.cfg.SendQueuePackets,
		bytes:        s.cfg.SendQueueBytes,
		writeTimeout: s.cfg.PingInterval + s.cfg.PingTimeout,
	}
}

// routes is the one http.Handler with every route, used by main and the tests.
func (s *chatServer) routes() http.Handler {
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
	policy := originPolicy{allowed: s.cfg.CORSOrigins}
	mux.Handle(s.cfg.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f, ok := s.bundle.lookup(r.URL.Path, s.cfg.Path); ok {
			s.bundle.serve(w, r, f)
			return
		}
		if !policy.allows(r) {
			s.log.Warn("refused cross-origin request", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
			writeJSONError(w, http.StatusForbidden, 4, "Origin not allowed")
			return
		}
		if websocket.IsWebSocketUpgrade(r) {
			w = &wsUpgradeWriter{w: w} // our transport writes on a lockedConn
		}
		s.engine.ServeHTTP(w, r)
	}))
	return mux
}

func (s *chatServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// onConnection runs once per Socket.IO connection to the main namespace.
func (s *chatServer) onConnection(client *socket.Socket) {
	id, remote := client.Id(), client.Handshake().Address
	s.log.Info("A new user has connected", "id", id,
		"transport", client.Conn().Transport().Name(),
		"remote", remote,
		"recovered", client.Recovered())
	s.limitEvents(client, remote)
	s.boundPollingBacklog(client, remote)

	_ = client.On("user-message", func(args ...any) {
		var message any
		if len(args) > 0 {
			message = args[0]
		}
		if _, isAck := message.(socket.Ack); isAck {
			message = nil // emit('user-message', cb): JSON has no functions
		}
		if n := messageSize(message); n > s.cfg.MaxMessageBytes {
			s.log.Warn("dropping oversized chat message", "sid", id, "remote", remote,
				"bytes", n, "max", s.cfg.MaxMessageBytes, "reason", "message too large")
			return
		}
		s.broadcast("message", message)
	})
	var disconnected sync.Once // the library may report a disconnect twice
	_ = client.On("disconnect", func(args ...any) {
		disconnected.Do(func() {
			reason := ""
			if len(args) > 0 {
				reason = fmt.Sprint(args[0])
			}
			s.log.Info("user disconnected", "id", id, "reason", reason)
		})
	})
}

// Close disconnects every client (they see the transport close and reconnect,
// to this node or another) and stops the engine. Later calls do nothing.
func (s *chatServer) Close() {
	s.closeOnce.Do(func() {
		done := make(chan struct{})
		s.io.Close(func(error) { close(done) })
		<-done
		if s.cluster != nil {
			_ = s.cluster.Close() // after io.Close, which closes the adapters
		}
	})
}

// clients is the number of open Engine.IO sessions.
func (s *chatServer) clients() uint64 { return s.io.Engine().ClientsCount() }

// waitDrained waits until no Engine.IO session is left or ctx ends.
func (s *chatServer) waitDrained(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.clients() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d sessions still open: %w", s.clients(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
