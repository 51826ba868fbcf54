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
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/chat"
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
	app, err := newApp(cfg, log)
	if err != nil {
		return err
	}
	tcp, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		app.Close()
		return fmt.Errorf("listen: %w", err)
	}
	ln := &limitListener{Listener: tcp, max: int64(cfg.MaxHTTPConnections), log: log}
	if cs, ok := app.(*chat.Server); ok {
		ln.onRefuse = func() { cs.Metrics().Refused(0, "too_many_http_connections") }
	}
	ops, err := serveOperations(cfg, app, log)
	if err != nil {
		app.Close()
		_ = tcp.Close()
		return err
	}
	srv := &http.Server{
		Handler: app,
		// A connection that stalls in its headers, or idles between
		// requests, is closed; long polls and bodies have their own
		// deadlines (the heartbeat's).
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState: func(c net.Conn, state http.ConnState) {
			if cc, ok := c.(*countedConn); ok && (state == http.StateHijacked || state == http.StateClosed) {
				cc.release()
			}
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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
	// refused meanwhile). Then the HTTP server: the listener, idle
	// connections, and requests still running.
	app.Close()
	if err := app.WaitDrained(grace); err != nil {
		log.Warn("shutdown grace period ended", "err", err)
	}
	if err := srv.Shutdown(grace); err != nil {
		log.Warn("connections still open at the end of the grace period", "err", err)
		_ = srv.Close()
	}
	log.Info("server stopped")
	return nil
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

// limitListener bounds the HTTP connections open at once: one accepted
// beyond max is closed at once (and counted). A connection counts until it
// is closed, or taken over as a WebSocket, which the session limit bounds
// from then on.
type limitListener struct {
	net.Listener
	max      int64
	log      *slog.Logger
	onRefuse func() // counts a refusal; nil counts nothing
	open     atomic.Int64
	refused  atomic.Uint64
	logged   atomic.Int64 // unix second of the last refusal logged at warn
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &countedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		if l.onRefuse != nil {
			l.onRefuse()
		}
		_ = c.Close()
		if now := time.Now().Unix(); l.logged.Swap(now) != now {
			l.log.Warn("refused connection", "remote", c.RemoteAddr().String(), "open", l.max,
				"reason", "too many HTTP connections (-max-http-connections)")
		}
	}
}

// countedConn is a connection counted by its limitListener.
type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

// release takes the connection out of the count, once.
func (c *countedConn) release() { c.once.Do(func() { c.l.open.Add(-1) }) }

func (c *countedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// NetConn is the connection underneath (the engine takes WebSockets' sockets from it).
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// displayAddr turns a listen address into something a browser can open.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil || host == "" || host == "::" || host == "0.0.0.0" {
		return "localhost:" + port
	}
	return net.JoinHostPort(host, port)
}
