package history

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueueFull is reported to a Writer submission that found the queue full:
// the store is slower than the chat, and the client should retry later.
var ErrQueueFull = errors.New("history: write queue full")

// WriterOptions tunes a Writer. The zero value gives the defaults.
type WriterOptions struct {
	// MaxBatch is the most messages committed in one transaction. Defaults
	// to 256. 1 turns group commit off (one transaction per message).
	MaxBatch int
	// QueueSize is how many submissions may wait for the writer goroutine;
	// beyond that Submit refuses with ErrQueueFull. Defaults to 4096.
	QueueSize int
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
//   - with an error from the Store when its batch failed: the message may or
//     may not be stored, so a retry must reuse its ClientOffset;
//   - with ErrQueueFull or ErrClosed, synchronously on the submitting
//     goroutine before Submit returns, when the queue is full or the Writer
//     is closed (or closing).
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
}

type submission struct {
	msg  Message
	done func(Result, error)
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
	select {
	case w.queue <- submission{m, done}:
		w.mu.RUnlock()
	default:
		w.mu.RUnlock()
		done(Result{}, ErrQueueFull)
	}
}

// run is the writer goroutine.
func (w *Writer) run() {
	defer close(w.exited)
	defer w.cancel() // releases abort's resources
	batch := make([]submission, 0, w.opts.MaxBatch)
	msgs := make([]Message, 0, w.opts.MaxBatch)
	for {
		sub, ok := <-w.queue
		if !ok {
			return
		}
		batch = append(batch[:0], sub)
	fill:
		for len(batch) < w.opts.MaxBatch {
			select {
			case sub, ok := <-w.queue:
				if !ok {
					break fill // commit this batch; the next receive returns
				}
				batch = append(batch, sub)
			default:
				break fill
			}
		}
		msgs = msgs[:0]
		for _, sub := range batch {
			msgs = append(msgs, sub.msg)
		}
		w.commit(batch, msgs)
		clear(batch) // drop the references to payloads and callbacks
		clear(msgs)
	}
}

// commit appends one batch and runs its callbacks, on the writer goroutine.
func (w *Writer) commit(batch []submission, msgs []Message) {
	var (
		res []Result
		err error
	)
	if w.abort.Err() != nil {
		err = ErrClosed
	} else {
		ctx, cancel := context.WithTimeout(w.abort, w.opts.CommitTimeout)
		res, err = w.store.Append(ctx, msgs)
		cancel()
		if err == nil && len(res) != len(msgs) {
			err = errors.New("history: store returned a wrong number of results")
		}
	}
	if err == nil {
		w.batches.Add(1)
		w.committed.Add(uint64(len(msgs)))
	}
	for i, sub := range batch {
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
