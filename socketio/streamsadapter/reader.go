package streamsadapter

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/redis/go-redis/v9"
)

// reader reads one stream. Its fetcher (fetch) XREADs from the id of the
// last entry it read, so after a failure it resumes exactly there; its
// dispatcher (dispatch) hands the entries, in the stream's order, to the
// lane of their namespace (each namespace's adapter has one), which
// delivers them one at a time, so that namespaces sharing the stream do
// not wait for each other's fan-outs while each keeps the stream's order.
// The dispatcher hands a session recovery to its namespace's lane too,
// between two entries: the recovery reads the entries after the client's
// offset up to the last one handed to the lanes before it, and joins the
// socket before the lane delivers the next one, so that each entry
// reaches it once.
type reader struct {
	c      *Cluster
	stream string

	batches  chan batch
	restores chan *restore
	ready    chan struct{} // closed when the fetcher knows where to start, or failed
	readyOne atomic.Bool
	started  atomic.Bool // the fetcher knows where to start: entries added from now on are read

	// dispatcher's
	last    entryID    // the last entry handed to the lanes
	pending []*restore // waiting for the dispatcher to reach their offset
}

// lane delivers one namespace's entries of its stream, and serves the
// recoveries of its sockets between them, in the order the dispatcher
// handed them over, on a goroutine that runs while it has some (it exits
// when it runs dry). At most laneQueue items wait for it; past that the
// dispatcher waits, and with it the fetcher: what the node holds stays
// bounded.
type lane struct {
	mu      sync.Mutex
	q       []laneItem
	running bool
	space   chan struct{} // signalled when the lane takes its queue
}

// laneItem is an entry of the namespace a, or a recovery q with to, the
// last entry the dispatcher had handed over before it.
type laneItem struct {
	a  *nsAdapter
	e  redis.XMessage
	q  *restore
	to entryID
}

// laneQueue bounds the items waiting for one lane.
const laneQueue = 1024

// push queues it on a's lane, starting its goroutine if needed; it waits
// while the lane is full, and reports false if the cluster closed
// meanwhile. It runs on the dispatcher.
func (r *reader) push(it laneItem) bool {
	l := &it.a.lane
	l.mu.Lock()
	for len(l.q) >= laneQueue {
		l.mu.Unlock()
		select {
		case <-l.space:
		case <-r.c.ctx.Done():
			return false
		}
		l.mu.Lock()
	}
	l.q = append(l.q, it)
	if !l.running {
		l.running = true
		r.c.wg.Add(1) // the dispatcher is counted: never from zero
		go r.runLane(l)
	}
	l.mu.Unlock()
	return true
}

// runLane is a lane's goroutine.
func (r *reader) runLane(l *lane) {
	defer r.c.wg.Done()
	l.mu.Lock()
	for len(l.q) > 0 {
		q := l.q
		l.q = nil
		l.mu.Unlock()
		select {
		case l.space <- struct{}{}:
		default:
		}
		for i, it := range q {
			q[i] = laneItem{}
			switch {
			case it.q != nil && it.a.ctx.Err() != nil:
				r.finish(it.q, context.Canceled)
			case it.q != nil:
				r.serve(it.q, it.to)
			case it.a.ctx.Err() == nil:
				r.deliver(it.a, it.e)
			}
		}
		l.mu.Lock()
	}
	l.running = false
	l.mu.Unlock()
}

// batch is what one XREAD returned (or, with start set, where reading starts).
type batch struct {
	start   *entryID
	entries []redis.XMessage
}

// restore is a session recovery waiting for the dispatcher.
type restore struct {
	a      *nsAdapter
	st     *socketio.SessionState
	offset entryID
	join   func([]socketio.MissedPacket) bool
	ctx    context.Context
	state  atomic.Int32 // 0 waiting, 1 served by the dispatcher, 2 abandoned by the client
	done   chan error
}

func newReader(c *Cluster, stream string) *reader {
	return &reader{
		c:        c,
		stream:   stream,
		batches:  make(chan batch, 1),
		restores: make(chan *restore),
		ready:    make(chan struct{}),
	}
}

