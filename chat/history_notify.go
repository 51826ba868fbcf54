package chat

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// waker tells the other nodes sharing a history that this one stored
// messages, so that their feeds read them at once instead of at their next
// poll. It is only an accelerator: a lost notification costs at most one
// poll interval (-history-poll), never a message.
type waker interface {
	// committed is called (never blocking) after this node stored a
	// message with offset.
	committed(offset int64)
	close()
}

// noWaker is the waker of a history no other node shares (SQLite).
type noWaker struct{}

func (noWaker) committed(int64) {}
func (noWaker) close()          {}

// notifyChannel is the PostgreSQL notification channel of the history.
// Notifications are per database, as the history is.
const notifyChannel = "chat_history"

// notifyEvery is the least time between two notifications of a node. A
// notification wakes every node (this one too) and costs the database a
// transaction: under load, one per commit cost a third of the broadcast
// rate on a 2-core machine running PostgreSQL too (docs/HISTORY.md). The
// first commit after a quiet spell is notified at once; under load the
// other nodes learn of this node's messages at most this much later.
const notifyEvery = 20 * time.Millisecond

// pgWaker notifies with PostgreSQL's NOTIFY and listens with LISTEN, each
// on a connection of its own (a listening connection waits for
// notifications and can run nothing else). Notifications coalesce: while
// one NOTIFY is in flight, and for notifyEvery after it, later commits wait
// and go in the next one, which carries the newest offset.
type pgWaker struct {
	dsn  string
	log  *slog.Logger
	hint func(offset int64)

	newest atomic.Int64 // the highest offset stored here
	kick   chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newPGWaker(dsn string, log *slog.Logger, hint func(int64)) *pgWaker {
	w := &pgWaker{dsn: dsn, log: log, hint: hint, kick: make(chan struct{}, 1)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.wg.Add(2)
	go w.notifyLoop()
	go w.listenLoop()
	return w
}

func (w *pgWaker) committed(offset int64) {
	for {
		cur := w.newest.Load()
		if offset <= cur || w.newest.CompareAndSwap(cur, offset) {
			break
		}
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *pgWaker) close() {
	w.cancel()
	w.wg.Wait()
}

// connect opens a connection, retrying with a growing delay until it works
// or the waker closes. The outage is logged once, its end once.
func (w *pgWaker) connect(what string) (*pgx.Conn, bool) {
	delay := 100 * time.Millisecond
	down := false
	for {
		ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
		c, err := pgx.Connect(ctx, w.dsn)
		cancel()
		if err == nil {
			if down {
				w.log.Info("history: "+what+" connection back", "reason", "postgres reachable")
			}
			return c, true
		}
		if w.ctx.Err() != nil {
			return nil, false
		}
		if !down {
			down = true
			w.log.Warn("history: "+what+" connection failed; retrying (other nodes' messages arrive by polling meanwhile)",
				"err", err, "reason", "postgres unreachable")
		}
		if !sleepCtx(w.ctx, delay) {
			return nil, false
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (w *pgWaker) notifyLoop() {
	defer w.wg.Done()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.kick:
		}
		if conn == nil {
			var ok bool
			if conn, ok = w.connect("notify"); !ok {
				return
			}
		}
		ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
		_, err := conn.Exec(ctx, "SELECT pg_notify($1, $2)", notifyChannel, strconv.FormatInt(w.newest.Load(), 10))
		cancel()
		if err != nil && w.ctx.Err() == nil {
			w.log.Debug("history: notify failed; the other nodes poll", "err", err)
			conn.Close(context.Background())
			conn = nil
		}
		if !sleepCtx(w.ctx, notifyEvery) {
			return
		}
	}
}

func (w *pgWaker) listenLoop() {
	defer w.wg.Done()
	for {
		conn, ok := w.connect("listen")
		if !ok {
			return
		}
		if _, err := conn.Exec(w.ctx, "LISTEN "+notifyChannel); err != nil {
			conn.Close(context.Background())
			if !sleepCtx(w.ctx, time.Second) {
				return
			}
			continue
		}
		// Messages stored while no connection listened: read them now.
		w.hint(0)
		for {
			n, err := conn.WaitForNotification(w.ctx)
			if err != nil {
				conn.Close(context.Background())
				if w.ctx.Err() != nil || errors.Is(err, context.Canceled) {
					return
				}
				w.log.Debug("history: listen connection lost", "err", err)
				break
			}
			off, err := strconv.ParseInt(n.Payload, 10, 64)
			if err != nil {
				off = 0
			}
			w.hint(off)
		}
	}
}
