package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatio/socketio-chat/history"
	"github.com/chatio/socketio-chat/metrics"
	"github.com/chatio/socketio-chat/socketio"
)

// chatHistory is the chat with -history: every user-message is stored
// before it is broadcast, carries its offset, and a client that connects
// gets what it missed (docs/HISTORY.md).
//
// A message's path: the user-message handler checks it (size, and the rate
// limit before it) and submits it to the Writer, which stores it in a group
// commit; the Writer's callback (its goroutine, offset order) hands it to
// the feed and acknowledges it; the feed's goroutine broadcasts it to the
// live room with its offset. Nothing is broadcast that is not stored, and
// nothing is acknowledged that is not durable.
type chatHistory struct {
	cfg       Config
	log       *slog.Logger
	store     history.Store
	writer    *history.Writer
	feed      *feed
	waker     waker
	storeErrs streak
	refusals  streak
	metrics   *metrics.Metrics

	// members are the sockets by id, kept for connection state recovery
	// (-recovery): a recovered socket continues its catch-up where its
	// previous connection left it.
	mu      sync.Mutex
	members map[string]*member

	stopTrim context.CancelFunc
	trimDone chan struct{}
}

// liveRoom is the room of the sockets whose catch-up is done: the feed
// broadcasts to it. Socket ids never contain ':'.
const liveRoom = "history:live"

// maxClientOffsetBytes bounds a client offset (the tutorial's are
// "<socket id>-<counter>", about 25 bytes).
const maxClientOffsetBytes = 256

// While the store fails, the Writer holds the messages and tries again, in
// order (docs/HISTORY.md, "When the store is down"): up to historyHoldQueue
// messages and historyHoldBytes bytes wait, each for at most historyHoldFor.
// A message past these bounds is refused to its sender (refuse).
const (
	historyHoldFor   = 60 * time.Second
	historyHoldQueue = 4096
	historyHoldBytes = 16 << 20
)

// refusalEvent is the event that tells a sender who asked for no
// acknowledgement that its user-message was not stored (and so not
// broadcast): socket.on("user-message-error", (err, message) => …), err
// being {error, reason[, clientOffset]}.
const refusalEvent = "user-message-error"

// openHistory opens the store named by cfg.History (migrating its schema),
// primes the feed and starts the Writer, the retention and, on PostgreSQL,
// the notifications between nodes. With m, the store's writes are measured.
func openHistory(cfg Config, log *slog.Logger, io *socketio.Server, m *metrics.Metrics) (*chatHistory, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sync := history.SyncFull
	if cfg.HistorySync == "normal" {
		sync = history.SyncNormal
	}
	store, err := history.Open(ctx, cfg.History, history.Options{Synchronous: sync})
	if err != nil {
		return nil, fmt.Errorf("-history: %w", err)
	}
	store = m.HistoryStore(store) // as is without metrics
	h := &chatHistory{
		cfg:       cfg,
		log:       log,
		store:     store,
		storeErrs: streak{log: log, what: "storing a chat message"},
		refusals:  streak{log: log, what: "accepting chat messages (their senders are told)"},
		metrics:   m,
	}
	if cfg.Recovery > 0 {
		h.members = make(map[string]*member)
	}
	live := io.Sockets().Local().To(liveRoom)
	broadcast := func(r history.Record) {
		if err := live.Emit("message", socketio.Arg{JSON: r.Payload, Attachments: r.Attachments}, r.Offset); err != nil {
			log.Error("history: broadcast failed", "offset", r.Offset, "err", err)
		}
	}
	h.feed, err = newFeed(ctx, store, feedOptions{
		LastN:        cfg.HistoryLast,
		MaxCatchup:   cfg.HistoryMaxCatchup,
		Retention:    history.Retention{MaxCount: cfg.HistoryMaxMessages, MaxAge: cfg.HistoryMaxAge},
		QueuePackets: cfg.SendQueuePackets,
		QueueBytes:   cfg.SendQueueBytes,
		Poll:         cfg.HistoryPoll,
	}, log, broadcast)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("-history: read %s: %w", redactDSN(cfg.History), err)
	}
	h.waker = noWaker{}
	if isPostgresDSN(cfg.History) {
		h.waker = newPGWaker(cfg.History, log, h.feed.hint)
	}
	h.writer = history.NewWriter(store, history.WriterOptions{
		QueueSize:  historyHoldQueue,
		QueueBytes: historyHoldBytes,
		RetryFor:   historyHoldFor,
		Report: func(err error) {
			if err != nil {
				h.storeErrs.fail(err)
			} else {
				h.storeErrs.ok()
			}
		},
	})
	trimCtx, stop := context.WithCancel(context.Background())
	h.stopTrim, h.trimDone = stop, make(chan struct{})
	go h.retain(trimCtx)
	log.Info("history on", "store", redactDSN(cfg.History), "last", h.feed.last, "last_n", cfg.HistoryLast)
	return h, nil
}

