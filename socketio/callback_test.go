package socketio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/gorilla/websocket"
)

// goid is the id of the calling goroutine, from its stack header.
func goid() uint64 {
	var b [64]byte
	n := runtime.Stack(b[:], false)
	f := strings.Fields(string(b[:n]))
	id, _ := strconv.ParseUint(f[1], 10, 64)
	return id
}

// within runs fn on a goroutine of its own and fails the test if it does
// not return within d (a deadlock): what is asserted is that it finishes.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s: not done within %v (deadlock?)\n%s", what, d, buf)
	}
}

// pollSession is a bare polling client: it polls only when told to.
type pollSession struct {
	t   *testing.T
	s   *testIO
	hc  *http.Client
	sid string
}

func pollHandshake(t *testing.T, s *testIO) *pollSession {
	t.Helper()
	p := &pollSession{t: t, s: s, hc: &http.Client{Timeout: waitTimeout}}
	t.Cleanup(p.hc.CloseIdleConnections)
	open := p.get(s.ts.URL + "/socket.io/?EIO=4&transport=polling")
	i := strings.Index(open, `"sid":"`)
	if i < 0 {
		t.Fatalf("OPEN %q", open)
	}
	p.sid = open[i+7 : i+7+strings.IndexByte(open[i+7:], '"')]
	return p
}

func (p *pollSession) url() string {
	return p.s.ts.URL + "/socket.io/?EIO=4&transport=polling&sid=" + p.sid
}

