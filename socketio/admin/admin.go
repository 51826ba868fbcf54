// Package admin is the server side of the Socket.IO Admin UI
// (@socket.io/admin-ui 0.5.1, Node's instrument(io, opts)) for a socketio
// Server: the /admin namespace and its protocol, its basic authentication
// with a bcrypt hash and session ids (password checks in constant time
// whatever the user name, failed logins limited per address, bcrypt runs
// bounded: login.go), its read-only mode, and the UI's files (UIHandler). A UI connected to any node of a Redis cluster sees
// every node's sockets and statistics, Go and Node.js nodes alike.
//
//	a, err := admin.Instrument(srv, admin.Options{
//		Auth: &admin.BasicAuth{Username: "admin", PasswordHash: hash}, // bcrypt
//	})
//	defer a.Close()
//	mux.Handle("/admin/", ui) // ui, err := admin.UIHandler("node_modules/@socket.io/admin-ui/ui/dist", "/admin/")
//
// What the UI is told, as Node's development mode tells it: config and
// all_sockets when it connects; server_stats every 2 s from every node;
// socket_connected, socket_updated (on an upgrade), socket_disconnected,
// room_joined and room_left as they happen, on every node. The UI's
// operations (emit, join, leave, _disconnect) act through the cluster like
// any broadcast operator, unless ReadOnly. Not sent: event_received and
// event_sent (the UI's Events page), which would cost an admin broadcast
// per chat message and recipient.
//
// Goroutines: the per-socket events are emitted from socketio.Hooks, on
// the goroutine of the socket they are about; server_stats from one
// goroutine of the Admin's; all_sockets from a goroutine per admin
// connection (it waits for the other nodes' answers).
package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/socketio"
	"golang.org/x/crypto/bcrypt"
)

// Options configure the Admin UI's server side. The zero value of each
// field means its default.
type Options struct {
	// Namespace is the admin namespace. Defaults to "/admin", as Node.
	Namespace string
	// Auth is the basic authentication: a username and a bcrypt hash of
	// the password. It must be set unless NoAuth says explicitly that
	// anyone may connect (Node's auth: false).
	Auth   *BasicAuth
	NoAuth bool
	// ReadOnly offers the UI no operation: it can look, not act.
	ReadOnly bool
	// ServerID names this node in the UI's Servers page; it must differ
	// from node to node. Defaults to hostname#pid (#pid#2, #pid#3… for the
	// second and later servers of one process).
	ServerID string
	// StatsInterval is how often server_stats goes out. Defaults to 2s.
	StatsInterval time.Duration
	// SessionDuration is how long a session id handed out at a password
	// login stays valid. Defaults to 24h (Node's RedisStore).
	SessionDuration time.Duration
	// LoginBurst and LoginInterval limit failed logins per client address
	// (its IP; its /64 for IPv6): LoginBurst failures in a row, then one
	// more per LoginInterval; beyond, a login is refused at once, without
	// checking its password. Default 5 and 10s.
	LoginBurst    int
	LoginInterval time.Duration
	// Logger receives logins refused (warn) and operations (info).
	// Defaults to slog.Default().
	Logger *slog.Logger
}

// BasicAuth is the username and bcrypt password hash the UI must present.
type BasicAuth struct {
	Username     string // as the UI's login form sends it
	PasswordHash string // bcrypt, such as "$2b$10$…"
}

// Features the UI is offered (Node's Feature enum), in Node's order.
var operations = []string{"EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"}

// errInvalidCredentials is what a refused login gets, word for word as
// Node: the UI shows it as "Invalid credentials".
var errInvalidCredentials = errors.New("invalid credentials")

// processStart approximates the process's start, for the uptime.
var processStart = time.Now()

// instances counts the Admins of the process, for their default ServerID.
var instances atomic.Int64

