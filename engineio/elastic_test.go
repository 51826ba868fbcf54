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

// elasticUnderTest runs tasks (*task) as the engine's readers run reads.
func elasticUnderTest(mu *sync.Mutex) *elastic {
	return newElastic(func(c evConn, buf []byte) {
		tk := c.(*task)
		if tk.release != nil {
			<-tk.release
		}
		mu.Lock()
		tk.done = true
		mu.Unlock()
	})
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
			defer time.Sleep(2 * elasticIdle) // (fake time) the idle workers exit
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
			defer time.Sleep(2 * elasticIdle) // (fake time) the idle workers exit
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
			defer time.Sleep(2 * elasticIdle) // (fake time) the idle workers exit
			first := &task{}
			e.submit(first)
			synctest.Wait()
			time.Sleep(elasticIdle - time.Millisecond) // fake time: just before the exit
			synctest.Wait()
			if got := e.idle.Load(); got != 1 {
				t.Fatalf("%d idle workers before elasticIdle, want 1", got)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
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
			defer time.Sleep(2 * elasticIdle) // (fake time) the idle workers exit
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
