package engineio

import "sync/atomic"

// Delivery follows one message handed to many sessions (a broadcast) until
// it has left every one of their send queues: written to the connection
// (a WebSocket's writev returned, a poll's response was written), or
// dropped with the queue (the session closed, or overflowed). Then it calls
// its done function, once. The layers above use it to measure a
// broadcast's fan-out latency, from the broadcast call to its last write.
//
// The sender holds the Delivery from NewDelivery to its own Done: calls Add
// before queueing the tracked message for each session (Done when that
// Send fails), then Done. So done cannot run before every session was
// counted.
type Delivery struct {
	pending atomic.Int64
	done    func()
}

// NewDelivery returns a Delivery held by its caller, who must call Done
// once it has queued the message everywhere. done runs on the goroutine
// that makes the last write or drop (a flush goroutine, a poll's request
// goroutine, a closing session's), sometimes with engine locks held: it
// must only record, quickly, and never call into the engine.
func NewDelivery(done func()) *Delivery {
	d := &Delivery{done: done}
	d.pending.Store(1)
	return d
}

// Add counts one more session the message is about to be queued for.
func (d *Delivery) Add() { d.pending.Add(1) }

// Done says one session (or the sender) is done with the message.
func (d *Delivery) Done() {
	if d.pending.Add(-1) == 0 && d.done != nil {
		d.done()
	}
}

// Tracked returns m, followed by d: every copy of it that leaves a send
// queue (written or dropped) calls d.Done once. A tracked message must be
// queued for one session per d.Add.
func (m Message) Tracked(d *Delivery) Message {
	m.track = d
	return m
}

// deliveredAll tells the trackers of msgs that they left a queue.
func deliveredAll(msgs []Message) {
	for i := range msgs {
		if d := msgs[i].track; d != nil {
			d.Done()
		}
	}
}

// countOut adds the MESSAGE packets of msgs (not the engine's own PING,
// NOOP, CLOSE…) to the server's outgoing counters.
func (st *Stats) countOut(msgs []Message) {
	var n, bytes uint64
	for i := range msgs {
		m := &msgs[i]
		if m.binary {
			n, bytes = n+1, bytes+uint64(len(m.b))
		} else if len(m.b) > 0 && m.b[0] == typeMessage {
			n, bytes = n+1, bytes+uint64(len(m.b)-1)
		}
	}
	if n > 0 {
		st.msgsOut.Add(n)
		st.bytesOut.Add(bytes)
	}
}
