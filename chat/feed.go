package chat

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/history"
)

// feed owns the order of history messages on this node: one goroutine
// (run) broadcasts every stored message to the live room in strict offset
// order, last+1, last+2, …, whoever stored it, and takes every subscriber
// (a socket that connected without being recovered) from its catch-up into
// the live room.
//
// Where messages come from:
//   - committed: the Writer's callbacks, for the messages this node stored,
//     in offset order;
//   - the database: a fetch (After(last)) whenever the feed sees a gap (an
//     offset beyond last+1), is told another node committed something
//     (hint: PostgreSQL NOTIFY), or its poll timer fires. Offsets are dense
//     and committed in offset order (history package), so reading "after
//     last" never skips a message, and a gap always means "read the
//     database", never "a message is lost".
//
// The seam between history and live messages: a subscriber is not in the
// live room while it catches up. Its catch-up (the messages after its
// offset, up to last) is sent by run with the socket's own Emit, and run
// makes it join the live room right after, with no broadcast in between, so
// the subscriber gets every message once, in order, history first. Most
// catch-ups come from tail, the newest messages in memory. Larger ones (or
// ones the tail no longer covers) are streamed from the database by a
// goroutine of their own, paced by the client's send queue, which then hands
// the subscriber back to run with what it sent; run finishes from the tail.
//
// run never waits for the database: fetches and streams run on their own
// goroutines and post their results to the inbox.
type feed struct {
	store history.Store
	log   *slog.Logger
	opts  feedOptions
	// broadcast sends a record to the live room; only run calls it.
	broadcast func(history.Record)

	// The inbox: any goroutine posts, run drains.
	mu       sync.Mutex
	commits  []history.Record
	overflow bool // commits were dropped: read them from the database
	joins    []joinRequest
	handoffs []handoff
	fetched  []fetchResult
	hinted   bool // another node committed something
	wake     chan struct{}

	ctx    context.Context // cancelled by close: stops fetches and streams
	cancel context.CancelFunc
	done   chan struct{}
	tasks  sync.WaitGroup // fetches and streams in flight

	// Published by run for the streams.
	published atomic.Int64 // last
	tailStart atomic.Int64 // the first offset the tail holds (last+1 when empty)

	// Owned by run.
	last      int64 // the offset broadcast last
	tail      recordTail
	pending   map[int64]history.Record  // committed here, beyond last+1
	parked    map[*joinRequest]struct{} // subscribers ahead of last
	fetching  bool
	wantFetch bool
	fetchGen  uint64 // fetches started
	errs      streak
}

// feedOptions tune a feed. newFeed fills in the defaults.
type feedOptions struct {
	// LastN is the catch-up of a subscriber without an offset.
	LastN int
	// MaxCatchup bounds a catch-up after an offset to the newest
	// MaxCatchup messages; 0 does not.
	MaxCatchup int
	// Retention is the history's retention: a catch-up never sends what it
	// deletes, also before it ran (the tail keeps recent messages in
	// memory, whatever their age).
	Retention history.Retention
	// TailCount and TailBytes bound the tail. Defaults: max(1024, 2×LastN)
	// messages, 16 MiB.
	TailCount int
	TailBytes int64
	// QueuePackets and QueueBytes are the clients' send queue bounds: a
	// catch-up from the tail is sent at once when it takes at most a
	// quarter of them, else streamed, keeping the client's queue at most
	// half full.
	QueuePackets int
	QueueBytes   int64
	// Poll is how often the database is read for messages nobody told the
	// feed about. Defaults to 1s.
	Poll time.Duration
	// Page is the most messages read in one query. Defaults to 500.
	Page int
}

