package history

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Message is one chat message as the client sent it: one Socket.IO event
// argument.
type Message struct {
	// Payload is the argument's JSON text exactly as the client sent it. It is
	// stored and returned byte for byte, binary placeholders
	// ({"_placeholder":true,"num":N}) included; the store never parses it.
	Payload []byte
	// Attachments are the binary attachments the placeholders refer to, in
	// order. Usually none.
	Attachments [][]byte
	// ClientOffset is the client's own id for the message, used to store a
	// retried message only once (the Socket.IO tutorial's client_offset TEXT
	// UNIQUE). Empty means the message is not deduplicated.
	ClientOffset string
}

// Record is a stored message as read back from a Store.
type Record struct {
	// Offset is the message's position in the history: strictly increasing in
	// commit order, never reused, never 0.
	Offset int64
	// Time is when the message was stored, in UTC, with microsecond precision.
	Time time.Time
	Message
}

// Result is the outcome of appending one message.
type Result struct {
	// Offset is the offset the message is stored at. For a duplicate it is the
	// offset of the copy stored first.
	Offset int64
	// Time is when the message (for a duplicate: its first copy) was stored.
	Time time.Time
	// Duplicate reports that a message with the same ClientOffset was already
	// stored (by an earlier call, or earlier in the same batch), so nothing
	// was stored now.
	Duplicate bool
}

// Retention bounds the history. A zero field does not bound.
type Retention struct {
	// MaxCount keeps at most the newest MaxCount messages.
	MaxCount int64
	// MaxAge deletes messages stored longer ago than MaxAge. Deletion proceeds
	// from the oldest offset and stops at the first message that is young
	// enough, so a clock that stepped back never deletes a young message; it
	// may only keep an old one a little longer.
	MaxAge time.Duration
}

// Store is a durable, ordered chat history.
//
// All methods are safe for concurrent use by several goroutines and honour
// the context. They return errors (store down, disk full, closed) and never
// panic. An error from Append means the batch may or may not have been
// stored (a connection lost during COMMIT leaves the outcome unknown), so a
// caller that retries must reuse the same ClientOffsets; a nil error means
// every message of the batch is durable (see the package doc for what each
// implementation's durability covers).
//
// Several Store instances may share one PostgreSQL database (a cluster);
// offsets are then global and committed in offset order across all of them:
// once any reader has seen offset X, no message with an offset below X
// commits later. Several processes on one machine may open one SQLite file
// (their writes serialize on its lock), but never over a network file system.
type Store interface {
	// Append stores msgs in one transaction, all or nothing, and returns one
	// Result per message in the same order. New messages get consecutive
	// offsets in the order given. A message whose ClientOffset is already
	// stored (earlier, or earlier in this batch) is not stored again: its
	// Result carries the existing offset and Duplicate. An empty batch does
	// nothing.
	Append(ctx context.Context, msgs []Message) ([]Result, error)

	// After returns up to limit messages with an offset greater than offset,
	// in ascending offset order. Pass 0 to read from the beginning.
	After(ctx context.Context, offset int64, limit int) ([]Record, error)

	// Last returns the newest n messages (fewer if fewer are stored), in
	// ascending offset order.
	Last(ctx context.Context, n int) ([]Record, error)

	// LastOffset returns the highest committed offset, or 0 when nothing was
	// ever stored. Trimming does not lower it.
	LastOffset(ctx context.Context) (int64, error)

	// Trim deletes the messages that r does not keep, oldest first, in short
	// transactions of at most Options.TrimChunk messages each, so that appends
	// wait at most one chunk. It returns how many messages it deleted, also
	// when it stops early on an error or a cancelled context.
	Trim(ctx context.Context, r Retention) (int64, error)

	// Settle finds out whether the append of msgs that failed with u (an
	// *UncertainError: the connection was lost while its COMMIT was on the
	// way) was committed after all. It waits until no append transaction
	// holds the store's write lock (so the lost one has ended, one way or
	// the other) and compares what is stored at the offsets the append had
	// planned (u.Results) with msgs. true means msgs are stored and
	// u.Results are their results; false means nothing of the batch was
	// stored, so appending it again stores it once.
	Settle(ctx context.Context, u *UncertainError, msgs []Message) (bool, error)

	// Close releases the store. Calls after Close return ErrClosed. A second
	// Close is harmless.
	Close() error
}

// ErrUncertain is wrapped by an Append error after which the batch may or
// may not be stored: the error is an *UncertainError, which Settle resolves.
// Every other Append error means that nothing of the batch was stored.
var ErrUncertain = errors.New("history: append outcome unknown")

// UncertainError is an Append error whose outcome is unknown.
type UncertainError struct {
	Err error
	// Results are the results the append would have, had it committed.
	Results []Result
}

func (e *UncertainError) Error() string   { return e.Err.Error() + " (outcome unknown)" }
func (e *UncertainError) Unwrap() []error { return []error{ErrUncertain, e.Err} }

