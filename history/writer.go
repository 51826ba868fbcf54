package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueueFull is reported to a Writer submission that found the queue full
// (WriterOptions.QueueSize messages or QueueBytes bytes waiting): the store
// is slower than the chat, or down, and the client should retry later.
var ErrQueueFull = errors.New("history: write queue full")

// ErrUnavailable is reported (wrapping the store's last error) to a Writer
// submission that waited WriterOptions.RetryFor while the store kept
// failing.
var ErrUnavailable = errors.New("history: store unavailable")

// WriterOptions tunes a Writer. The zero value gives the defaults.
type WriterOptions struct {
	// MaxBatch is the most messages committed in one transaction. Defaults
	// to 256. 1 turns group commit off (one transaction per message).
	MaxBatch int
	// QueueSize is how many submissions may wait for the writer goroutine;
	// beyond that Submit refuses with ErrQueueFull. Defaults to 4096.
	QueueSize int
	// QueueBytes bounds the bytes (payloads and attachments, plus 64 each)
	// of the submissions not yet done, those being retried included; beyond
	// it Submit refuses with ErrQueueFull. Defaults to 16 MiB.
	QueueBytes int64
	// RetryFor, when positive, makes a batch whose Append fails wait and be
	// tried again (after 100 ms, then twice as long each time up to 2 s),
	// in submission order, with the submissions queued meanwhile behind it:
	// an outage of the store delays messages instead of failing them. A
	// submission that has waited RetryFor since Submit while the store still
	// fails is failed with ErrUnavailable. A store's ErrRejected (the data
	// of a message, not the store) is not retried: the batch is tried again
	// one message at a time, so that only the message at fault fails. Zero
	// (the default) fails the whole batch at once, as a store error.
	RetryFor time.Duration
	// Report, when set, is called on the writer goroutine after each Append
	// that succeeded (nil) or failed for a reason other than ErrRejected
	// and ErrClosed (the error): a caller logs an outage with it once, not
	// once per message.
	Report func(error)
	// CommitTimeout bounds one Append, so that a hung store turns into
	// errors rather than a stalled queue. Defaults to 5s.
	CommitTimeout time.Duration
}

func (o WriterOptions) withDefaults() WriterOptions {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 5 * time.Second
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 16 << 20
	}
	return o
}

// Writer commits messages to a Store in groups (group commit): many
// submitters, one transaction per batch.
//
// One goroutine, started by NewWriter and ended by Close, owns the store's
// write side: it takes whatever submissions are waiting (at least one, at
// most MaxBatch), appends them in one transaction, and then runs the batch's
// callbacks, one after the other, on that same goroutine, in submission
// order. New messages get increasing offsets in that order, so the callbacks
// of new (not Duplicate) messages run in strictly increasing offset order,
// batch after batch, and a callback may broadcast the message right away. A
// batch is committed only after the previous batch's callbacks returned, so a
// slow callback slows every submitter: callbacks must not block.
//
// Each submission's callback is called exactly once:
//   - with the Result, after the message is durably stored (or was already);
//   - with an error from the Store when its batch failed (at once without
//     RetryFor; with it, ErrUnavailable wrapping the last error once the
//     submission waited RetryFor, or the store's ErrRejected): the message
//     may or may not be stored, so a retry must reuse its ClientOffset;
//   - with ErrQueueFull or ErrClosed, synchronously on the submitting
//     goroutine before Submit returns, when the queue is full or the Writer
//     is closed (or closing); with ErrClosed later when Close gave up.
//
// A Writer does not close its Store.
type Writer struct {
	store Store
	opts  WriterOptions

	mu     sync.RWMutex // guards closed against the close of queue
	closed bool
	queue  chan submission

	abort     context.Context // cancelled when Close gives up waiting
	cancel    context.CancelFunc
	exited    chan struct{} // closed when the writer goroutine returns
	batches   atomic.Uint64
	committed atomic.Uint64
	bytes     atomic.Int64 // the size of the submissions not yet done
}

type submission struct {
	msg  Message
	done func(Result, error)
	at   time.Time // when it was submitted
	size int64
}

// submissionSize is what a submission counts against QueueBytes.
func submissionSize(m Message) int64 {
	n := int64(len(m.Payload)+len(m.ClientOffset)) + 64
	for _, a := range m.Attachments {
		n += int64(len(a))
	}
	return n
}

// NewWriter starts the writer goroutine for s.
func NewWriter(s Store, opts WriterOptions) *Writer {
	opts = opts.withDefaults()
	w := &Writer{
		store:  s,
		opts:   opts,
		queue:  make(chan submission, opts.QueueSize),
		exited: make(chan struct{}),
	}
	w.abort, w.cancel = context.WithCancel(context.Background())
	go w.run()
	return w
}

// Submit queues m for storing and never blocks. done is called exactly once,
// as the Writer doc describes; it must not be nil. The Writer keeps m's byte
// slices until the callback runs: do not modify them before.
func (w *Writer) Submit(m Message, done func(Result, error)) {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		done(Result{}, ErrClosed)
		return
	}
	size := submissionSize(m)
	if n := w.bytes.Add(size); n > w.opts.QueueBytes && n != size {
		w.bytes.Add(-size)
		w.mu.RUnlock()
		done(Result{}, ErrQueueFull)
		return
	}
	select {
	case w.queue <- submission{msg: m, done: done, at: time.Now(), size: size}:
		w.mu.RUnlock()
	default:
		w.bytes.Add(-size)
		w.mu.RUnlock()
		done(Result{}, ErrQueueFull)
	}
}