// close runs after the Socket.IO server closed: the Writer stores what is
// queued (for a few seconds at most), then everything stops and the store
// closes. The messages stored now are not acknowledged (their clients are
// gone); they retry with the same client offset and are acknowledged then.
func (h *chatHistory) close() {
	h.stopTrim()
	<-h.trimDone
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.writer.Close(ctx); err != nil {
		h.log.Warn("history: messages still queued at shutdown were not stored", "err", err)
	}
	h.feed.close()
	h.waker.close()
	if err := h.store.Close(); err != nil {
		h.log.Warn("history: closing the store", "err", err)
	}
}

// submit stores a user-message that passed the chat's checks, then (on the
// Writer's goroutine, in offset order) broadcasts and acknowledges it.
func (h *chatHistory) submit(e *socketio.Event, message socketio.Arg, sid, remote string) {
	co, ok := clientOffset(e)
	if !ok {
		h.log.Warn("dropping chat message", "sid", sid, "remote", remote,
			"reason", fmt.Sprintf("client offset longer than %d bytes", maxClientOffsetBytes))
		return
	}
	m := history.Message{Payload: message.JSON, Attachments: message.Attachments, ClientOffset: co}
	h.writer.Submit(m, func(r history.Result, err error) {
		switch {
		case errors.Is(err, history.ErrClosed):
			// The server is closing: the client was disconnected already
			// and retries after reconnecting if it asked for an ack.
			h.log.Debug("chat message not stored: shutting down", "sid", sid)
		case err != nil:
			// Not stored (or not known to be) within the bounds: not
			// broadcast, and the sender is told.
			h.refuse(e, message, co, sid, remote, err)
		case r.Duplicate:
			// A retry of a stored message: acknowledged again, not broadcast.
			h.refusals.ok()
			h.log.Debug("chat message already stored: acknowledged again", "sid", sid, "client_offset", co, "offset", r.Offset)
			_ = e.Ack()
		default:
			h.refusals.ok()
			h.feed.committed(history.Record{Offset: r.Offset, Time: r.Time, Message: m})
			h.waker.committed(r.Offset)
			_ = e.Ack()
		}
	})
}

// refusal is what a sender whose message was not stored receives: as the
// acknowledgement's argument when it asked for one, else as the first
// argument of a user-message-error event (the message follows).
type refusal struct {
	Error        string `json:"error"`
	Reason       string `json:"reason"`
	ClientOffset string `json:"clientOffset,omitempty"`
}

// refuse tells the sender of a user-message that it was not stored (so not
// broadcast): the store failed for longer than historyHoldFor, too much
// waits for it, or it refused the message's data. It runs on the Writer's
// goroutine; Ack and Emit only queue packets.
func (h *chatHistory) refuse(e *socketio.Event, message socketio.Arg, co, sid, remote string, err error) {
	r := refusal{Reason: "history_unavailable", ClientOffset: co,
		Error: "message not stored: the chat history is unavailable; send it again later"}
	switch {
	case errors.Is(err, history.ErrQueueFull):
		r.Reason, r.Error = "history_full", "message not stored: too many messages are waiting for the chat history; send it again later"
	case errors.Is(err, history.ErrRejected):
		r.Reason, r.Error = "history_rejected", "message not stored: the chat history refused it"
	}
	h.metrics.EventDropped(r.Reason)
	h.refusals.fail(err)
	h.log.Debug("chat message not stored; its sender is told", "sid", sid, "remote", remote, "reason", r.Reason, "err", err)
	if e.WantsAck() {
		_ = e.Ack(r)
		return
	}
	if sock := e.Socket(); sock != nil {
		_ = sock.Emit(refusalEvent, r, message)
	}
}

// clientOffset reads the client offset of a user-message (its second
// argument, a string or a number, as the tutorial's clientOffset); "" when
// there is none. ok is false when it is too long.
func clientOffset(e *socketio.Event) (string, bool) {
	if len(e.Args) < 2 {
		return "", true
	}
	a := e.Args[1]
	if len(a.Attachments) > 0 || len(a.JSON) == 0 {
		return "", true
	}
	var co string
	switch c := a.JSON[0]; {
	case c == '"':
		if json.Unmarshal(a.JSON, &co) != nil {
			return "", true
		}
	case c == '-' || c >= '0' && c <= '9':
		co = string(a.JSON)
	default:
		return "", true // null, false, an object: no offset
	}
	return co, len(co) <= maxClientOffsetBytes
}

