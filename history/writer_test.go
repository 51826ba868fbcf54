package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// gateStore is a fake Store whose Append blocks until the test opens the
// gate, and records the batch sizes it was given.
type gateStore struct {
	entered chan int      // receives len(msgs) when Append starts
	gate    chan struct{} // Append proceeds once per receive from gate
	mu      sync.Mutex
	batches []int
	next    int64
	results func(n int) int // how many results to return; nil: n
}

func newGateStore() *gateStore {
	return &gateStore{entered: make(chan int, 100), gate: make(chan struct{})}
}

func (g *gateStore) Append(ctx context.Context, msgs []Message) ([]Result, error) {
	g.entered <- len(msgs)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.batches = append(g.batches, len(msgs))
	n := len(msgs)
	if g.results != nil {
		n = g.results(n)
	}
	res := make([]Result, n)
	for i := range res {
		g.next++
		res[i] = Result{Offset: g.next}
	}
	return res, nil
}

func (g *gateStore) After(context.Context, int64, int) ([]Record, error) { return nil, nil }
func (g *gateStore) Last(context.Context, int) ([]Record, error)         { return nil, nil }
func (g *gateStore) LastOffset(context.Context) (int64, error)           { return 0, nil }
func (g *gateStore) Trim(context.Context, Retention) (int64, error)      { return 0, nil }
func (g *gateStore) Close() error                                        { return nil }
func (g *gateStore) Settle(context.Context, *UncertainError, []Message) (bool, error) {
	return false, nil
}

var _ Store = (*gateStore)(nil)

// waitEntered waits until Append was called, and returns its batch size.
func (g *gateStore) waitEntered(t *testing.T) int {
	t.Helper()
	select {
	case n := <-g.entered:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("Append not called within 10s")
		return 0
	}
}

// collector records callbacks.
type collector struct {
	mu   sync.Mutex
	res  []Result
	errs []error
	wg   sync.WaitGroup
}

func (c *collector) cb() func(Result, error) {
	c.wg.Add(1)
	return func(r Result, err error) {
		defer c.wg.Done()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.res = append(c.res, r)
		c.errs = append(c.errs, err)
	}
}

func (c *collector) wait(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("callbacks not called within 10s")
	}
}

func TestWriterBatches(t *testing.T) {
	cases := []struct {
		maxBatch, waiting int
		want              string
	}{
		{256, 10, "[1 10]"},
		{4, 10, "[1 4 4 2]"},
		{1, 3, "[1 1 1 1]"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint("max", c.maxBatch), func(t *testing.T) {
			g := newGateStore()
			w := NewWriter(g, WriterOptions{MaxBatch: c.maxBatch})
			var col collector
			w.Submit(msg(`0`, ""), col.cb())
			g.waitEntered(t) // the first batch is in flight; the rest wait
			for i := 0; i < c.waiting; i++ {
				w.Submit(msg(fmt.Sprint(i+1), ""), col.cb())
			}
			go func() {
				for range g.entered {
					g.gate <- struct{}{}
				}
			}()
			g.gate <- struct{}{}
			col.wait(t)
			if err := w.Close(testCtx(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			close(g.entered)
			if got := fmt.Sprint(g.batches); got != c.want {
				t.Fatalf("batches %s, want %s", got, c.want)
			}
			for i, r := range col.res {
				if col.errs[i] != nil || r.Offset != int64(i+1) {
					t.Fatalf("callback %d: %+v, %v; want offset %d in order", i, r, col.errs[i], i+1)
				}
			}
			if st := w.Stats(); st.Batches != uint64(len(g.batches)) || st.Messages != uint64(c.waiting+1) {
				t.Fatalf("Stats %+v", st)
			}
		})
	}
}

func TestWriterQueueFull(t *testing.T) {
	g := newGateStore()
	w := NewWriter(g, WriterOptions{MaxBatch: 1, QueueSize: 2})
	var col collector
	w.Submit(msg(`1`, ""), col.cb())
	g.waitEntered(t)
	w.Submit(msg(`2`, ""), col.cb())
	w.Submit(msg(`3`, ""), col.cb())
	called := false
	w.Submit(msg(`4`, ""), func(_ Result, err error) {
		called = true
		if !errors.Is(err, ErrQueueFull) {
			t.Errorf("4th submission: %v, want ErrQueueFull", err)
		}
	})
	if !called {
		t.Fatal("the refused submission's callback did not run before Submit returned")
	}
	go func() {
		for range g.entered {
			g.gate <- struct{}{}
		}
	}()
	g.gate <- struct{}{}
	col.wait(t)
	w.Close(testCtx(t, 10*time.Second))
	close(g.entered)
	for i, err := range col.errs {
		if err != nil {
			t.Errorf("queued submission %d: %v", i, err)
		}
	}
}

// TestWriterCloseGivesUp closes a Writer whose store hangs: Close returns at
// its deadline, the commit in flight fails with the cancellation, the queued
// submissions with ErrClosed.
func TestWriterCloseGivesUp(t *testing.T) {
	g := newGateStore()
	w := NewWriter(g, WriterOptions{MaxBatch: 1, CommitTimeout: time.Hour})
	var col collector
	w.Submit(msg(`1`, ""), col.cb())
	g.waitEntered(t)
	w.Submit(msg(`2`, ""), col.cb())
	w.Submit(msg(`3`, ""), col.cb())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	col.wait(t)
	if !errors.Is(col.errs[0], context.Canceled) {
		t.Errorf("in flight: %v, want context.Canceled", col.errs[0])
	}
	for _, err := range col.errs[1:] {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("queued: %v, want ErrClosed", err)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestWriterBadStore(t *testing.T) {
	g := newGateStore()
	g.results = func(n int) int { return n - 1 }
	close(g.gate)
	w := NewWriter(g, WriterOptions{})
	defer w.Close(testCtx(t, 10*time.Second))
	if _, err := submitWait(t, w, msg(`1`, "")); err == nil {
		t.Fatal("a store returning too few results was not reported")
	}
}

// TestWriterSubmitFromCallback submits from inside a callback (on the writer
// goroutine): Submit never blocks, so this does not deadlock.
func TestWriterSubmitFromCallback(t *testing.T) {
	g := newGateStore()
	close(g.gate)
	w := NewWriter(g, WriterOptions{})
	defer w.Close(testCtx(t, 10*time.Second))
	done := make(chan Result, 1)
	w.Submit(msg(`1`, ""), func(Result, error) {
		w.Submit(msg(`2`, ""), func(r Result, err error) { done <- r })
	})
	select {
	case r := <-done:
		if r.Offset != 2 {
			t.Fatalf("second message at %d", r.Offset)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nested submission not stored within 10s")
	}
}