// run is the writer goroutine. batch holds the submissions taken from the
// queue and not done yet: the next ones to commit, in submission order.
func (w *Writer) run() {
	defer close(w.exited)
	defer w.cancel() // releases abort's resources
	var (
		batch   = make([]submission, 0, w.opts.MaxBatch)
		msgs    = make([]Message, 0, w.opts.MaxBatch)
		open    = true
		isolate int // the first isolate submissions are committed one at a time
		delay   time.Duration
		// unsettled is the outcome of the last append when it is unknown:
		// the same submissions are settled before anything else.
		unsettled *UncertainError
	)
	for {
		if len(batch) == 0 {
			sub, ok := <-w.queue
			if !ok {
				return
			}
			batch = append(batch, sub)
		}
		if open && isolate == 0 && unsettled == nil {
			batch, open = w.fill(batch)
		}
		n := len(batch)
		if isolate > 0 {
			n = 1
		}
		msgs = msgs[:0]
		for _, sub := range batch[:n] {
			msgs = append(msgs, sub.msg)
		}
		var (
			res []Result
			err error
		)
		if unsettled != nil {
			res, err = w.settle(unsettled, msgs)
			if err == nil {
				unsettled = nil
				if res == nil {
					res, err = w.append(msgs) // not stored: now it is
				}
			}
		} else {
			res, err = w.append(msgs)
		}
		if u := (*UncertainError)(nil); errors.As(err, &u) {
			unsettled = u
		}
		clear(msgs)
		retry := err != nil && w.opts.RetryFor > 0 && w.abort.Err() == nil &&
			!errors.Is(err, ErrClosed) && !errors.Is(err, ErrRejected)
		if w.opts.Report != nil && (err == nil || !errors.Is(err, ErrRejected) && !errors.Is(err, ErrClosed)) {
			w.opts.Report(err)
		}
		switch {
		case err == nil:
			delay = 0
			w.finish(batch[:n], res, nil)
		case errors.Is(err, ErrRejected) && n > 1 && w.opts.RetryFor > 0:
			isolate = n // one at a time: only the message at fault fails
			continue
		case retry:
			// Fail what waited long enough (the oldest come first), keep
			// the rest, and try again after a pause.
			now := time.Now()
			n = 0
			for n < len(batch) && now.Sub(batch[n].at) >= w.opts.RetryFor {
				n++
			}
			if unsettled != nil && n > 0 {
				// The unsettled submissions fail together (they may be
				// stored; they are never appended a second time).
				n = max(n, len(unsettled.Results))
				unsettled = nil
			}
			w.finish(batch[:n], nil, fmt.Errorf("%w: %w", ErrUnavailable, err))
			if n < len(batch) {
				delay = min(max(2*delay, 100*time.Millisecond), 2*time.Second)
				w.sleep(delay)
			}
		default:
			unsettled = nil
			w.finish(batch[:n], nil, err)
		}
		batch = batch[:copy(batch, batch[n:])]
		clear(batch[len(batch):cap(batch)]) // drop the references to payloads and callbacks
		isolate = max(isolate-n, 0)
	}
}

// fill tops batch up to MaxBatch with what is queued, without waiting; open
// is false once the queue is closed and empty.
func (w *Writer) fill(batch []submission) ([]submission, bool) {
	for len(batch) < w.opts.MaxBatch {
		select {
		case sub, ok := <-w.queue:
			if !ok {
				return batch, false
			}
			batch = append(batch, sub)
		default:
			return batch, true
		}
	}
	return batch, true
}

// sleep waits d, or less when Close gives up.
func (w *Writer) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.abort.Done():
	}
}

// append appends one batch, on the writer goroutine.
func (w *Writer) append(msgs []Message) ([]Result, error) {
	if w.abort.Err() != nil {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(w.abort, w.opts.CommitTimeout)
	res, err := w.store.Append(ctx, msgs)
	cancel()
	if err == nil && len(res) != len(msgs) {
		err = errors.New("history: store returned a wrong number of results")
	}
	if err == nil {
		w.batches.Add(1)
		w.committed.Add(uint64(len(msgs)))
	}
	return res, err
}

// settle resolves an append whose outcome was unknown: the results when
// msgs were stored after all, nil when nothing was.
func (w *Writer) settle(u *UncertainError, msgs []Message) ([]Result, error) {
	if w.abort.Err() != nil {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(w.abort, w.opts.CommitTimeout)
	stored, err := w.store.Settle(ctx, u, msgs)
	cancel()
	if err != nil || !stored {
		return nil, err
	}
	w.batches.Add(1)
	w.committed.Add(uint64(len(msgs)))
	return u.Results, nil
}

// finish runs the callbacks of subs, in order, and releases their bytes.
func (w *Writer) finish(subs []submission, res []Result, err error) {
	for i, sub := range subs {
		w.bytes.Add(-sub.size)
		if err != nil {
			sub.done(Result{}, err)
		} else {
			sub.done(res[i], nil)
		}
	}
}

// Close stops accepting submissions, commits those already queued, runs
// their callbacks and waits for the writer goroutine to return. If ctx ends
// first, Close cancels the commit in flight, fails what is still queued with
// ErrClosed, waits for the goroutine and returns ctx's error. A second Close
// only waits. Close must not be called from a callback (it would wait for
// itself).
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	select {
	case <-w.exited:
		return nil
	case <-ctx.Done():
		w.cancel()
		<-w.exited
		return ctx.Err()
	}
}

// WriterStats counts a Writer's successful commits.
type WriterStats struct {
	Batches  uint64 // transactions committed
	Messages uint64 // messages in them, duplicates included
}

// Stats returns the counts so far. Safe to call from any goroutine.
func (w *Writer) Stats() WriterStats {
	return WriterStats{Batches: w.batches.Load(), Messages: w.committed.Load()}
}