func (p *pollSession) get(url string) string {
	p.t.Helper()
	r, err := p.hc.Get(url)
	if err != nil {
		p.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusOK {
		p.t.Fatalf("GET: %d %q", r.StatusCode, b)
	}
	return string(b)
}

func (p *pollSession) post(body string) {
	p.t.Helper()
	r, err := p.hc.Post(p.url(), "text/plain;charset=UTF-8", strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	defer r.Body.Close()
	if b, _ := io.ReadAll(r.Body); string(b) != "ok" {
		p.t.Fatalf("POST %q: %d %q", body, r.StatusCode, b)
	}
}

// connect joins nsp and polls until the CONNECT answer came.
func (p *pollSession) connect(nsp string) {
	p.t.Helper()
	p.post("4" + connectPacket(nsp, ""))
	for !strings.Contains(p.get(p.url()), "40"+nspPrefix(nsp)+"{") {
	}
}

// TestHooksMayCallBackIntoTheServer: every hook calls back into the server
// (counts, rooms, fetches, emits, joins, leaves, disconnects) and the
// server goes on: no hook runs under a lock of the server's. The
// BroadcastDelivered hook is made to run where it used to run under the
// order lock: a broadcast whose last copy is dropped by the overflow of a
// client that stopped polling, inside a later broadcast's fan-out.
func TestHooksMayCallBackIntoTheServer(t *testing.T) {
	ctx := context.Background()
	seen := make(chan string, 1024)
	var once sync.Map
	call := func(what string, n *Namespace, s *Socket) {
		_ = n.Len()
		_ = n.Rooms()
		_ = n.Socket("nobody")
		_, _ = n.FetchSockets(ctx)
		_ = n.Server().Namespaces()
		if s != nil {
			_ = s.Rooms()
			_ = s.Connected()
		}
		if _, again := once.LoadOrStore(what, true); !again {
			_ = n.To("nobody").Emit("from-hook", what)
			n.To("nobody").SocketsJoin("x")
			n.To("nobody").SocketsLeave("x")
			n.To("nobody").DisconnectSockets(false)
			if s != nil {
				s.Join("hook-room")
				s.Leave("hook-room")
				_ = s.Emit("from-hook", what)
			}
		}
		select {
		case seen <- what:
		default:
		}
	}
	hooks := &Hooks{
		Connect: func(s *Socket) { call("connect", s.Namespace(), s) },
		ConnectError: func(n *Namespace, _ error) {
			if n != nil {
				call("connect_error", n, nil)
			}
		},
		Disconnect:    func(s *Socket, _ string, _ error) { call("disconnect", s.Namespace(), s) },
		Join:          func(s *Socket, _ string) { call("join", s.Namespace(), s) },
		Leave:         func(s *Socket, _ string) { call("leave", s.Namespace(), s) },
		Upgrade:       func(s *Socket) { call("upgrade", s.Namespace(), s) },
		EventReceived: func(s *Socket, _ string, _ int) { call("received", s.Namespace(), s) },
		EventSent:     func(n *Namespace, _ string, _, _ int) { call("sent", n, nil) },
		BroadcastDelivered: func(n *Namespace, _ int, _ time.Duration) {
			call("delivered "+n.Name(), n, nil)
		},
	}
	s := startIO(t, Options{Hooks: hooks, Engine: engineio.Options{MaxQueuedPackets: 16}}, func(io *Server) {
		io.Of("/private").Use(func(*Socket) error { return errors.New("keep out") })
		io.Of("/flood")
		io.OnConnection(func(so *Socket) {
			so.On("join", func(*Event) { so.Join("r1") })
			so.On("leave", func(*Event) { so.Leave("r1") })
			so.On("say", func(e *Event) { _ = io.Emit("said", e.Arg(0)) })
		})
	})
	want := map[string]bool{}
	expect := func(what ...string) {
		t.Helper()
		for _, w := range what {
			want[w] = true
		}
		deadline := time.After(waitTimeout)
		for {
			missing := []string{}
			for w := range want {
				missing = append(missing, w)
			}
			if len(missing) == 0 {
				return
			}
			select {
			case got := <-seen:
				delete(want, got)
			case <-deadline:
				t.Fatalf("hooks not called back within %v: %v", waitTimeout, missing)
			}
		}
	}

	within(t, 3*waitTimeout, "clients, events and rooms", func() {
		a, _ := connected(t, s, wsTransport, "/", "")
		expect("connect")
		a.send("0/private,")
		expect("connect_error")
		a.send(`2["join"]`)
		a.send(`2["leave"]`)
		expect("received", "join", "leave")
		a.send(`2["say","hi"]`)
		expect("sent", "delivered /")
	})

	// A client that connects over polling, then upgrades.
	within(t, 3*waitTimeout, "an upgrade", func() {
		c := pollHandshake(t, s)
		c.connect("/")
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.ts.URL, "http")+
			"/socket.io/?EIO=4&transport=websocket&sid="+c.sid, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer ws.Close()
		_ = ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
		_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, m, err := ws.ReadMessage(); err != nil || string(m) != "3probe" {
			t.Errorf("probe answer %q %v", m, err)
			return
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte("5"))
		expect("upgrade")
	})

	// A client of /flood that stops polling: the namespace's first
	// broadcast (followed for BroadcastDelivered) waits in its queue until
	// a later broadcast overflows it, under the order lock.
	b := pollHandshake(t, s)
	b.connect("/flood")
	flood := s.Of("/flood")
	waitFor(t, "the /flood client", func() bool { return flood.Len() == 1 })
	within(t, 3*waitTimeout, "broadcasts that overflow a client", func() {
		for i := range 40 {
			_ = flood.Emit("flood", i)
		}
		expect("delivered /flood", "disconnect")
	})
}

// cbAdapter is a cluster adapter whose every namespace calls back into the
// server from Broadcast, and records the broadcasts in the order it got
// them.
type cbAdapter struct {
	mu  sync.Mutex
	got []string
}

func (a *cbAdapter) Namespace(l LocalNamespace) (NamespaceAdapter, error) {
	return &cbNS{a: a, n: l.Namespace(), l: l}, nil
}
func (a *cbAdapter) Close() error { return nil }

type cbNS struct {
	memoryNamespace
	a *cbAdapter
	n *Namespace
	l LocalNamespace
}

func (c *cbNS) Broadcast(p *BroadcastPacket) {
	_ = c.n.Len()
	_ = c.n.Rooms()
	_ = c.l.FetchSockets(BroadcastOptions{})
	c.a.mu.Lock()
	c.a.got = append(c.a.got, string(p.Args[0].JSON))
	c.a.mu.Unlock()
}

// TestAdapterMayCallBackIntoTheServer: the adapter's Broadcast runs with
// no lock of the server's held (it may count sockets, fetch them, …), and
// still receives the broadcasts in the order in which this node delivers
// them to its own clients.
func TestAdapterMayCallBackIntoTheServer(t *testing.T) {
	ad := &cbAdapter{}
	s := startIO(t, Options{Adapter: ad}, nil)
	c, _ := connected(t, s, wsTransport, "/", "")
	const senders, each = 4, 50
	within(t, 3*waitTimeout, "broadcasts with an adapter that calls back", func() {
		var wg sync.WaitGroup
		for g := range senders {
			wg.Go(func() {
				for i := range each {
					_ = s.Emit("m", fmt.Sprintf("%d-%d", g, i))
				}
			})
		}
		wg.Wait()
	})
	var local []string
	for range senders * each {
		_, args := eventArgs(t, c.nextText())
		local = append(local, string(args[0]))
	}
	waitFor(t, "every broadcast handed to the adapter", func() bool {
		ad.mu.Lock()
		defer ad.mu.Unlock()
		return len(ad.got) == senders*each
	})
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if fmt.Sprint(ad.got) != fmt.Sprint(local) {
		t.Errorf("the adapter got the broadcasts in another order than the clients:\nadapter %v\nclients %v", ad.got, local)
	}
}

// TestForeignDisconnectRunsNoHandler: disconnecting a socket from a
// goroutine that is not its session's (an adapter's, a timer's, another
// client's handler; here the test's) never runs the socket's handlers on
// that goroutine, even when the session is idle.
func TestForeignDisconnectRunsNoHandler(t *testing.T) {
	for _, tr := range []transport{wsTransport, pollingTransport} {
		t.Run(string(tr), func(t *testing.T) {
			gids := make(chan uint64, 8)
			sockets := make(chan *Socket, 8)
			s := startIO(t, Options{}, func(io *Server) {
				io.OnConnection(func(so *Socket) {
					so.OnDisconnect(func(string, error) { gids <- goid() })
					sockets <- so
				})
			})
			me := goid()
			for _, disconnect := range []func(so *Socket){
				func(so *Socket) { so.Disconnect(false) },
				func(so *Socket) { so.Disconnect(true) },
				func(so *Socket) { s.To(so.ID()).DisconnectSockets(false) },
				func(so *Socket) { so.Conn().Close("bye") },
			} {
				connected(t, s, tr, "/", "")
				so := recv(t, sockets)
				disconnect(so)
				if g := recv(t, gids); g == me {
					t.Fatal("the socket's disconnect handler ran on the caller's goroutine")
				}
			}
			connected(t, s, tr, "/", "")
			recv(t, sockets)
			s.Close()
			if g := recv(t, gids); g == me {
				t.Fatal("Server.Close ran a socket's disconnect handler on its caller's goroutine")
			}
		})
	}
}

// slowAdapter is a cluster adapter whose Namespace blocks for the
// namespaces in block until released, and fails for those in fail.
type slowAdapter struct {
	mu    sync.Mutex
	calls map[string]int
	block map[string]chan struct{}
	fail  map[string]error
}

func (a *slowAdapter) Namespace(l LocalNamespace) (NamespaceAdapter, error) {
	n := l.Namespace()
	a.mu.Lock()
	a.calls[n.Name()]++
	ch, err := a.block[n.Name()], a.fail[n.Name()]
	a.mu.Unlock()
	if ch != nil {
		<-ch
	}
	if err != nil {
		return nil, err
	}
	return &cbNS{a: &cbAdapter{}, n: n}, nil
}
func (a *slowAdapter) Close() error { return nil }

func (a *slowAdapter) count(name string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[name]
}

// TestNamespaceAdapterSetUpOutsideTheLock: while the adapter sets up a new
// namespace (a Redis subscription can take seconds), clients keep joining
// the other namespaces; concurrent calls for that name get one namespace,
// set up once.
func TestNamespaceAdapterSetUpOutsideTheLock(t *testing.T) {
	release := make(chan struct{})
	ad := &slowAdapter{calls: map[string]int{}, block: map[string]chan struct{}{"/slow": release}, fail: map[string]error{}}
	s := startIO(t, Options{Adapter: ad}, nil)
	var released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	defer free()

	const callers = 5
	got := make(chan *Namespace, callers)
	go func() { got <- s.Of("/slow") }()
	waitFor(t, "the adapter setting /slow up", func() bool { return ad.count("/slow") == 1 })
	for range callers - 1 {
		go func() {
			n, err := s.Namespace("slow")
			if err != nil {
				t.Error(err)
			}
			got <- n
		}()
	}
	within(t, waitTimeout, "a CONNECT to / while /slow is being set up", func() {
		c := dial(t, s, wsTransport)
		if a, err := c.tryConnect("/", ""); err != nil || a.SID == "" {
			t.Errorf("CONNECT to /: %+v %v", a, err)
		}
	})
	free()
	first := recv(t, got)
	for range callers - 1 {
		if n := recv(t, got); n != first {
			t.Error("concurrent calls for /slow got different namespaces")
		}
	}
	if n := ad.count("/slow"); n != 1 {
		t.Errorf("the adapter set /slow up %d times", n)
	}
	if _, single := first.Adapter().(memoryNamespace); single {
		t.Error("/slow has the single node's adapter")
	}
}

// logRecords keeps the records of a logger.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

// TestNamespaceAdapterFailureIsReported: Namespace returns the adapter's
// failure and creates nothing (clients cannot join; a later call tries
// again); Of, for compatibility, logs the failure at error level and
// serves the namespace on this node only.
func TestNamespaceAdapterFailureIsReported(t *testing.T) {
	boom := errors.New("redis: connection refused")
	ad := &slowAdapter{calls: map[string]int{}, block: map[string]chan struct{}{}, fail: map[string]error{"/bad": boom, "/compat": boom}}
	logs := &logRecords{}
	s := startIO(t, Options{Adapter: ad, Logger: slog.New(logs)}, nil)

	if n, err := s.Namespace("/bad"); !errors.Is(err, boom) || n != nil {
		t.Fatalf("Namespace(/bad) = %v, %v; want the adapter's error", n, err)
	}
	c := dial(t, s, wsTransport)
	c.send("0/bad,")
	if m := c.nextText(); !strings.HasPrefix(m, "4/bad,") {
		t.Errorf("CONNECT to /bad answered %q, want a CONNECT_ERROR", m)
	}
	ad.mu.Lock()
	delete(ad.fail, "/bad")
	ad.mu.Unlock()
	if n, err := s.Namespace("/bad"); err != nil || n == nil {
		t.Fatalf("Namespace(/bad) once the adapter works: %v, %v", n, err)
	}

	n := s.Of("/compat")
	if n == nil {
		t.Fatal("Of returned nil")
	}
	if _, single := n.Adapter().(memoryNamespace); !single {
		t.Errorf("Of's namespace has adapter %T", n.Adapter())
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	found := false
	for _, r := range logs.recs {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" && strings.Contains(a.Value.String(), boom.Error()) && r.Level == slog.LevelError {
				found = true
			}
			return true
		})
	}
	if !found {
		t.Error("Of did not log the adapter's failure at error level")
	}
}

