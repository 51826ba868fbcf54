package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The settings the upstream protocol test suites expect of their reference
// servers (socket.io-protocol and engine.io-protocol, test-suite/).
const (
	conformancePingInterval   = 300 * time.Millisecond
	conformancePingTimeout    = 200 * time.Millisecond
	conformanceMaxPayload     = 1_000_000
	conformanceConnectTimeout = 1000 * time.Millisecond
)

// conformanceServer is what -conformance serves, on one port:
//
//   - /socket.io/: the Socket.IO v5 reference server. On connection to "/"
//     or "/custom" it emits "auth" with the handshake's auth payload; on "/",
//     "message" is answered with "message-back" and the same arguments, and
//     "message-with-ack" is acknowledged with the arguments. Other namespaces
//     are refused with {"message":"Invalid namespace"}.
//   - /engine.io/: the Engine.IO v4 reference server, which sends every
//     message back to its sender, text as text and binary as binary.
//
// Both sit behind the same guard as the chat.
type conformanceServer struct {
	log     *slog.Logger
	io      *socket.Server
	eio     engine.Server
	handler http.Handler

	closeOnce sync.Once
}

var _ app = (*conformanceServer)(nil)

// newConformanceServer builds both servers. Of cfg it uses the limits
// (MaxConnections, AllowEIO3) and not the timings, which are the suites'.
func newConformanceServer(cfg Config, log *slog.Logger) (*conformanceServer, error) {
	cfg.PingInterval = conformancePingInterval
	cfg.PingTimeout = conformancePingTimeout
	cfg.MaxHTTPBufferSize = conformanceMaxPayload
	cfg.ConnectTimeout = conformanceConnectTimeout
	cfg.CORSOrigins = []string{"*"}

	s := &conformanceServer{log: log}

	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false)
	opts.SetPingInterval(cfg.PingInterval)
	opts.SetPingTimeout(cfg.PingTimeout)
	opts.SetMaxHttpBufferSize(cfg.MaxHTTPBufferSize)
	opts.SetConnectTimeout(cfg.ConnectTimeout)
	opts.SetAllowEIO3(cfg.AllowEIO3)
	opts.SetCors(&types.Cors{Origin: "*"})
	opts.SetParser(newStrictParser(parser.NewParser(), cfg.MaxHTTPBufferSize))
	s.io = socket.NewServer(nil, opts)
	sio := guardSocketIO(s.io, cfg, log)
	s.io.On("connection", func(args ...any) { s.onMainConnection(args[0].(*socket.Socket)) })
	s.io.Of("/custom", nil).On("connection", func(args ...any) { emitAuth(args[0].(*socket.Socket)) })

	eopts := config.DefaultServerOptions()
	eopts.SetPingInterval(cfg.PingInterval)
	eopts.SetPingTimeout(cfg.PingTimeout)
	eopts.SetMaxHttpBufferSize(cfg.MaxHTTPBufferSize)
	eopts.SetAllowEIO3(cfg.AllowEIO3)
	eopts.SetCors(&types.Cors{Origin: "*"})
	s.eio = engine.NewServer(eopts)
	_ = s.eio.On("connection", func(args ...any) { echo(args[0].(engine.Socket)) })
	eio := newGuard(s.eio, s.eio, cfg, log)

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", sio)
	mux.Handle("/engine.io/", eio)
	s.handler = allowAnyOrigin(mux)
	log.Info("conformance mode: Socket.IO reference server at /socket.io/, Engine.IO echo server at /engine.io/",
		"pingInterval", cfg.PingInterval, "pingTimeout", cfg.PingTimeout,
		"maxPayload", cfg.MaxHTTPBufferSize, "connectTimeout", cfg.ConnectTimeout)
	return s, nil
}

func (s *conformanceServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// allowAnyOrigin lets a browser read every answer, the guard's refusals
// included (the engine adds the same header to its own answers).
func allowAnyOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" {
			w.Header().Set("Access-Control-Allow-Origin", "*")
		}
		h.ServeHTTP(w, r)
	})
}

// onMainConnection serves one socket of the main namespace.
func (s *conformanceServer) onMainConnection(client *socket.Socket) {
	emitAuth(client)
	_ = client.On("message", func(args ...any) {
		_ = client.Emit("message-back", withoutAck(args)...)
	})
	_ = client.On("message-with-ack", func(args ...any) {
		if len(args) == 0 {
			return
		}
		if ack, ok := args[len(args)-1].(socket.Ack); ok {
			ack(withoutAck(args), nil)
		}
	})
}

// emitAuth sends the socket its handshake's auth payload, {} when none.
func emitAuth(client *socket.Socket) {
	auth := client.Handshake().Auth
	if auth == nil {
		auth = map[string]any{}
	}
	_ = client.Emit("auth", auth)
}

// withoutAck drops the acknowledgement callback the library appends to the
// arguments of an event sent with an id.
func withoutAck(args []any) []any {
	if n := len(args); n > 0 {
		if _, ok := args[n-1].(socket.Ack); ok {
			return args[:n-1]
		}
	}
	return args
}

// echo sends every message of an Engine.IO session back to it, text as
// text and binary as binary.
func echo(sock engine.Socket) {
	_ = sock.On("message", func(args ...any) {
		if len(args) == 0 {
			return
		}
		switch data := args[0].(type) {
		case *types.StringBuffer:
			sock.Send(types.NewStringBufferString(data.String()), nil, nil)
		case types.BufferInterface:
			sock.Send(types.NewBytesBuffer(append([]byte(nil), data.Bytes()...)), nil, nil)
		}
	})
}

// Close disconnects every client of both servers. Later calls do nothing.
func (s *conformanceServer) Close() {
	s.closeOnce.Do(func() {
		done := make(chan struct{})
		s.io.Close(func(error) { close(done) })
		<-done
		s.eio.Close()
	})
}

func (s *conformanceServer) sessions() uint64 {
	return s.io.Engine().ClientsCount() + s.eio.ClientsCount()
}

// waitDrained waits until no session of either server is left or ctx ends.
func (s *conformanceServer) waitDrained(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.sessions() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d sessions still open: %w", s.sessions(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
