// Package conformance serves what the upstream Socket.IO and Engine.IO
// protocol test suites (socket.io-protocol and engine.io-protocol,
// test-suite/) expect of their reference servers, on our core.
package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/socketio"
)

// The settings the suites expect of the reference servers.
const (
	PingInterval   = 300 * time.Millisecond
	PingTimeout    = 200 * time.Millisecond
	MaxPayload     = 1_000_000
	ConnectTimeout = 1000 * time.Millisecond
)

// Options are what the conformance servers take from the command line.
type Options struct {
	// MaxSessions bounds the sessions of each server (0: no limit).
	MaxSessions int
	// AllowEIO3 accepts Engine.IO v3 clients.
	AllowEIO3 bool
	Logger    *slog.Logger
}

// Server is what -conformance serves, on one port:
//
//   - /socket.io/: the Socket.IO v5 reference server. On connection to "/"
//     or "/custom" it emits "auth" with the handshake's auth payload; on "/",
//     "message" is answered with "message-back" and the same arguments, and
//     "message-with-ack" is acknowledged with the arguments. Other namespaces
//     are refused with {"message":"Invalid namespace"}.
//   - /engine.io/: the Engine.IO v4 reference server, which sends every
//     message back to its sender, text as text and binary as binary.
//
// Every answer allows any origin (CORS "*").
type Server struct {
	io      *socketio.Server
	eio     *engineio.Server
	handler http.Handler

	closeOnce sync.Once
}

// New builds both servers.
func New(o Options) (*Server, error) {
	eopts := engineio.Options{
		PingInterval:  PingInterval,
		PingTimeout:   PingTimeout,
		MaxBufferSize: MaxPayload,
		AllowEIO3:     o.AllowEIO3,
		MaxSessions:   o.MaxSessions,
		Logger:        o.Logger,
	}
	io, err := socketio.NewServer(socketio.Options{Engine: eopts, ConnectTimeout: ConnectTimeout, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	s := &Server{io: io}
	io.OnConnection(s.onMainConnection)
	io.Of("/custom").OnConnection(emitAuth)
	s.eio = engineio.NewServer(eopts, func(sess *engineio.Session) engineio.SessionHandler { return echo{sess} })

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", io)
	mux.Handle("/engine.io/", s.eio)
	s.handler = allowAnyOrigin(mux)
	o.Logger.Info("conformance mode: Socket.IO reference server at /socket.io/, Engine.IO echo server at /engine.io/",
		"pingInterval", PingInterval, "pingTimeout", PingTimeout, "maxPayload", MaxPayload, "connectTimeout", ConnectTimeout)
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// IO is the Socket.IO reference server; Engine the Engine.IO echo server.
func (s *Server) IO() *socketio.Server     { return s.io }
func (s *Server) Engine() *engineio.Server { return s.eio }

// allowAnyOrigin lets a browser read every answer, refusals included.
func allowAnyOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			if r.Method == http.MethodOptions {
				w.Header().Set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
				if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
					w.Header().Set("Access-Control-Allow-Headers", req)
				}
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// onMainConnection serves one socket of the main namespace.
func (s *Server) onMainConnection(client *socketio.Socket) {
	emitAuth(client)
	client.On("message", func(e *socketio.Event) {
		_ = client.Emit("message-back", argsOf(e)...)
	})
	client.On("message-with-ack", func(e *socketio.Event) {
		_ = e.Ack(argsOf(e)...)
	})
}

func argsOf(e *socketio.Event) []any {
	out := make([]any, len(e.Args))
	for i, a := range e.Args {
		out[i] = a
	}
	return out
}

// emitAuth sends the socket its handshake's auth payload, {} when none.
func emitAuth(client *socketio.Socket) {
	auth := client.Handshake().Auth
	if len(auth) == 0 {
		auth = json.RawMessage("{}")
	}
	_ = client.Emit("auth", auth)
}

// echo sends every message of an Engine.IO session back to it.
type echo struct{ s *engineio.Session }

func (e echo) OnMessage(data []byte, binary bool) {
	if binary {
		_ = e.s.Send(engineio.BinaryMessage(data))
		return
	}
	_ = e.s.Send(engineio.TextMessage(append([]byte{'4'}, data...)))
}

func (e echo) OnQueueOverflow()      { e.s.Close("slow consumer") }
func (e echo) OnClose(string, error) {}

// Close disconnects every client of both servers. Later calls do nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.io.Close()
		s.eio.Close()
	})
}

// Sessions is the number of sessions of both servers not yet gone.
func (s *Server) Sessions() int { return s.io.Engine().Len() + s.eio.Len() }

// WaitDrained waits until no session of either server is left or ctx ends.
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