// settleBy is Settle for a store, given a read of the stored record at an
// offset (found false when there is none) run after the write lock was
// free, and the highest committed offset then.
func settleBy(u *UncertainError, msgs []Message, last int64, read func(offset int64) (Record, bool, error)) (bool, error) {
	if len(u.Results) != len(msgs) {
		return false, errors.New("history: settle: results do not match the batch")
	}
	for i, r := range u.Results {
		if r.Duplicate {
			continue
		}
		// The batch's first new message: the batch committed (all or
		// nothing) iff it is stored at its planned offset.
		if last < r.Offset {
			return false, nil
		}
		rec, found, err := read(r.Offset)
		if err != nil {
			return false, err
		}
		if !found {
			// Taken, then deleted by retention: only the newest messages
			// could be, and the batch's were the newest. Taken for stored
			// (appending again could store it twice).
			return true, nil
		}
		return rec.Time.Equal(r.Time) && bytes.Equal(rec.Payload, payloadOf(msgs[i])) &&
			rec.ClientOffset == msgs[i].ClientOffset, nil
	}
	return true, nil // only duplicates: nothing to store, the results hold
}

// Sync is the SQLite synchronous setting (PRAGMA synchronous) in WAL mode.
type Sync int

const (
	// SyncFull (the default) fsyncs the write-ahead log at every commit: an
	// acknowledged message survives a process crash (kill -9) and a power
	// loss or kernel crash.
	SyncFull Sync = iota
	// SyncNormal fsyncs only at checkpoints: an acknowledged message survives
	// a process crash (kill -9), but the last commits before a power loss or
	// kernel crash may be lost (the database stays consistent).
	SyncNormal
)

func (s Sync) String() string {
	switch s {
	case SyncFull:
		return "FULL"
	case SyncNormal:
		return "NORMAL"
	}
	return fmt.Sprintf("Sync(%d)", int(s))
}

// Options tunes a Store. The zero value gives the defaults.
type Options struct {
	// Synchronous is the SQLite durability setting. Defaults to SyncFull.
	// Ignored by PostgreSQL, whose durability is the server's
	// synchronous_commit (on by default: a commit is flushed to the server's
	// disk before it is acknowledged).
	Synchronous Sync
	// MaxConns bounds the connections used for reads (SQLite) or for
	// everything (the PostgreSQL pool). Defaults to 4. SQLite always writes
	// through one extra, dedicated connection.
	MaxConns int
	// TrimChunk is the most messages Trim deletes in one transaction.
	// Defaults to 1000.
	TrimChunk int
	// BusyTimeout is how long SQLite waits for another process's lock, and
	// how long PostgreSQL waits to connect. Defaults to 5s.
	BusyTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
	if o.TrimChunk <= 0 {
		o.TrimChunk = 1000
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	return o
}

// ErrClosed is returned by a Store or Writer that was closed.
var ErrClosed = errors.New("history: closed")

// ErrRejected is wrapped by an Append error caused by the data of a message
// (the database refused a value: PostgreSQL's data exceptions, constraint
// violations and size limits; SQLite's constraint, size and type errors),
// which trying again would not change. Other errors (the store unreachable,
// busy, timed out) may pass.
var ErrRejected = errors.New("history: message refused by the store")

// rejectedError marks err as ErrRejected, keeping it in the chain.
type rejectedError struct{ err error }

func (e rejectedError) Error() string   { return e.err.Error() }
func (e rejectedError) Unwrap() []error { return []error{ErrRejected, e.err} }
func rejected(err error) error          { return rejectedError{err} }

// Open opens the history named by dsn and migrates its schema to the
// current version. A postgres:// or postgresql:// URL opens PostgreSQL;
// anything else is the path of a SQLite file, created if missing (its
// directory must exist). Open checks the connection, so an unreachable or
// unusable database fails here with an error that reads
// "open history NAME: …" (NAME without any password), fit to show a user.
func Open(ctx context.Context, dsn string, opts Options) (Store, error) {
	opts = opts.withDefaults()
	if isPostgres(dsn) {
		s, err := openPostgres(ctx, dsn, opts)
		if err != nil {
			return nil, fmt.Errorf("open history %s: %w", redact(dsn), err)
		}
		return s, nil
	}
	if dsn == "" {
		return nil, errors.New("open history: no file name")
	}
	s, err := openSQLiteWaiting(ctx, dsn, opts)
	if err != nil {
		return nil, fmt.Errorf("open history %s: %w", dsn, err)
	}
	return s, nil
}

func isPostgres(dsn string) bool {
	l := strings.ToLower(dsn)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// redact returns the URL without its password, for messages and logs.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		// Do not echo what may contain a password.
		return "postgres://…"
	}
	return u.Redacted()
}

// checkLimit validates the limit of After and Last.
func checkLimit(n int) error {
	if n < 0 {
		return fmt.Errorf("history: negative limit %d", n)
	}
	return nil
}

// migrateSchema brings a store's schema from the version recorded in
// history_schema to len(steps), running steps[v] to go from version v to
// v+1, inside the caller's transaction: exec runs one statement,
// readVersion reads the recorded version (ok false when no row exists yet).
// Both stores call it; what differs between them is how they lock.
func migrateSchema(exec func(query string) error, readVersion func() (version int, ok bool, err error), steps []string) error {
	if err := exec(`CREATE TABLE IF NOT EXISTS history_schema (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	version, ok, err := readVersion()
	if err != nil {
		return err
	}
	if !ok {
		if err := exec(`INSERT INTO history_schema (version) VALUES (0)`); err != nil {
			return err
		}
	}
	if version > len(steps) {
		return fmt.Errorf("schema version %d is newer than this program's %d", version, len(steps))
	}
	for v := version; v < len(steps); v++ {
		if err := exec(steps[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	if version < len(steps) {
		return exec(fmt.Sprintf(`UPDATE history_schema SET version = %d`, len(steps)))
	}
	return nil
}
