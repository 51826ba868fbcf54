package engineio

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// task is an evConn for the elastic pool's tests: its read waits for
// release (if set).
type task struct {
	evState
	release chan struct{}
	done    bool
}

func (t *task) evs() *evState      { return &t.evState }
func (t *task) runRead(buf []byte) {}
func (t *task) runFlush()          {}

// elasticTest is an elastic pool that runs tasks (*task) as the engine's
// readers run reads, and tells when each worker exits.
type elasticTest struct {
	*elastic
	exits chan time.Time // when each worker exited
	seen  int64          // exits received
}

func elasticUnderTest(mu *sync.Mutex) *elasticTest {
	p := &elasticTest{exits: make(chan time.Time, 4*elasticMaxIdle+16)}
	p.elastic = newElastic(func(c evConn, buf []byte) {
		tk := c.(*task)
		if tk.release != nil {
			<-tk.release
		}
		mu.Lock()
		tk.done = true
		mu.Unlock()
	})
	p.onExit = func() { p.exits <- time.Now() }
	return p
}

// nextExit waits for a worker to exit, for at most twice elasticIdle (of
// the bubble's fake time), and returns when it did.
func (p *elasticTest) nextExit(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-p.exits:
		p.seen++
		return at
	case <-time.After(2 * elasticIdle):
		t.Fatalf("no worker exited within %v (%d of %d did)", 2*elasticIdle, p.seen, p.started.Load())
		return time.Time{}
	}
}

// allExit waits until every worker started has exited (an idle one does
// elasticIdle after its last task), as the bubble's end requires.
func (p *elasticTest) allExit(t *testing.T) {
	t.Helper()
	for p.seen < p.started.Load() {
		p.nextExit(t)
	}
}

// TestElastic: a task submitted while a worker is idle runs on it, one
// submitted while every worker is busy gets a new worker, a
// worker idle for elasticIdle exits, and no more than elasticMaxIdle stay
// idle after a burst.
func TestElastic(t *testing.T) {
	t.Run("reuse", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			e := elasticUnderTest(&mu)
			defer e.allExit(t)
			a, b := &task{}, &task{}
			e.submit(a)
			synctest.Wait() // a done, its worker idle
			if got := e.idle.Load(); got != 1 {
				t.Fatalf("%d idle workers, want 1", got)
			}
			e.submit(b)
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if !a.done || !b.done || e.started.Load() != 1 {
				t.Errorf("done %v %v, %d workers started: want both run by one worker", a.done, b.done, e.started.Load())
			}
		})
	})

	t.Run("busy", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			e := elasticUnderTest(&mu)
			defer e.allExit(t)
			blocked := &task{release: make(chan struct{})}
			next := &task{}
			e.submit(blocked)
			e.submit(next)
			synctest.Wait()
			mu.Lock()
			if blocked.done || !next.done {
				t.Errorf("blocked done %v, next done %v: want next run beside the blocked one", blocked.done, next.done)
			}
			mu.Unlock()
			close(blocked.release)
			synctest.Wait()
			mu.Lock()
			if !blocked.done || e.started.Load() != 2 {
				t.Errorf("blocked done %v, %d workers started; want 2", blocked.done, e.started.Load())
			}
			mu.Unlock()
			if got := e.idle.Load(); got != 2 {
				t.Errorf("%d idle workers, want 2", got)
			}
		})
	})

	t.Run("idle exit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			e := elasticUnderTest(&mu)
			defer e.allExit(t)
			first := &task{}
			e.submit(first)
			synctest.Wait()
			idleSince := time.Now()
			if got := e.idle.Load(); got != 1 {
				t.Fatalf("%d idle workers, want 1", got)
			}
			// Fake time: the exit is at an exact instant, elasticIdle after
			// the worker became idle, not a moment before.
			if got := e.nextExit(t).Sub(idleSince); got != elasticIdle {
				t.Fatalf("the idle worker exited after %v, want %v", got, elasticIdle)
			}
			if got := e.idle.Load(); got != 0 {
				t.Fatalf("%d idle workers after elasticIdle, want 0", got)
			}
			later := &task{}
			e.submit(later)
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if !later.done || e.started.Load() != 2 {
				t.Errorf("done %v, %d workers started; want a new one after the first exited", later.done, e.started.Load())
			}
		})
	})

	t.Run("at most elasticMaxIdle idle", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			e := elasticUnderTest(&mu)
			defer e.allExit(t)
			release := make(chan struct{})
			n := int(elasticMaxIdle) + 10
			tasks := make([]*task, n)
			for i := range tasks {
				tasks[i] = &task{release: release}
				e.submit(tasks[i])
			}
			synctest.Wait()
			close(release)
			synctest.Wait()
			mu.Lock()
			for i, tk := range tasks {
				if !tk.done {
					t.Errorf("task %d not run", i)
				}
			}
			mu.Unlock()
			if got := e.idle.Load(); got != elasticMaxIdle {
				t.Errorf("%d idle workers after a burst of %d, want %d", got, n, elasticMaxIdle)
			}
		})
	})
}
