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
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	} else if err != nil {
		fmt.Fprintf(stderr, "socketio-chat: %v\nRun with -h for the flags.\n", err)
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
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve listens on cfg.Addr and serves the chat until ctx ends. When ready is
// not nil it receives the bound address once the listener is open (tests use
// port 0). Shutdown: stop accepting, close every Socket.IO session, wait up to
// cfg.ShutdownGrace for requests to finish.
func serve(ctx context.Context, cfg Config, log *slog.Logger, ready chan<- net.Addr) error {
	app, err := newApp(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
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
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down", "grace", cfg.ShutdownGrace)
	grace, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(grace) }() // closes the listener at once
	app.Close()
	if err := app.waitDrained(grace); err != nil {
		log.Warn("shutdown grace period ended", "err", err)
	}
	if err := <-shut; err != nil {
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
	waitDrained(ctx context.Context) error
}

// newApp builds the chat server, or the protocol test-suite servers with -conformance.
func newApp(cfg Config, log *slog.Logger) (app, error) {
	if cfg.Conformance {
		return newConformanceServer(cfg, log)
	}
	return newChatServer(cfg, log)
}

// displayAddr turns a listen address into something a browser can open.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil || host == "" || host == "::" || host == "0.0.0.0" {
		return "localhost:" + port
	}
	return net.JoinHostPort(host, port)
}
