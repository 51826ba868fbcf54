package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/chatio/socketio-chat/chat"
)

// operations is the listener of -metrics-addr: Prometheus' /metrics and,
// with -pprof, net/http/pprof at /debug/pprof/. It is apart from the
// public port, so that neither is ever exposed with the chat.
type operations struct{ srv *http.Server }

// serveOperations listens on cfg.MetricsAddr, when set, and serves the
// app's metrics there. It returns once the listener is open (an error
// when it cannot be), so that its address is known and logged.
func serveOperations(cfg chat.Config, a app, log *slog.Logger) (*operations, error) {
	ops := &operations{}
	m, ok := a.(interface{ MetricsHandler() http.Handler })
	if cfg.MetricsAddr == "" || !ok || m.MetricsHandler() == nil {
		return ops, nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.MetricsHandler())
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("listen -metrics-addr: %w", err)
	}
	ops.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() { _ = ops.srv.Serve(ln) }()
	log.Info("metrics listening", "addr", ln.Addr().String(), "url", "http://"+displayAddr(ln.Addr())+"/metrics", "pprof", cfg.Pprof)
	return ops, nil
}

// close stops the listener and its requests at once. Later calls do nothing.
func (o *operations) close() {
	if o.srv != nil {
		_ = o.srv.Close()
	}
}
