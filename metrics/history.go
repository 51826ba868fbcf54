package metrics

import (
	"context"
	"time"

	"github.com/chatio/socketio-chat/history"
)

// HistoryStore returns s with its writes measured: chat_history_writes_total
// counts the messages of each Append by result, chat_history_write_seconds
// its duration (one group commit). The other methods pass through. On a nil
// *Metrics it returns s itself.
func (m *Metrics) HistoryStore(s history.Store) history.Store {
	if m == nil {
		return s
	}
	m.registerHistory()
	return &historyStore{Store: s, m: m}
}

// ObserveHistoryWrite records one write of n messages to a history store
// that took d, for stores not wrapped by HistoryStore.
func (m *Metrics) ObserveHistoryWrite(n int, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.registerHistory()
	m.histLatency.Observe(d.Seconds())
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.histWrites.WithLabelValues(result).Add(float64(n))
}

type historyStore struct {
	history.Store
	m *Metrics
}

func (h *historyStore) Append(ctx context.Context, msgs []history.Message) ([]history.Result, error) {
	start := time.Now()
	res, err := h.Store.Append(ctx, msgs)
	if len(msgs) > 0 {
		h.m.ObserveHistoryWrite(len(msgs), time.Since(start), err)
	}
	return res, err
}

var _ history.Store = (*historyStore)(nil)

// registerHistory registers the history metrics, once, when there is a
// history to measure.
func (m *Metrics) registerHistory() {
	m.history.Do(func() { m.reg.MustRegister(m.histWrites, m.histLatency) })
}