// Admin is the Admin UI's server side on one server.
type Admin struct {
	opts     Options
	srv      *socketio.Server
	nsp      *socketio.Namespace
	log      *slog.Logger
	single   bool // no cluster adapter: nobody elsewhere hears /admin
	hostname string
	features json.RawMessage

	sessions sessionStore
	login    *loginGuard // password checks: constant time, limited per address, bounded (nil with NoAuth)
	pending  sync.Map    // *socketio.Socket → session id to hand out once connected

	stop     chan struct{}
	stopped  chan struct{}
	closeOne sync.Once
}

// Instrument serves the Admin UI protocol on srv's admin namespace and
// starts the server_stats goroutine. Call it before clients connect (it
// adds hooks); Close stops it.
func Instrument(srv *socketio.Server, opts Options) (*Admin, error) {
	if opts.Auth == nil && !opts.NoAuth {
		return nil, errors.New("admin: the Auth option must be set, or NoAuth explicitly")
	}
	if opts.Auth != nil {
		if _, err := bcrypt.Cost([]byte(opts.Auth.PasswordHash)); err != nil {
			return nil, fmt.Errorf("admin: the password hash must be a bcrypt hash ($2a$, $2b$ or $2y$): %w", err)
		}
	}
	if opts.Namespace == "" {
		opts.Namespace = "/admin"
	}
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = 2 * time.Second
	}
	if opts.SessionDuration <= 0 {
		opts.SessionDuration = 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LoginBurst <= 0 {
		opts.LoginBurst = defaultLoginBurst
	}
	if opts.LoginInterval <= 0 {
		opts.LoginInterval = defaultLoginInterval
	}
	host, _ := os.Hostname()
	if opts.ServerID == "" {
		opts.ServerID = host + "#" + strconv.Itoa(os.Getpid())
		if n := instances.Add(1); n > 1 {
			opts.ServerID += "#" + strconv.FormatInt(n, 10) // several servers in one process
		}
	}
	features := []string{}
	if !opts.ReadOnly {
		features = append(features, operations...)
	}
	features = append(features, "AGGREGATED_EVENTS", "ALL_EVENTS")
	cfg, _ := json.Marshal(map[string][]string{"supportedFeatures": features})
	_, single := srv.Options().Adapter.(socketio.MemoryAdapter)
	a := &Admin{
		opts:     opts,
		srv:      srv,
		log:      opts.Logger,
		single:   single,
		hostname: host,
		features: cfg,
		sessions: sessionStore{max: 10_000, ttl: opts.SessionDuration, ids: map[string]time.Time{}},
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	if opts.Auth != nil {
		a.login = newLoginGuard(opts.Auth.Username, opts.Auth.PasswordHash, opts.LoginBurst, opts.LoginInterval,
			runtime.NumCPU()/2, bcrypt.CompareHashAndPassword)
	}
	nsp, err := srv.Namespace(opts.Namespace)
	if err != nil {
		return nil, fmt.Errorf("admin: namespace %s: %w", opts.Namespace, err)
	}
	a.nsp = nsp
	if opts.Auth != nil {
		a.nsp.Use(a.authenticate)
	}
	a.nsp.OnConnection(a.onConnection)
	srv.AddHooks(&socketio.Hooks{
		Connect:    a.onSocketConnect,
		Disconnect: a.onSocketDisconnect,
		Join:       func(s *socketio.Socket, room string) { a.roomEvent("room_joined", s, room) },
		Leave:      func(s *socketio.Socket, room string) { a.roomEvent("room_left", s, room) },
		Upgrade:    a.onUpgrade,
	})
	go a.statsLoop()
	return a, nil
}

// Close stops server_stats. The namespace stays; later calls do nothing.
func (a *Admin) Close() {
	a.closeOne.Do(func() {
		close(a.stop)
		<-a.stopped
	})
}

// ServerID is the node's id in the UI.
func (a *Admin) ServerID() string { return a.opts.ServerID }

// authenticate is the admin namespace's middleware, Node's check: a known
// session id, or the username and a password matching the hash. It runs
// on the socket's own goroutine, which waits for the password check
// (loginGuard: one bcrypt run whatever the user name, failures limited per
// address, bcrypt runs bounded).
func (a *Admin) authenticate(s *socketio.Socket) error {
	h := s.Handshake()
	var creds struct {
		SessionID any `json:"sessionId"`
		Username  any `json:"username"`
		Password  any `json:"password"`
	}
	_ = json.Unmarshal(h.Auth, &creds)
	s.ForgetAuth() // the password is not kept, nor shown to other nodes
	key := addressKey(h.Address)
	refuse := func(err error) error {
		a.log.Warn("admin UI login refused", "sid", s.ID(), "transport", s.Conn().Transport(),
			"remote", h.Address, "reason", err.Error())
		return err
	}
	// A session id handed out at a login gets in even from an address
	// that is limited (behind a proxy, every client shares its address):
	// 64 random bits cannot be guessed at any rate a server answers.
	sid, hasSID := creds.SessionID.(string)
	if hasSID && sid != "" && a.sessions.valid(sid) {
		return nil
	}
	if a.login.limited(key) {
		return errLoginLimited // not logged: the refusal that made it limited was
	}
	user, _ := creds.Username.(string)
	if password, ok := creds.Password.(string); ok {
		if err := a.login.check(key, user, password); err != nil {
			err = refuse(err)
			if err == errInvalidCredentials && a.login.limited(key) {
				a.log.Warn("admin UI logins limited", "remote", h.Address, "reason", "too many failed logins",
					"retry_after", a.opts.LoginInterval)
			}
			return err
		}
		a.pending.Store(s, a.sessions.add())
		// Taken by onConnection; dropped if the socket never gets there.
		time.AfterFunc(time.Minute, func() { a.pending.Delete(s) })
		return nil
	}
	if hasSID && !a.login.fail(key) { // an unknown session id may be a guess
		return refuse(errLoginLimited)
	}
	return refuse(errInvalidCredentials)
}

// onConnection greets an admin socket: its session id (after the CONNECT
// packet, where the 0.5.1 UI hears it), the features, every socket of the
// cluster; then its operations, unless read-only.
func (a *Admin) onConnection(s *socketio.Socket) {
	if sid, ok := a.pending.LoadAndDelete(s); ok {
		_ = s.Emit("session", sid)
	}
	_ = s.Emit("config", a.features)
	go a.sendAllSockets(s)
	if a.opts.ReadOnly {
		return
	}
	s.On("emit", func(e *socketio.Event) {
		n, filter, ok := a.target(e, 0, 1)
		var event string
		if !ok || e.Arg(2).Decode(&event) != nil {
			return
		}
		args := make([]any, 0, len(e.Args))
		for _, arg := range e.Args[min(3, len(e.Args)):] {
			args = append(args, arg)
		}
		a.logOp(s, "emit", n, filter, "event", event)
		_ = a.operator(n, filter).Emit(event, args...)
	})
	s.On("join", func(e *socketio.Event) { a.roomOp(s, e, "join") })
	s.On("leave", func(e *socketio.Event) { a.roomOp(s, e, "leave") })
	s.On("_disconnect", func(e *socketio.Event) {
		n, filter, ok := a.target(e, 0, 2)
		var closeAll bool
		if !ok || e.Arg(1).Decode(&closeAll) != nil {
			return
		}
		a.logOp(s, "disconnect", n, filter, "close", closeAll)
		a.operator(n, filter).DisconnectSockets(closeAll)
	})
}

func (a *Admin) roomOp(s *socketio.Socket, e *socketio.Event, op string) {
	n, filter, ok := a.target(e, 0, 2)
	var room string
	if !ok || e.Arg(1).Decode(&room) != nil {
		return
	}
	a.logOp(s, op, n, filter, "room", room)
	if op == "join" {
		a.operator(n, filter).SocketsJoin(room)
	} else {
		a.operator(n, filter).SocketsLeave(room)
	}
}

// target reads an operation's namespace (argument i, which must exist on
// this node: the UI's input does not create namespaces) and its optional
// filter (argument f, a room; a socket's id selects that socket).
func (a *Admin) target(e *socketio.Event, i, f int) (*socketio.Namespace, string, bool) {
	var name string
	if e.Arg(i).Decode(&name) != nil {
		return nil, "", false
	}
	var filter *string
	if e.Arg(f).Decode(&filter) != nil {
		return nil, "", false
	}
	for _, n := range a.srv.Namespaces() {
		if n.Name() == name {
			if filter == nil {
				return n, "", true
			}
			return n, *filter, true
		}
	}
	return nil, "", false
}

// operator selects the sockets of an operation, on every node.
func (a *Admin) operator(n *socketio.Namespace, filter string) *socketio.BroadcastOperator {
	if filter == "" {
		return n.Except() // every socket
	}
	return n.To(filter)
}

func (a *Admin) logOp(s *socketio.Socket, op string, n *socketio.Namespace, filter string, kv ...any) {
	a.log.Info("admin UI operation", append([]any{"op", op, "nsp", n.Name(), "filter", filter,
		"sid", s.ID(), "remote", s.Handshake().Address}, kv...)...)
}

// sendAllSockets sends an admin socket every socket of every namespace of
// this node, on every node of the cluster.
func (a *Admin) sendAllSockets(s *socketio.Socket) {
	nsps := a.srv.Namespaces()
	slices.SortFunc(nsps, func(x, y *socketio.Namespace) int { return cmpString(x.Name(), y.Name()) })
	all := []json.RawMessage{}
	for _, n := range nsps {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		sockets, err := n.FetchSockets(ctx)
		cancel()
		if err != nil {
			a.log.Debug("admin UI: fetching the other nodes' sockets", "nsp", n.Name(), "err", err)
		}
		for _, rs := range sockets {
			all = append(all, a.serialize(n, rs))
		}
	}
	b, _ := json.Marshal(all)
	_ = s.Emit("all_sockets", json.RawMessage(b))
}

func cmpString(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// quiet reports whether no admin UI can hear this node: no admin socket
// here, and no cluster to tell.
func (a *Admin) quiet() bool { return a.single && a.nsp.Len() == 0 }

// emit broadcasts an event to every admin socket, on every node.
func (a *Admin) emit(event string, args ...any) { _ = a.nsp.Emit(event, args...) }

func (a *Admin) onSocketConnect(s *socketio.Socket) {
	if !a.single {
		tag(s, s.Conn().Transport()) // for the other nodes' fetchSockets
	}
	if a.quiet() {
		return
	}
	ts := timestamp(time.Now())
	nsp := s.Namespace().Name()
	for _, r := range s.Rooms() {
		a.emit("room_joined", nsp, r, s.ID(), ts)
	}
	a.emit("socket_connected", json.RawMessage(a.serialize(s.Namespace(), local(s))), ts)
}

func (a *Admin) onSocketDisconnect(s *socketio.Socket, reason string, _ error) {
	if a.quiet() {
		return
	}
	ts := timestamp(time.Now())
	nsp := s.Namespace().Name()
	a.emit("socket_disconnected", nsp, s.ID(), reason, ts)
	for _, r := range s.Rooms() {
		a.emit("room_left", nsp, r, s.ID(), ts)
	}
}

func (a *Admin) roomEvent(event string, s *socketio.Socket, room string) {
	if a.quiet() {
		return
	}
	a.emit(event, s.Namespace().Name(), room, s.ID(), timestamp(time.Now()))
}

func (a *Admin) onUpgrade(s *socketio.Socket) {
	if !a.single {
		tag(s, "websocket")
	}
	if a.quiet() {
		return
	}
	b, _ := json.Marshal(map[string]string{"id": s.ID(), "nsp": s.Namespace().Name(), "transport": "websocket"})
	a.emit("socket_updated", json.RawMessage(b))
}

// statsLoop sends server_stats every StatsInterval, to every admin socket
// of the cluster (Node sends them whether or not an admin listens).
func (a *Admin) statsLoop() {
	defer close(a.stopped)
	t := time.NewTicker(a.opts.StatsInterval)
	defer t.Stop()
	prev := a.srv.Engine().Stats()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		st := a.srv.Engine().Stats()
		if !a.quiet() {
			a.emit("server_stats", json.RawMessage(a.serverStats(prev, st)))
		}
		prev = st
	}
}

// aggregatedEvent is one entry of server_stats.aggregatedEvents.
type aggregatedEvent struct {
	Timestamp int64  `json:"timestamp"`
	Type      string `json:"type"`
	SubType   string `json:"subType,omitempty"`
	Count     uint64 `json:"count"`
}

type namespaceStats struct {
	Name         string `json:"name"`
	SocketsCount int    `json:"socketsCount"`
}

// serverStats is the server_stats object: this node, its sessions, the
// engine's counters since the last one, its namespaces.
func (a *Admin) serverStats(prev, st engineio.StatsSnapshot) []byte {
	now := time.Now().Truncate(time.Second).UnixMilli()
	var events []aggregatedEvent
	add := func(typ, sub string, n uint64) {
		if n > 0 {
			events = append(events, aggregatedEvent{Timestamp: now, Type: typ, SubType: sub, Count: n})
		}
	}
	add("rawConnection", "", st.Opened-prev.Opened)
	reasons := slices.Sorted(maps.Keys(st.Closed))
	for _, r := range reasons {
		add("rawDisconnection", r, st.Closed[r]-prev.Closed[r])
	}
	add("packetsIn", "", st.MessagesIn-prev.MessagesIn)
	add("bytesIn", "", st.BytesIn-prev.BytesIn)
	add("packetsOut", "", st.MessagesOut-prev.MessagesOut)
	add("bytesOut", "", st.BytesOut-prev.BytesOut)
	if events == nil {
		events = []aggregatedEvent{}
	}
	nsps := a.srv.Namespaces()
	slices.SortFunc(nsps, func(x, y *socketio.Namespace) int { return cmpString(x.Name(), y.Name()) })
	ns := make([]namespaceStats, 0, len(nsps))
	for _, n := range nsps {
		ns = append(ns, namespaceStats{Name: n.Name(), SocketsCount: n.Len()})
	}
	b, _ := json.Marshal(struct {
		ServerID            string            `json:"serverId"`
		Hostname            string            `json:"hostname"`
		PID                 int               `json:"pid"`
		Uptime              float64           `json:"uptime"`
		ClientsCount        int64             `json:"clientsCount"`
		PollingClientsCount int64             `json:"pollingClientsCount"`
		AggregatedEvents    []aggregatedEvent `json:"aggregatedEvents"`
		Namespaces          []namespaceStats  `json:"namespaces"`
	}{a.opts.ServerID, a.hostname, os.Getpid(), time.Since(processStart).Seconds(),
		st.Polling + st.WebSocket, st.Polling, events, ns})
	return b
}

// sessionStore holds the session ids handed out at password logins, each
// valid for ttl; at most max of them (the oldest go first).
type sessionStore struct {
	mu  sync.Mutex
	max int
	ttl time.Duration
	ids map[string]time.Time // expiry
}

func (st *sessionStore) add() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:]) // 16 hex characters, as Node's
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, exp := range st.ids {
		if now.After(exp) {
			delete(st.ids, k)
		}
	}
	for len(st.ids) >= st.max {
		oldest, first := "", time.Time{}
		for k, exp := range st.ids {
			if oldest == "" || exp.Before(first) {
				oldest, first = k, exp
			}
		}
		delete(st.ids, oldest)
	}
	st.ids[id] = now.Add(st.ttl)
	return id
}

func (st *sessionStore) valid(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	exp, ok := st.ids[id]
	return ok && time.Now().Before(exp)
}
