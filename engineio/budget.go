package engineio

import (
	"slices"
	"time"
	"unsafe"
)

// What the server holds for a client's send queue is accounted by what it
// costs, not only by the bytes the client will receive:
//
//   - a queued packet (Message) costs its payload and its slot in the
//     queue's slice, plus that slice's slack: append grows a slice to at
//     most twice its length, so a slot costs at most twice a Message
//     (2 × 40 bytes on 64-bit platforms); a queue that reuses the array
//     an earlier one emptied (a WebSocket's, see maxSpareQueue) may hold
//     up to 64 slots whatever it holds, a slack not counted;
//   - a control frame of the WebSocket's own (a pong, "3probe") costs its
//     payload, copied from the client's ping, and its slot likewise.
//
// A broadcast's payload is shared by every queue it is in: each session's
// own bound counts it in full (what that client must receive), while the
// process-wide budget counts 1/n of it in each of its n queues (see
// Message.Shared), so that one big broadcast to many clients does not look
// like many big queues and get healthy clients shed. The broadcaster gives
// n, the number of recipients it selects, before the fan-out: a recipient
// that is dropped or refuses it makes the budget count a little less than
// the payload (never more than what queues hold beyond the payload's one
// copy); no reference count is touched per recipient or per flush.
const (
	queueEntryCost = 2 * int64(unsafe.Sizeof(Message{}))
	ctrlEntryCost  = 2 * int64(unsafe.Sizeof(ctrlFrame{}))
)

// cost is what m costs in a send queue, as the session's own bound
// (Options.MaxQueuedBytes) counts it: its whole payload and its slot.
func (m *Message) cost() int64 { return int64(len(m.b)) + queueEntryCost }

// budgetCost is what m costs the process-wide budget in one queue: its
// slot, and its share of a payload held once for every recipient.
func (m *Message) budgetCost() int64 {
	if m.share > 1 {
		return int64(len(m.b))/int64(m.share) + queueEntryCost
	}
	return m.cost()
}

// ctrlCost is what a control frame with this payload costs while it waits.
func ctrlCost(payload []byte) int64 { return int64(len(payload)) + ctrlEntryCost }

// DefaultQueueBudget is Options.QueueBudget's default: 128 MiB.
const DefaultQueueBudget = 128 << 20

// shedPause is the least time between two shedding passes that could not
// bring the queues under the budget.
const shedPause = 10 * time.Millisecond

// charge adds n (negative: removes) to the bytes held in the send queues
// of all sessions. Past the budget it starts a shedding pass, unless one
// is running: the caller does not wait for it (it may hold a broadcast's
// lock and a session's).
func (s *Server) charge(n int64) {
	if s.queuedBytes.Add(n) > s.opts.QueueBudget && n > 0 && s.shedding.CompareAndSwap(false, true) {
		go s.shed()
	}
}

// QueuedBytes is what the send queues of all sessions hold together, as
// Options.QueueBudget counts it: queued packets and control frames, and the
// WebSocket writes in progress.
func (s *Server) QueuedBytes() int64 { return s.queuedBytes.Load() }

// shed cuts off the sessions with the largest queues, largest first, until
// the queues hold less than 7/8 of the budget (so that one pass makes room
// for a while). A session shed is a slow consumer: its queue is dropped and
// its handler told, as when its own queue overflows. It runs on a goroutine
// of its own, one at a time.
func (s *Server) shed() {
	limit := s.opts.QueueBudget
	defer func() {
		if s.queuedBytes.Load() > limit {
			// What is left is not in queues that can be shed (writes in
			// progress, closing sessions' last packets): the next pass
			// waits a little rather than scan every session at each Send.
			time.Sleep(shedPause)
		}
		s.shedding.Store(false)
	}()
	target := limit - limit/8
	if s.queuedBytes.Load() <= limit {
		return
	}
	type queue struct {
		sess *Session
		cost int64
	}
	s.mu.Lock()
	all := make([]queue, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, queue{sess: sess})
	}
	s.mu.Unlock()
	for i := range all {
		all[i].cost = all[i].sess.queuedCost()
	}
	slices.SortFunc(all, func(a, b queue) int {
		switch {
		case a.cost > b.cost:
			return -1
		case a.cost < b.cost:
			return 1
		}
		return 0
	})
	for _, q := range all {
		total := s.queuedBytes.Load()
		if total <= target || q.cost == 0 {
			return
		}
		if q.sess.shed() {
			s.stats.shed.Add(1)
			s.log.Warn("disconnecting slow client: send queue budget reached", "sid", q.sess.id,
				"remote", q.sess.hs.remoteAddr(), "reason", "queue budget", "queued", q.cost, "total", total)
		}
	}
}

// queuedCost is what the session's queue and control frames cost now, 0
// once it is closing or overflowed (it accepts no more packets).
func (s *Session) queuedCost() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateOpen || s.overflow {
		return 0
	}
	return s.charged + s.ctrlQueued
}

// shed makes the session overflow, if it is still open: its queue is
// dropped, and its handler told (OnQueueOverflow).
func (s *Session) shed() bool {
	s.mu.Lock()
	if s.state != stateOpen || s.overflow {
		s.mu.Unlock()
		return false
	}
	dropped := s.overflowLocked()
	s.mu.Unlock()
	deliveredAll(dropped)
	go s.post(event{kind: evOverflow})
	return true
}
