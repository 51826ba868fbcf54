package engineio

import (
	"sync"
	"time"
)

// heartbeats are a server's heartbeat timers (the next PING of each v4
// session, or its pong deadline; a v3 session's deadline for the client's
// PING): the sessions' deadlines in a min-heap, and one runtime timer for
// the earliest. A runtime timer per session (time.AfterFunc) costs about
// 140 bytes of every idle connection (the timer and its function value); a
// heap entry costs 16, and the session 4 more for its place in the heap.
//
// A session's timer is armed and stopped under the session's lock, which is
// taken before the heap's; the heap's lock is never held while anything
// else is. A session whose deadline passed is taken out of the heap and its
// onTimer runs on a goroutine of its own, as time.AfterFunc would run it;
// onTimer ignores a firing that a later arming made stale: the session is
// in the heap again by then (pending), and that arming's firing follows. So
// the session keeps no deadline of its own.
type heartbeats struct {
	mu    sync.Mutex
	heap  []beat
	timer *time.Timer // due at heap[0]'s deadline, or later when nothing is
	at    int64       // when timer is due (monoNow), if armed
	armed bool

	onDue func(*Session) // runs a due session's timer; nil: go sess.onTimer() (tests replace it)
}

type beat struct {
	at   int64 // the deadline (monoNow)
	sess *Session
}

// set arms sess's timer for its deadline, at, in place of any earlier one.
// sess.mu is held.
func (h *heartbeats) set(sess *Session, at int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := int(sess.beat) - 1; i >= 0 {
		old := h.heap[i].at
		h.heap[i].at = at
		if at < old {
			h.up(i)
		} else {
			h.down(i)
		}
	} else {
		h.heap = append(h.heap, beat{at: at, sess: sess})
		sess.beat = int32(len(h.heap))
		h.up(len(h.heap) - 1)
	}
	h.armLocked()
}

// pending reports whether sess's timer is armed (in the heap), which makes
// a firing that onTimer is about to handle stale. sess.mu is held.
func (h *heartbeats) pending(sess *Session) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return sess.beat != 0
}

// stop disarms sess's timer. sess.mu is held.
func (h *heartbeats) stop(sess *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := int(sess.beat) - 1; i >= 0 {
		h.removeLocked(i)
	}
}

// armLocked makes the runtime timer due at the earliest deadline, if it is
// not due before that already.
func (h *heartbeats) armLocked() {
	if len(h.heap) == 0 {
		return
	}
	next := h.heap[0].at
	if h.armed && h.at <= next {
		return
	}
	h.at, h.armed = next, true
	d := time.Duration(next - monoNow())
	if h.timer == nil {
		h.timer = time.AfterFunc(d, h.fire)
	} else {
		h.timer.Reset(d)
	}
}

// fire runs on the runtime timer's goroutine: it takes the sessions whose
// deadline passed out of the heap, runs their onTimer, and rearms.
func (h *heartbeats) fire() {
	now := monoNow()
	var due []*Session
	h.mu.Lock()
	for len(h.heap) > 0 && h.heap[0].at <= now {
		due = append(due, h.heap[0].sess)
		h.removeLocked(0)
	}
	h.armed = false
	h.armLocked()
	h.mu.Unlock()
	for _, s := range due {
		if h.onDue != nil {
			h.onDue(s)
		} else {
			go s.onTimer()
		}
	}
}

func (h *heartbeats) removeLocked(i int) {
	h.heap[i].sess.beat = 0
	last := len(h.heap) - 1
	if i != last {
		h.heap[i] = h.heap[last]
		h.heap[i].sess.beat = int32(i + 1)
	}
	h.heap[last] = beat{}
	h.heap = h.heap[:last]
	if i != last {
		h.up(i)
		h.down(i)
	}
	if cap(h.heap) > 64 && len(h.heap) < cap(h.heap)/4 {
		h.heap = append([]beat(nil), h.heap...) // give back what a crowd of sessions took
	}
}

func (h *heartbeats) swap(i, j int) {
	h.heap[i], h.heap[j] = h.heap[j], h.heap[i]
	h.heap[i].sess.beat = int32(i + 1)
	h.heap[j].sess.beat = int32(j + 1)
}

func (h *heartbeats) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.heap[p].at <= h.heap[i].at {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *heartbeats) down(i int) {
	n := len(h.heap)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && h.heap[r].at < h.heap[c].at {
			c = r
		}
		if h.heap[i].at <= h.heap[c].at {
			return
		}
		h.swap(i, c)
		i = c
	}
}
