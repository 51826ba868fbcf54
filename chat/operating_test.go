package chat

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chatio/socketio-chat/history"
	"github.com/chatio/socketio-chat/internal/testlog"
)

// failingStore is a history store whose LastOffset fails as PostgreSQL's
// driver does when the database is down.
type failingStore struct {
	history.Store
	mu  sync.Mutex
	err error
}

func (f *failingStore) LastOffset(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return 0, f.err
}

// syncBuffer is a log a test reads while the server writes it.
type syncBuffer = testlog.Buffer

// /readyz on the public port says why in one short line; the store's own
// error (its user, database and host) goes to the log only, once per
// change.
func TestReadyzShortReason(t *testing.T) {
	const detail = "failed to connect to `user=chatadmin database=chat`: 10.1.2.3:5432 (db.internal): dial error: connection refused"
	var logs syncBuffer
	store := &failingStore{err: errors.New(detail)}
	s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil)), history: &chatHistory{store: store}}
	mux := http.NewServeMux()
	s.operatingRoutes(mux)
	get := func() (int, string) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		body, _ := io.ReadAll(w.Result().Body)
		return w.Code, string(body)
	}
	code, body := get()
	if code != http.StatusServiceUnavailable || body != "not ready: history store unavailable\n" {
		t.Errorf("/readyz = %d %q, want 503 \"not ready: history store unavailable\\n\"", code, body)
	}
	if !strings.Contains(logs.String(), "chatadmin") || !strings.Contains(logs.String(), `reason="history store unavailable"`) {
		t.Errorf("the store's error is not in the log:\n%s", logs.String())
	}
	s.ready.probed = s.ready.probed.AddDate(0, 0, -1) // the next probe is due
	if code, body := get(); code != http.StatusServiceUnavailable || strings.Contains(body, "chatadmin") {
		t.Errorf("/readyz again = %d %q", code, body)
	}
	if n := strings.Count(logs.String(), "chatadmin"); n != 1 {
		t.Errorf("the same error logged %d times, want once:\n%s", n, logs.String())
	}
	store.mu.Lock()
	store.err = nil
	store.mu.Unlock()
	s.ready.probed = s.ready.probed.AddDate(0, 0, -1)
	if code, body := get(); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz once the store answers = %d %q", code, body)
	}
	if !strings.Contains(logs.String(), "available again") {
		t.Errorf("no log line when the store answers again:\n%s", logs.String())
	}
}
