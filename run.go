package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/chatio/socketio-chat/chat"
	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/internal/conformance"
)

// Exit statuses of run.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// run parses the configuration, serves until ctx ends, then shuts down
// gracefully. It returns the process exit status; only main exits.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := chat.ParseConfig(args, getenv, stderr)
	if errors.Is(err, chat.ErrHelp) {
		return exitOK
	} else if err != nil {
		fmt.Fprintf(stderr, "socketio-chat: %v\nRun with -h for the flags.\n", err)
		return exitUsage
	}
	if err := cfg.CheckFiles(); err != nil {
		fmt.Fprintf(stderr, "socketio-chat: %v\n", err)
		return exitUsage
	}
	log := newLogger(cfg, stdout)
	if cfg.GCPercent > 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if err := serve(ctx, cfg, log, nil); err != nil {
		log.Error("server failed", "err", err)
		return exitFailed
	}
	return exitOK
}

// newLogger builds the process logger from -log-format and -log-level.
func newLogger(cfg chat.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve listens on cfg.Addr and serves the chat until ctx ends. When ready is
// not nil it receives the bound address once the listener is open (tests use
// port 0). With cfg.MetricsAddr, the metrics are served on a listener of
// their own. Shutdown: /readyz turns 503 and, with cfg.DrainDelay, the server
// goes on serving that long; then it closes every Socket.IO session (new
// ones are refused), and once they are gone, or cfg.ShutdownGrace has passed,
// stops accepting and waits for the requests still running.
func serve(ctx context.Context, cfg chat.Config, log *slog.Logger, ready chan<- net.Addr) error {
	if nofile, err := openFileLimit(); err != nil {
		log.Warn("cannot read the open-file limit", "err", err)
	} else if err := fitFileLimit(&cfg, nofile, log); err != nil {
		return err
	}
	app, err := newApp(cfg, log)
	if err != nil {
		return err
	}
	// No TCP keep-alive probes on accepted connections (Node's http
	// server sends none either): WebSocket sessions have the heartbeat,
	// HTTP connections the header and idle timeouts. Go's default turns
	// them on with four setsockopt calls per connection, a fifth of the
	// system calls of a WebSocket connect.
	tcp, err := (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		app.Close()
		return fmt.Errorf("listen: %w", err)
	}
	ln := newLimitListener(tcp, cfg.MaxHTTPConnections, cfg.MaxPendingPerIP, log)
	if cs, ok := app.(*chat.Server); ok {
		ln.onRefuse = cs.Metrics().Refused
	}
	var full func() bool // no room for another session: /readyz answers 503
	if n, ok := app.(interface{ SessionsReserved() int }); ok {
		// As the engine's own gate: a handshake past -max-connections gets
		// 503 exactly when this is true.
		full = func() bool { return n.SessionsReserved() >= cfg.MaxConnections }
	}
	ops, err := serveOperations(cfg, app, log)
	if err != nil {
		app.Close()
		_ = tcp.Close()
		return err
	}
	srv := &http.Server{
		Handler:     ln.handler(app, cfg.Path, full),
		ConnContext: connContext,
		// A connection that stalls in its headers, or idles between
		// requests, is closed; long polls and bodies have their own
		// deadlines (the heartbeat's).
		// The keep-alive fast path (engineio.KeepAlive) applies the same.
		ReadHeaderTimeout: chat.HTTPHeaderTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    chat.HTTPMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState:         ln.connState,
	}
	errc := make(chan error, 2)
	// With the front door (-ws-front), WebSocket handshakes are served on
	// the event loop's readers, and every other connection goes to srv
	// through the hand-back listener below.
	var front *engineio.Front
	if fa, ok := app.(interface {
		Front(http.Handler) *engineio.Front
	}); ok {
		front = fa.Front(srv.Handler)
	}
	if front != nil {
		front.ConnContext, front.ConnState = connContext, ln.connState
		front.Direct = func(c net.Conn) bool {
			cc := countedOf(c)
			return cc != nil && cc.reserve // the health reserve's deadline is on the connection: net/http's
		}
		// The front's connections are accepted outside Go's poller: it
		// puts their sockets in the epoll set as they are.
		ln.Listener = engineio.AcceptListener(tcp)
		go func() { errc <- front.Serve(ln) }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	// The engine gives back, through hb, the keep-alive connections it
	// took over for long-polling when they send it anything else.
	if hb, ok := app.(interface{ HandBack() net.Listener }); ok {
		if hl := hb.HandBack(); hl != nil {
			go func() { errc <- srv.Serve(hl) }()
		}
	}
	log.Info("Server started", "addr", ln.Addr().String(), "url", "http://"+displayAddr(ln.Addr()))
	if ready != nil {
		ready <- ln.Addr()
	}

	select {
	case err := <-errc:
		app.Close()
		ops.close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	if d, ok := app.(interface{ Drain() }); ok {
		d.Drain()
		if cfg.DrainDelay > 0 {
			log.Info("draining before shutdown", "delay", cfg.DrainDelay)
			time.Sleep(cfg.DrainDelay)
		}
	}
	log.Info("shutting down", "grace", cfg.ShutdownGrace)
	defer ops.close()
	grace, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	// Sessions first, while the listener still accepts: a polling client
	// between two polls comes back for its CLOSE packet (new sessions are
	// refused meanwhile). Every session is told at once (app.Close); the
	// wait for them to be gone, and app.Close itself (which also closes
	// the adapter and the history store), are bounded by the grace. Then
	// the HTTP server: the listener, idle connections, and requests still
	// running.
	closeApp(grace, app, log)
	_ = ln.Close()
	ln.expireIdle() // connections waiting for a request: Shutdown would wait up to 5s for those that never sent one
	if err := srv.Shutdown(grace); err != nil {
		log.Warn("connections still open at the end of the grace period", "err", err)
		_ = srv.Close()
	}
	log.Info("server stopped")
	return nil
}

// closeApp closes a's sessions and waits for them to be gone, within ctx
// (the grace period): it returns when ctx ends even if a.Close has not
// returned (it goes on, on a goroutine of its own, until the process exits).
func closeApp(ctx context.Context, a app, log *slog.Logger) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		a.Close()
	}()
	select {
	case <-closed:
		if err := a.WaitDrained(ctx); err != nil {
			log.Warn("shutdown grace period ended", "err", err)
		}
	case <-ctx.Done():
		log.Warn("shutdown grace period ended while closing the sessions")
	}
}

// app is what serve runs: one handler with every route, and a way to close
// every session and wait for them to be gone.
type app interface {
	http.Handler
	Close()
	WaitDrained(ctx context.Context) error
}

// newApp builds the chat server, or the protocol test-suite servers with -conformance.
func newApp(cfg chat.Config, log *slog.Logger) (app, error) {
	if cfg.Conformance {
		return conformance.New(conformance.Options{MaxSessions: cfg.MaxConnections, AllowEIO3: cfg.AllowEIO3, Logger: log})
	}
	return chat.New(cfg, log)
}

// displayAddr turns a listen address into something a browser can open.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil || host == "" || host == "::" || host == "0.0.0.0" {
		return "localhost:" + port
	}
	return net.JoinHostPort(host, port)
}