// fetch is the fetcher goroutine.
func (r *reader) fetch() {
	c := r.c
	delay := c.opts.ReconnectDelay
	var pos string
	failing := false
	fail := func(err error) bool {
		if !failing {
			failing = true
			c.health.set(1, nil, err)
		}
		r.markReady()
		var ok bool
		delay, ok = c.backoff(c.ctx, delay)
		return ok
	}
	recovered := func() {
		if failing {
			failing = false
			c.stats.reconnects.Add(1)
			c.health.set(-1, nil, nil)
		} else {
			c.health.set(0, nil, nil)
		}
		delay = c.opts.ReconnectDelay
	}
	// Start after the stream's last entry, as Node starts at "$", but
	// with its id known, so that a recovery knows what was delivered.
	for pos == "" {
		res, err := c.client.XRevRangeN(c.ctx, r.stream, "+", "-", 1).Result()
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		recovered()
		pos = "0-0"
		if len(res) == 1 {
			pos = res[0].ID
		}
		id, _ := parseID(pos)
		r.started.Store(true)
		c.out.wake()
		select {
		case r.batches <- batch{start: &id}:
		case <-c.ctx.Done():
			return
		}
	}
	for {
		res, err := c.client.XRead(c.ctx, &redis.XReadArgs{
			Streams: []string{r.stream, pos},
			Count:   c.opts.ReadCount,
			Block:   c.opts.BlockTime,
		}).Result()
		if c.ctx.Err() != nil {
			return
		}
		if errors.Is(err, redis.Nil) {
			recovered()
			continue
		}
		if err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		recovered()
		if len(res) == 0 || len(res[0].Messages) == 0 {
			continue
		}
		msgs := res[0].Messages
		pos = msgs[len(msgs)-1].ID
		select {
		case r.batches <- batch{entries: msgs}:
		case <-c.ctx.Done():
			return
		}
	}
}

func (r *reader) markReady() {
	if r.readyOne.CompareAndSwap(false, true) {
		close(r.ready)
	}
}

// dispatch is the dispatcher goroutine.
func (r *reader) dispatch() {
	c := r.c
	for {
		select {
		case b := <-r.batches:
			if b.start != nil {
				r.last = *b.start
				r.markReady()
				r.servePending()
				continue
			}
			for _, e := range b.entries {
				if !r.route(e) {
					return
				}
				if id, ok := parseID(e.ID); ok {
					r.last = id
				}
			}
			r.servePending()
		case q := <-r.restores:
			if !r.readyOne.Load() || r.last.less(q.offset) {
				// This node has not delivered the client's offset yet:
				// wait until it has.
				r.pending = append(r.pending, q)
				continue
			}
			r.handOff(q)
		case <-c.ctx.Done():
			for _, q := range r.pending {
				r.finish(q, context.Canceled)
			}
			return
		}
	}
}

// servePending serves the recoveries whose offset has been delivered, and
// forgets those abandoned.
func (r *reader) servePending() {
	keep := r.pending[:0]
	for _, q := range r.pending {
		switch {
		case q.state.Load() == 2 || q.ctx.Err() != nil:
			r.finish(q, context.DeadlineExceeded)
		case r.last.less(q.offset):
			keep = append(keep, q)
		default:
			r.handOff(q)
		}
	}
	clear(r.pending[len(keep):])
	r.pending = keep
}

func (r *reader) finish(q *restore, err error) {
	select {
	case q.done <- err:
	default:
	}
}

// handOff queues the recovery q on its namespace's lane, after the
// entries handed over so far. It runs on the dispatcher.
func (r *reader) handOff(q *restore) {
	if !r.push(laneItem{a: q.a, q: q, to: r.last}) {
		r.finish(q, context.Canceled)
	}
}

// serve reads the entries after q's offset up to last, the last one
// handed to the lanes before q (the lane has delivered those of its
// namespace), and joins the socket with those its rooms select. It runs
// on the namespace's lane.
func (r *reader) serve(q *restore, last entryID) {
	if !q.state.CompareAndSwap(0, 1) {
		r.finish(q, context.Canceled)
		return
	}
	var missed []socketio.MissedPacket
	from := "(" + q.offset.String()
	to := last.String()
	for {
		if last.less(q.offset) || last == q.offset {
			break
		}
		res, err := r.c.client.XRangeN(q.ctx, r.stream, from, to, 1000).Result()
		if err != nil {
			r.finish(q, err)
			return
		}
		for _, e := range res {
			m, err := decodeEntry(e.Values)
			if err != nil || m.nsp != q.a.name || m.typ != typeBroadcast || m.packet == nil || m.reqID != "" {
				continue
			}
			if m.opts.Volatile || !includes(q.st.Rooms, m.opts) {
				continue
			}
			m.packet.Opts = m.opts
			missed = append(missed, socketio.MissedPacket{Packet: m.packet, Offset: e.ID})
		}
		if len(res) < 1000 {
			break
		}
		from = "(" + res[len(res)-1].ID
	}
	if !q.join(missed) {
		r.finish(q, errors.New("the client left"))
		return
	}
	r.finish(q, nil)
}

// route hands one entry to its namespace's lane; it reports false if the
// cluster closed meanwhile. It runs on the dispatcher.
func (r *reader) route(e redis.XMessage) bool {
	nspName, _ := e.Values["nsp"].(string)
	if nspName == "" {
		return true
	}
	a := r.c.adapter(nspName)
	if a == nil {
		return true
	}
	return r.push(laneItem{a: a, e: e})
}

// deliver decodes one entry and hands it to its namespace. It runs on the
// namespace's lane.
func (r *reader) deliver(a *nsAdapter, e redis.XMessage) {
	m, err := decodeEntry(e.Values)
	if err != nil {
		a.c.log.Debug("streams adapter: ignoring an entry", "id", e.ID, "err", err)
		return
	}
	a.onEntry(m, e.ID)
}