func (o feedOptions) withDefaults() feedOptions {
	if o.TailCount <= 0 {
		o.TailCount = max(1024, 2*o.LastN)
	}
	if o.TailBytes <= 0 {
		o.TailBytes = 16 << 20
	}
	if o.QueuePackets <= 0 {
		o.QueuePackets = 4096
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 2 << 20
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Page <= 0 {
		o.Page = 500
	}
	return o
}

// maxCommitBacklog bounds the records waiting in the inbox and in pending;
// beyond it the feed drops them and reads them back from the database.
const maxCommitBacklog = 1 << 16

// handoffGap is how close to last a stream gets before it hands its
// subscriber back to run, which sends the rest from the tail at once.
const handoffGap = 256

// subscriber is a client on its way into the live room.
type subscriber interface {
	// emit sends one message to the client alone; false when the client
	// is gone (its catch-up stops).
	emit(r history.Record) bool
	// goLive makes the client a member of the live room; its catch-up
	// went up to offset last. false when the client is gone.
	goLive(last int64) bool
	// backlog is what waits in the client's send queue.
	backlog() (packets int, bytes int64)
	// gone reports that the client left; abandon is told that its
	// catch-up stopped because of that.
	gone() bool
	abandon()
	// drop closes the client's connection (it reconnects and catches up
	// again): its catch-up cannot be read now.
	drop(reason string)
}

// joinRequest asks for a subscriber's catch-up: the messages after offset
// (hasOffset), or the newest LastN.
type joinRequest struct {
	sub       subscriber
	offset    int64
	hasOffset bool
	from      int64  // set by run: the catch-up starts after from
	needGen   uint64 // parked: a fetch started after parking must end first
	lastThen  int64  // parked: last when it was parked
	atJoin    int64  // the last offset published when join was called
}

// handoff is a stream's subscriber back to run, its catch-up sent up to pos.
type handoff struct {
	sub subscriber
	pos int64
}

// fetchResult is what a fetch read after from.
type fetchResult struct {
	gen  uint64
	from int64
	recs []history.Record
	err  error
}

// newFeed primes a feed from the store (last, and the tail with the newest
// messages) and starts its goroutine.
func newFeed(ctx context.Context, store history.Store, opts feedOptions, log *slog.Logger, broadcast func(history.Record)) (*feed, error) {
	opts = opts.withDefaults()
	last, err := store.LastOffset(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := store.Last(ctx, opts.TailCount)
	if err != nil {
		return nil, err
	}
	f := &feed{
		store:     store,
		log:       log,
		opts:      opts,
		broadcast: broadcast,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		pending:   make(map[int64]history.Record),
		parked:    make(map[*joinRequest]struct{}),
		errs:      streak{log: log, what: "reading the history"},
	}
	f.tail = recordTail{maxCount: opts.TailCount, maxBytes: opts.TailBytes}
	if len(recs) > 0 {
		last = recs[len(recs)-1].Offset
	}
	for _, r := range recs {
		f.tail.push(r)
	}
	// Fewer than asked for: the tail holds every stored message.
	f.tail.complete = len(recs) < opts.TailCount && f.tail.evicted == 0
	f.last = last
	f.publish()
	f.ctx, f.cancel = context.WithCancel(context.Background())
	go f.run()
	return f, nil
}

// committed hands run a message this node stored. It never blocks; called
// from the Writer's callbacks, in offset order.
func (f *feed) committed(r history.Record) {
	f.mu.Lock()
	if len(f.commits) < maxCommitBacklog {
		f.commits = append(f.commits, r)
	} else {
		f.overflow = true
	}
	f.mu.Unlock()
	f.signal()
}

// join asks for a subscriber's catch-up and its entry into the live room.
func (f *feed) join(sub subscriber, offset int64, hasOffset bool) {
	f.mu.Lock()
	// atJoin is read now, on the connection's handler right after its
	// CONNECT answer, not when run gets to the request: a client whose
	// offset is ahead of the history gets what was broadcast since it
	// connected, and run may have broadcast more by then.
	f.joins = append(f.joins, joinRequest{sub: sub, offset: offset, hasOffset: hasOffset, atJoin: f.published.Load()})
	f.mu.Unlock()
	f.signal()
}

// hint tells run that some node committed messages up to offset (0: maybe
// some, unknown which).
func (f *feed) hint(offset int64) {
	if offset != 0 && offset <= f.published.Load() {
		return // our own notification, or an old one
	}
	f.mu.Lock()
	f.hinted = true
	f.mu.Unlock()
	f.signal()
}

func (f *feed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// close stops run and waits for it and for the fetches and streams.
func (f *feed) close() {
	f.cancel()
	<-f.done
	f.tasks.Wait()
}

// publish makes last and the tail's start visible to the streams.
func (f *feed) publish() {
	f.published.Store(f.last)
	f.tailStart.Store(f.tail.start(f.last))
}

// run is the feed's goroutine.
func (f *feed) run() {
	defer close(f.done)
	poll := time.NewTicker(f.opts.Poll)
	defer poll.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-f.wake:
		case <-poll.C:
			f.wantFetch = true
		}
		f.mu.Lock()
		commits, joins, handoffs, fetched := f.commits, f.joins, f.handoffs, f.fetched
		f.commits, f.joins, f.handoffs, f.fetched = nil, nil, nil, nil
		if f.overflow || f.hinted {
			f.overflow, f.hinted = false, false
			f.wantFetch = true
		}
		f.mu.Unlock()

		for _, res := range fetched {
			f.applyFetch(res)
		}
		for _, r := range commits {
			f.offer(r)
		}
		for off := range f.pending {
			if off <= f.last {
				delete(f.pending, off) // skipped: retention deleted what was before it
			}
		}
		if len(f.pending) > 0 {
			f.wantFetch = true // a gap: what fills it is in the database
		}
		for i := range joins {
			f.startJoin(&joins[i])
		}
		for _, h := range handoffs {
			f.finishHandoff(h)
		}
		f.resolveParked()
		f.publish()
		if f.wantFetch && !f.fetching {
			f.startFetch()
		}
	}
}

// offer broadcasts r if it is the next message, keeps it if it comes
// early (the messages before it will be read from the database), and
// ignores it if it was broadcast already.
func (f *feed) offer(r history.Record) {
	switch {
	case r.Offset <= f.last:
	case r.Offset == f.last+1:
		f.deliver(r)
		for len(f.pending) > 0 {
			next, ok := f.pending[f.last+1]
			if !ok {
				break
			}
			f.deliver(next)
		}
	case len(f.pending) < maxCommitBacklog:
		f.pending[r.Offset] = r
	}
}

// deliver broadcasts the next message and keeps it in the tail.
func (f *feed) deliver(r history.Record) {
	if r.Offset != f.last+1 {
		// Only a fetch jumps: the messages in between were deleted by
		// retention. The tail must stay dense.
		f.tail.reset()
	}
	delete(f.pending, r.Offset)
	f.broadcast(r)
	f.last = r.Offset
	f.tail.push(r)
}

func (f *feed) startFetch() {
	f.fetching, f.wantFetch = true, false
	f.fetchGen++
	gen, from, page := f.fetchGen, f.last, f.opts.Page
	f.tasks.Add(1)
	go func() {
		defer f.tasks.Done()
		recs, err := f.store.After(f.ctx, from, page)
		f.mu.Lock()
		f.fetched = append(f.fetched, fetchResult{gen: gen, from: from, recs: recs, err: err})
		f.mu.Unlock()
		f.signal()
	}()
}

// applyFetch broadcasts what a fetch read. The database is authoritative:
// its records are consecutive after from, except where retention deleted
// some, which the feed then skips.
func (f *feed) applyFetch(res fetchResult) {
	f.fetching = false
	if res.err != nil {
		if f.ctx.Err() == nil {
			f.errs.fail(res.err)
		}
		return // the next poll tries again
	}
	f.errs.ok()
	for _, r := range res.recs {
		if r.Offset > f.last {
			f.deliver(r)
		}
	}
	for len(f.pending) > 0 {
		next, ok := f.pending[f.last+1]
		if !ok {
			break
		}
		f.deliver(next)
	}
	if len(res.recs) == f.opts.Page {
		f.wantFetch = true // there may be more
		return
	}
	// The fetch read everything committed when it started: a subscriber
	// parked before it started whose offset is still ahead gave an offset
	// this history never had (another database, or made up).
	// It gets what was broadcast since it connected, as if it had been
	// live (as the tutorial's server, whose "id > offset" finds nothing).
	for j := range f.parked {
		if j.needGen <= res.gen && j.from > f.last {
			delete(f.parked, j)
			f.log.Debug("history: client offset ahead of the history", "offset", j.from, "last", f.last)
			f.catchUp(j.sub, j.lastThen)
		}
	}
}

// startJoin begins a subscriber's catch-up.
func (f *feed) startJoin(j *joinRequest) {
	from := j.offset
	if !j.hasOffset {
		from = f.last - int64(f.opts.LastN)
	} else if m := int64(f.opts.MaxCatchup); m > 0 && f.last-from > m {
		from = f.last - m
	}
	if n := f.opts.Retention.MaxCount; n > 0 && f.last-from > n {
		from = f.last - n
	}
	j.from = max(from, 0)
	if j.from > f.last {
		// The client saw messages this node has not broadcast yet (another
		// node's): it joins once they are here, so that it gets none twice.
		j.needGen, j.lastThen = f.fetchGen+1, min(f.last, j.atJoin)
		f.parked[j] = struct{}{}
		f.wantFetch = true
		return
	}
	f.catchUp(j.sub, j.from)
}

// resolveParked lets in the parked subscribers whose offset was reached.
func (f *feed) resolveParked() {
	for j := range f.parked {
		if j.from <= f.last {
			delete(f.parked, j)
			f.catchUp(j.sub, j.from)
		}
	}
}

// catchUp sends sub the messages after from and makes it live, at once when
// the tail has them and they are few, else through a stream.
func (f *feed) catchUp(sub subscriber, from int64) {
	if sub.gone() {
		sub.abandon()
		return
	}
	recs, ok := f.tail.after(from, f.last)
	if ok && len(recs) <= f.opts.QueuePackets/4 && recordsSize(recs) <= f.opts.QueueBytes/4 {
		f.sendAndGoLive(sub, recs)
		return
	}
	f.tasks.Add(1)
	go f.stream(sub, from)
}

// finishHandoff sends the rest of a stream's catch-up from the tail and
// makes the subscriber live, or streams again if the tail moved past it.
func (f *feed) finishHandoff(h handoff) {
	if h.sub.gone() {
		h.sub.abandon()
		return
	}
	recs, ok := f.tail.after(h.pos, f.last)
	if !ok {
		f.tasks.Add(1)
		go f.stream(h.sub, h.pos)
		return
	}
	f.sendAndGoLive(h.sub, recs)
}

func (f *feed) sendAndGoLive(sub subscriber, recs []history.Record) {
	for _, r := range recs {
		if f.expired(r) {
			continue
		}
		if !sub.emit(r) {
			sub.abandon()
			return
		}
	}
	if !sub.goLive(f.last) {
		sub.abandon()
	}
}

// stream sends a large catch-up from the database, after from, paced by
// the client's send queue, then hands the subscriber back to run. It runs
// on its own goroutine.
func (f *feed) stream(sub subscriber, from int64) {
	defer f.tasks.Done()
	pos := from
	failures := 0
	for {
		if f.ctx.Err() != nil {
			return
		}
		if sub.gone() {
			sub.abandon()
			return
		}
		bound := f.published.Load()
		if bound-pos <= handoffGap {
			if pos+1 >= f.tailStart.Load() {
				f.mu.Lock()
				f.handoffs = append(f.handoffs, handoff{sub: sub, pos: pos})
				f.mu.Unlock()
				f.signal()
				return
			}
			if bound <= pos {
				// The tail moved on before run published its new last.
				if !sleepCtx(f.ctx, 5*time.Millisecond) {
					return
				}
				continue
			}
		}
		if !f.waitForRoom(sub) {
			return
		}
		recs, err := f.store.After(f.ctx, pos, int(min(int64(f.opts.Page), bound-pos)))
		if err != nil {
			if f.ctx.Err() != nil {
				return
			}
			failures++
			if failures == 5 {
				// The client would wait without a message: let it come back
				// (it reconnects by itself) when the history can be read.
				f.log.Warn("history: cannot read a client's catch-up; closing its connection so that it retries", "err", err,
					"reason", "history unavailable")
				sub.drop("history unavailable")
				sub.abandon()
				return
			}
			if !sleepCtx(f.ctx, time.Duration(failures)*200*time.Millisecond) {
				return
			}
			continue
		}
		failures = 0
		if len(recs) == 0 {
			pos = bound // retention deleted what was between
			continue
		}
		for _, r := range recs {
			if r.Offset > bound {
				break
			}
			if !f.expired(r) && !sub.emit(r) {
				sub.abandon()
				return
			}
			pos = r.Offset
			if packets, bytes := sub.backlog(); packets > f.opts.QueuePackets/2 || bytes > f.opts.QueueBytes/2 {
				if !f.waitForRoom(sub) {
					return
				}
			}
		}
	}
}

// expired reports whether retention by age deletes r (or will at its next
// run): a catch-up skips it.
func (f *feed) expired(r history.Record) bool {
	return f.opts.Retention.MaxAge > 0 && time.Since(r.Time) > f.opts.Retention.MaxAge
}

// waitForRoom waits until the client's send queue is at most a quarter
// full; false when the client or the feed is gone.
func (f *feed) waitForRoom(sub subscriber) bool {
	for {
		packets, bytes := sub.backlog()
		if packets <= f.opts.QueuePackets/4 && bytes <= f.opts.QueueBytes/4 {
			return true
		}
		if sub.gone() {
			sub.abandon()
			return false
		}
		if !sleepCtx(f.ctx, 5*time.Millisecond) {
			return false
		}
	}
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func recordsSize(recs []history.Record) int64 {
	var n int64
	for _, r := range recs {
		n += recordSize(r)
	}
	return n
}

func recordSize(r history.Record) int64 {
	n := int64(len(r.Payload)) + 32
	for _, a := range r.Attachments {
		n += int64(len(a))
	}
	return n
}

// recordTail is the newest broadcast messages, with dense offsets: its
// records are first, first+1, …, the feed's last.
type recordTail struct {
	recs     []history.Record // recs[head:] are kept
	head     int
	bytes    int64
	maxCount int
	maxBytes int64
	evicted  int
	// complete: no stored message is older than the first one kept.
	complete bool
}

func (t *recordTail) len() int { return len(t.recs) - t.head }

// start is the first offset kept, or last+1 when the tail is empty.
func (t *recordTail) start(last int64) int64 {
	if t.len() == 0 {
		return last + 1
	}
	return t.recs[t.head].Offset
}

func (t *recordTail) push(r history.Record) {
	t.recs = append(t.recs, r)
	t.bytes += recordSize(r)
	for t.len() > 1 && (t.len() > t.maxCount || t.bytes > t.maxBytes) {
		t.bytes -= recordSize(t.recs[t.head])
		t.recs[t.head] = history.Record{}
		t.head++
		t.evicted++
		t.complete = false
	}
	if t.head > 64 && t.head > len(t.recs)/2 {
		n := copy(t.recs, t.recs[t.head:])
		clear(t.recs[n:])
		t.recs, t.head = t.recs[:n], 0
	}
}

func (t *recordTail) reset() {
	clear(t.recs)
	t.recs, t.head, t.bytes = t.recs[:0], 0, 0
	t.complete = false
}

// after returns the kept messages after offset from (up to last), and
// whether they are all of the stored ones.
func (t *recordTail) after(from, last int64) ([]history.Record, bool) {
	if from >= last {
		return nil, true
	}
	kept := t.recs[t.head:]
	if len(kept) == 0 {
		return nil, t.complete
	}
	first := kept[0].Offset
	if from+1 >= first {
		return kept[from+1-first:], true
	}
	return kept, t.complete
}

// streak logs the first failure of a streak at warn and its end at info,
// so that an outage is two lines, not one per message.
type streak struct {
	log  *slog.Logger
	what string

	mu       sync.Mutex
	failures int
}

func (s *streak) fail(err error) {
	s.mu.Lock()
	s.failures++
	first := s.failures == 1
	s.mu.Unlock()
	if first {
		s.log.Warn("history: "+s.what+" failed", "err", err, "reason", "history store error")
	}
}

func (s *streak) ok() {
	s.mu.Lock()
	n := s.failures
	s.failures = 0
	s.mu.Unlock()
	if n > 0 {
		s.log.Info("history: "+s.what+" works again", "failures", n)
	}
}
