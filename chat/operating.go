package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/metrics"
	"github.com/chatio/socketio-chat/socketio/admin"
)

// What an operator sees of a running chat (docs/OPERATING.md): Prometheus
// metrics (-metrics-addr; run serves them on their own listener), the
// Socket.IO Admin UI (-admin-ui) and readiness (/readyz).

// chatEvents are the chat's own event names, counted under their names in
// the socket_io_* metrics (any other name a client sends counts as _other).
var chatEvents = []string{"user-message", "message"}

// observe sets up metrics and the Admin UI, before any client connects.
func (s *Server) observe() error {
	c := s.cfg
	if c.MetricsAddr != "" {
		s.metrics = metrics.New(metrics.Options{Events: chatEvents})
		s.metrics.Instrument(s.io)
		if s.cluster != nil {
			s.metrics.InstrumentCluster(s.cluster)
		}
		if s.sharded != nil {
			s.metrics.InstrumentCluster(s.sharded)
		}
		if s.streams != nil {
			s.metrics.InstrumentStreams(s.streams)
		}
	}
	if c.AdminUI {
		ui, err := admin.UIHandler(c.AdminUIDir, "/admin/")
		if err != nil {
			return fmt.Errorf("-admin-ui: %w", err)
		}
		opts := admin.Options{NoAuth: c.AdminNoAuth, ReadOnly: c.AdminReadOnly, Logger: s.log}
		if !c.AdminNoAuth {
			opts.Auth = &admin.BasicAuth{Username: c.AdminUser, PasswordHash: c.AdminPasswordHash}
		}
		a, err := admin.Instrument(s.io, opts)
		if err != nil {
			return fmt.Errorf("-admin-ui: %w", err)
		}
		s.admin, s.adminUI = a, ui
		s.log.Info("admin UI on", "path", "/admin/", "server_id", a.ServerID(),
			"auth", !c.AdminNoAuth, "readonly", c.AdminReadOnly)
	}
	return nil
}

// operatingRoutes adds /readyz and the Admin UI's files.
func (s *Server) operatingRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := s.Ready(r.Context()); err != nil {
			// One short reason (the public port shows it); the details
			// (a store's error names its user, database and host) go to
			// the log.
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if s.adminUI != nil {
		mux.Handle("/admin/", s.adminUI)
		mux.Handle("/admin", s.adminUI)
	}
}

// Metrics is the server's Prometheus metrics, or nil without -metrics-addr.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// MetricsHandler serves /metrics, or is nil without -metrics-addr.
func (s *Server) MetricsHandler() http.Handler {
	if s.metrics == nil {
		return nil
	}
	return s.metrics.Handler()
}

// readiness is what /readyz reports.
type readiness struct {
	draining atomic.Bool

	// the history store's last probe, kept for a second so that frequent
	// probes do not load the database
	mu          sync.Mutex
	probed      time.Time
	probeErr    error  // errHistoryUnavailable or nil
	probeDetail string // the store's own error, logged when it changes
}

// historyProbeEvery is how long a history store probe's result is kept.
const historyProbeEvery = time.Second

// Why /readyz answers 503, in a few words.
var (
	errDraining           = errors.New("draining")
	errRedisUnavailable   = errors.New("redis unavailable")
	errHistoryUnavailable = errors.New("history store unavailable")
)

// Drain makes /readyz answer 503 from now on: the process is about to
// stop, new clients should go elsewhere. Call it as shutdown starts.
func (s *Server) Drain() {
	if !s.ready.draining.Swap(true) {
		s.log.Info("draining: /readyz answers 503")
	}
}

// Ready reports why the server should get no new clients, or nil: it is
// draining, the Redis adapter does not hear the cluster, or the history
// store does not answer. The error is one of a few short reasons; a
// store's own error is logged (when the store stops answering, or answers
// with another error), not returned.
func (s *Server) Ready(ctx context.Context) error {
	if s.ready.draining.Load() {
		return errDraining
	}
	if s.cluster != nil && !s.cluster.Up() || s.sharded != nil && !s.sharded.Up() {
		return errRedisUnavailable
	}
	if s.streams != nil && !s.streams.Up() {
		return errRedisUnavailable
	}
	if s.history != nil {
		return s.ready.probeHistory(ctx, s.history, s.log)
	}
	return nil
}

func (r *readiness) probeHistory(ctx context.Context, h *chatHistory, log *slog.Logger) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.probed) < historyProbeEvery {
		return r.probeErr
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := h.store.LastOffset(ctx)
	switch {
	case err != nil && (r.probeErr == nil || r.probeDetail != err.Error()):
		log.Warn("not ready: history store unavailable", "reason", "history store unavailable", "err", err)
	case err == nil && r.probeErr != nil:
		log.Info("ready: history store available again")
	}
	r.probeDetail = ""
	if err != nil {
		r.probeDetail = err.Error()
		err = errHistoryUnavailable
	}
	r.probed, r.probeErr = time.Now(), err
	return err
}