// orderedAdapter is a cluster adapter that delivers this node's broadcasts
// back (an OrderedAdapter, as the Streams adapter with Ordered): it keeps
// them until the test hands them back.
type orderedAdapter struct {
	mu  sync.Mutex
	got []*BroadcastPacket
	l   LocalNamespace
}

func (a *orderedAdapter) Namespace(l LocalNamespace) (NamespaceAdapter, error) {
	if l.Namespace().Name() == "/" {
		a.l = l
	}
	return &orderedNS{a: a}, nil
}
func (a *orderedAdapter) Close() error { return nil }

type orderedNS struct {
	memoryNamespace
	a *orderedAdapter
}

func (o *orderedNS) DeliversOwn() bool { return true }
func (o *orderedNS) Broadcast(p *BroadcastPacket) {
	o.a.mu.Lock()
	o.a.got = append(o.a.got, p)
	o.a.mu.Unlock()
}

// TestOrderedAdapterDeliversOwnBroadcasts: with an OrderedAdapter, a
// broadcast reaches the node's clients when the adapter hands it back, in
// the adapter's order, once; a Local broadcast at once.
func TestOrderedAdapterDeliversOwnBroadcasts(t *testing.T) {
	ad := &orderedAdapter{}
	s := startIO(t, Options{Adapter: ad}, nil)
	c, _ := connected(t, s, wsTransport, "/", "")
	_ = s.Emit("m", "a")
	_ = s.Emit("m", "b")
	waitFor(t, "both broadcasts handed to the adapter", func() bool {
		ad.mu.Lock()
		defer ad.mu.Unlock()
		return len(ad.got) == 2
	})
	ad.mu.Lock()
	a, b := ad.got[0], ad.got[1]
	ad.mu.Unlock()
	ad.l.Deliver(b) // the cluster's order: b first
	ad.l.Deliver(a)
	_ = s.Local().Emit("m", "c")
	var got []string
	for range 3 {
		_, args := eventArgs(t, c.nextText())
		got = append(got, string(args[0]))
	}
	if want := []string{`"b"`, `"a"`, `"c"`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the client got %v, want %v (the adapter's order, each once, then the local one)", got, want)
	}
}
