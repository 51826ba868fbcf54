// Package testlog routes a server's log lines to a test's log, for the
// tests of every package of this module.
package testlog

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// New returns a logger that writes to tb's log at level and above until the
// test ends. Lines logged later (a session's goodbye, a timer, a worker
// still draining) are dropped: logging to a finished test is a data race.
func New(tb testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(tb), &slog.HandlerOptions{Level: level}))
}

// Writer returns a writer that logs each write to tb's log until the test
// ends, and drops what comes later (a child process's stderr, for one).
func Writer(tb testing.TB) *TBWriter {
	w := &TBWriter{tb: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

// TBWriter is the writer Writer returns; any goroutine may write to it.
type TBWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool // the test has ended
}

func (w *TBWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Logf("%s", bytes.TrimSuffix(p, []byte("\n")))
	}
	return len(p), nil
}

// Buffer is a bytes.Buffer that several goroutines may write and read: a
// log that a test reads while the server writes it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
