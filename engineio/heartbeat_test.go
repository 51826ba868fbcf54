package engineio

import (
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestHeartbeatsFireAtDeadlines: the shared heartbeat timer runs each
// session's timer at its deadline, in deadline order, after a rearming at
// the new deadline only, and never after a stop.
func TestHeartbeatsFireAtDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h heartbeats
		start := time.Now()
		var mu sync.Mutex
		fired := map[*Session][]time.Duration{}
		h.onDue = func(s *Session) {
			mu.Lock()
			fired[s] = append(fired[s], time.Since(start))
			mu.Unlock()
		}
		a, b, c, d := &Session{}, &Session{}, &Session{}, &Session{}
		at := func(dur time.Duration) int64 { return monoNow() + int64(dur) }
		h.set(a, at(3*time.Second))
		h.set(b, at(1*time.Second))
		h.set(c, at(2*time.Second))
		h.set(d, at(4*time.Second))
		h.set(b, at(5*time.Second)) // rearmed later, before it was due
		h.set(d, at(500*time.Millisecond))
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		h.stop(c) // stopped before it was due
		h.stop(d) // stopped after it fired: nothing to stop
		time.Sleep(10 * time.Second)
		synctest.Wait()
		want := map[*Session][]time.Duration{a: {3 * time.Second}, b: {5 * time.Second}, d: {500 * time.Millisecond}}
		mu.Lock()
		defer mu.Unlock()
		if len(fired) != len(want) {
			t.Fatalf("fired %v, want %v", fired, want)
		}
		for s, w := range want {
			if got := fired[s]; len(got) != 1 || got[0] != w[0] {
				t.Errorf("fired at %v, want %v", got, w)
			}
		}
		if len(h.heap) != 0 || a.beat != 0 || b.beat != 0 || c.beat != 0 || d.beat != 0 {
			t.Errorf("heap %d entries, places %d %d %d %d after all fired or stopped", len(h.heap), a.beat, b.beat, c.beat, d.beat)
		}
	})
}

// TestHeartbeatsHeap: under random arming and stopping, the heap stays a
// heap, each session knows its place, and its top is the earliest
// deadline.
func TestHeartbeatsHeap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := heartbeats{onDue: func(*Session) {}}
		rng := rand.New(rand.NewPCG(1, 2))
		sess := make([]*Session, 200)
		for i := range sess {
			sess[i] = &Session{}
		}
		want := map[*Session]int64{}
		base := monoNow() + int64(time.Hour) // nothing fires during the test
		for range 5000 {
			s := sess[rng.IntN(len(sess))]
			if rng.IntN(4) == 0 {
				h.stop(s)
				delete(want, s)
			} else {
				at := base + rng.Int64N(int64(time.Hour))
				h.set(s, at)
				want[s] = at
			}
			if len(h.heap) != len(want) {
				t.Fatalf("heap has %d entries, want %d", len(h.heap), len(want))
			}
			for i, e := range h.heap {
				if int(e.sess.beat) != i+1 || want[e.sess] != e.at {
					t.Fatalf("entry %d: place %d, deadline %d (want %d)", i, e.sess.beat, e.at, want[e.sess])
				}
				if i > 0 && h.heap[(i-1)/2].at > e.at {
					t.Fatalf("entry %d is earlier than its parent", i)
				}
			}
		}
		for _, s := range sess {
			h.stop(s)
		}
		if len(h.heap) != 0 || cap(h.heap) > 64 {
			t.Errorf("after every stop: %d entries, capacity %d", len(h.heap), cap(h.heap))
		}
		h.timer.Stop()
	})
}

// TestHeartbeatStaleFiring: a firing that the session's timer outlived (it
// was armed again, as a pong or a packet does, between the heap letting it
// go and onTimer taking the session's lock) is ignored, and the later
// arming fires at its own deadline. The session keeps no deadline of its
// own: that it is in the heap again tells.
func TestHeartbeatStaleFiring(t *testing.T) {
	// The server's I/O goroutines start outside the bubble; its heartbeat
	// timers are replaced by ones of the bubble's.
	srv := NewServer(Options{PingInterval: time.Second, PingTimeout: time.Second, Logger: discardLogger()}, nil)
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var due []time.Duration
		start := time.Now()
		srv.beats = heartbeats{onDue: func(*Session) {
			mu.Lock()
			due = append(due, time.Since(start))
			mu.Unlock()
		}}
		sess := newSession(srv, newID(), 4, httptest.NewRequest("GET", "/", nil))
		sess.handler = nopHandler{}
		pings := func() int {
			sess.mu.Lock()
			defer sess.mu.Unlock()
			return len(sess.queue)
		}
		arm := func(d time.Duration) {
			sess.mu.Lock()
			sess.setTimerLocked(d)
			sess.mu.Unlock()
		}

		arm(time.Second)
		time.Sleep(time.Second)
		synctest.Wait() // fired: out of the heap, onTimer not run yet
		arm(3 * time.Second)
		sess.onTimer() // the first firing, stale
		if n := pings(); n != 0 || sess.awaitPong {
			t.Fatalf("a stale firing sent %d PINGs (awaitPong %v)", n, sess.awaitPong)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		sess.onTimer() // the second one
		if n := pings(); n != 1 || !sess.awaitPong {
			t.Fatalf("the due firing sent %d PINGs (awaitPong %v), want 1", n, sess.awaitPong)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(due) != 2 || due[0] != time.Second || due[1] != 4*time.Second {
			t.Errorf("fired at %v, want [1s 4s]", due)
		}
		sess.mu.Lock()
		srv.beats.stop(sess)
		sess.mu.Unlock()
	})
}
