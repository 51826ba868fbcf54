package testlog

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// fakeTB records what is logged and runs its cleanups when told.
type fakeTB struct {
	testing.TB
	lines    []string
	cleanups []func()
}

func (f *fakeTB) Logf(format string, args ...any) {
	f.lines = append(f.lines, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) end() {
	for _, fn := range slices.Backward(f.cleanups) {
		fn()
	}
}

func TestWriterDropsLinesAfterTheTest(t *testing.T) {
	tb := &fakeTB{}
	w := Writer(tb)
	for _, line := range []string{"during\n", "no newline"} {
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", line, n, err)
		}
	}
	tb.end()
	if n, err := w.Write([]byte("after\n")); n != 6 || err != nil {
		t.Fatalf("Write after the test = %d, %v", n, err)
	}
	if want := []string{"during", "no newline"}; !slices.Equal(tb.lines, want) {
		t.Errorf("logged %q, want %q", tb.lines, want)
	}
}

func TestNewFiltersByLevel(t *testing.T) {
	tb := &fakeTB{}
	log := New(tb, slog.LevelInfo)
	log.Debug("hidden")
	log.Info("shown", "k", 1)
	tb.end()
	log.Info("after the test")
	if len(tb.lines) != 1 || !strings.Contains(tb.lines[0], `msg=shown k=1`) {
		t.Errorf("logged %q, want the one info line", tb.lines)
	}
}