// serverOffset reads auth.serverOffset (a number, or a string of digits);
// false when the client sent none (or something that is not an offset).
func serverOffset(auth json.RawMessage) (int64, bool) {
	if len(auth) == 0 {
		return 0, false
	}
	var a struct {
		ServerOffset json.RawMessage `json:"serverOffset"`
	}
	if json.Unmarshal(auth, &a) != nil || len(a.ServerOffset) == 0 {
		return 0, false
	}
	v := string(a.ServerOffset)
	if v[0] == '"' {
		if json.Unmarshal(a.ServerOffset, &v) != nil {
			return 0, false
		}
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return n, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f != math.Trunc(f) || f > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// connect starts the catch-up of a socket that connected, unless it was
// recovered into the live room (the core gave it what it missed).
func (h *chatHistory) connect(sock *socketio.Socket) {
	offset, hasOffset := serverOffset(sock.Auth()) // not Handshake(): it parses the headers and query too
	if h.members != nil {
		sock.OnDisconnect(func(string, error) { h.forgetLater(sock) })
		if sock.Recovered() && h.recover(sock) {
			return
		}
	}
	m := &member{sock: sock, active: true, offset: offset, hasOffset: hasOffset}
	h.keep(sock.ID(), m)
	h.feed.join(m, offset, hasOffset)
}

// recover continues the catch-up of a recovered socket: nothing if it was
// live when it left, else from what its previous connection was sent. It
// reports false when the socket is not known (it then starts afresh).
func (h *chatHistory) recover(sock *socketio.Socket) bool {
	h.mu.Lock()
	m := h.members[sock.ID()]
	h.mu.Unlock()
	inLive := slices.Contains(sock.Rooms(), liveRoom)
	if m == nil {
		if inLive {
			h.keep(sock.ID(), &member{sock: sock, live: true, progress: true})
		}
		return inLive
	}
	m.mu.Lock()
	m.sock = sock
	restart := false
	switch {
	case m.live && inLive:
		// Live when it left: the core replayed the broadcasts it missed.
	case m.live:
		// Made live after it left: the broadcasts since went to the room
		// without it.
		m.live, restart = false, true
	case !m.active:
		restart = true // its catch-up stopped when it left
	}
	if restart {
		m.active = true
	}
	offset, hasOffset := m.offset, m.hasOffset
	if m.progress {
		offset, hasOffset = m.last, true
	}
	m.mu.Unlock()
	if restart {
		h.feed.join(m, offset, hasOffset)
	}
	return true
}

func (h *chatHistory) keep(id string, m *member) {
	if h.members == nil {
		return
	}
	h.mu.Lock()
	h.members[id] = m
	h.mu.Unlock()
}

// forgetLater forgets a socket that left once it can no longer be
// recovered.
func (h *chatHistory) forgetLater(sock *socketio.Socket) {
	id := sock.ID()
	time.AfterFunc(h.cfg.Recovery+5*time.Second, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if m := h.members[id]; m != nil && !m.connected() {
			delete(h.members, id)
		}
	})
}

// retain applies the retention now and then, on its own goroutine, never
// on the broadcast path.
func (h *chatHistory) retain(ctx context.Context) {
	defer close(h.trimDone)
	r := history.Retention{MaxCount: h.cfg.HistoryMaxMessages, MaxAge: h.cfg.HistoryMaxAge}
	if r.MaxCount == 0 && r.MaxAge == 0 {
		return
	}
	errs := streak{log: h.log, what: "retention"}
	t := time.NewTicker(h.cfg.HistoryTrimInterval)
	defer t.Stop()
	for {
		n, err := h.store.Trim(ctx, r)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			errs.fail(err)
		default:
			errs.ok()
		}
		if n > 0 {
			h.log.Debug("history: retention deleted messages", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// member is a socket as the feed sees it (a subscriber). Its lock makes a
// recovery's takeover (a new *Socket for the same id) atomic with respect
// to what the feed sends: every message goes to the current connection.
type member struct {
	mu        sync.Mutex
	sock      *socketio.Socket
	offset    int64 // the catch-up asked for when it connected
	hasOffset bool
	last      int64 // the last message of its catch-up sent so far
	progress  bool  // last is set
	live      bool  // in the live room
	active    bool  // a catch-up is queued or running
}

var _ subscriber = (*member)(nil)

func (m *member) emit(r history.Record) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.sock.Connected() {
		return false
	}
	_ = m.sock.Emit("message", socketio.Arg{JSON: r.Payload, Attachments: r.Attachments}, r.Offset)
	m.last, m.progress = r.Offset, true
	return true
}

func (m *member) goLive(last int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.sock.Connected() {
		return false
	}
	m.sock.Join(liveRoom)
	m.last, m.progress, m.live, m.active = last, true, true, false
	return true
}

func (m *member) backlog() (int, int64) {
	m.mu.Lock()
	sock := m.sock
	m.mu.Unlock()
	return sock.Conn().Queued()
}

func (m *member) gone() bool { return !m.connected() }

func (m *member) connected() bool {
	m.mu.Lock()
	sock := m.sock
	m.mu.Unlock()
	return sock.Connected()
}

func (m *member) abandon() {
	m.mu.Lock()
	m.active = false
	m.mu.Unlock()
}

func (m *member) drop(reason string) {
	m.mu.Lock()
	sock := m.sock
	m.mu.Unlock()
	sock.Conn().Close(reason)
}

// isPostgresDSN reports whether -history names PostgreSQL (as history.Open
// decides).
func isPostgresDSN(dsn string) bool {
	l := strings.ToLower(dsn)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// redactDSN is -history without a password, for logs.
func redactDSN(dsn string) string {
	if !isPostgresDSN(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}
