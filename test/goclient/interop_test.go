package goclient

// Interop tests: the chat server in process (chat.New behind httptest, as
// main serves it) and zishang520's Go Socket.IO client (clients/socket
// v3.0.6) over polling, WebSocket and upgrade: connect and chat, payload
// fidelity, the order of bursts from many senders, acknowledgements, the
// server's disconnect and connection state recovery.
//
// The client has races of its own. The tests use it as an application
// would, with its own mechanisms, and never retry by hand:
//   - manager.go, Manager.Open creates the Engine.IO socket
//     (engine.NewSocket, which starts the handshake) before it subscribes
//     to that socket's "open", so a fast handshake can be missed; and it
//     registers the clearing of its connect timer only after that
//     subscription, so an open in between leaves the timer running, to
//     close the working session `timeout` after the open. The connect
//     timeout is therefore long (connectTimeout): a missed open is
//     recovered by the Manager's own reconnection after it, and a timer
//     left running would fire after the test (the client's Disconnect
//     clears it).
//   - socket.go, Socket.Connect calls Manager.Open and then onopen if the
//     Manager is open by then, while the Manager's own "open" also calls
//     onopen: on a Manager that is still opening, the socket can send
//     CONNECT twice, which the server (as Node's) answers by closing the
//     session. So the Manager is opened first, then the socket connected.
//   - clients/engine socket-without-upgrade.go, NewSocket takes the
//     transports from the options' types.Set (a map) with Keys(), and _open
//     starts on the first: in "upgrade" mode the client opens on polling
//     or on WebSocket at random. The tests accept the transport it starts
//     on and check the upgrade when it started on polling.
//   - clients/engine socket-with-upgrade.go, _probe sends the probe PING
//     when the WebSocket opens and only then subscribes to its "packet":
//     a quick 3probe is missed, and the client stays on polling without an
//     "upgradeError". So an upgrade that fails with upgradeError fails the
//     test, and one that neither happens nor fails is logged; the upgrade
//     itself is checked step by step by the top-level tests (TestTransport,
//     TestConfUpgrade) and socket.io-client's (test/node).
//   - manager.go, Manager.ondecoded hands each decoded packet to a task
//     queue (another goroutine), while the end of the transport is handled
//     at once: a DISCONNECT followed by the end of the transport can be
//     reported as "transport close" (or, over polling, "transport error")
//     first, then "io server disconnect" (see TestServerDisconnect).
//   - clients/engine polling.go runs the long-polling GET and the POSTs on
//     one queue (writeQueue): a BINARY_EVENT's header and attachment are
//     two writes, and the server has nothing to answer the GET in between
//     with until a PING, so binary sent over polling stalls the session
//     (see TestPayloadFidelity). Binary is sent by WebSocket clients and
//     received over every transport.

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
	sio "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// connectTimeout is the client's connect timeout: how long its Manager
// waits for an Engine.IO open before it tries again by itself (see the top
// of this file).
const connectTimeout = 30 * time.Second

// mode is how a client reaches the server.
type mode string

const (
	polling   mode = "polling"   // HTTP long-polling only
	websocket mode = "websocket" // WebSocket only
	upgrade   mode = "upgrade"   // both, upgrading to WebSocket
)

var modes = []mode{polling, websocket, upgrade}

// server is a chat server of one test.
type server struct {
	URL string
	log *logBuffer
}

// startChat serves the chat as main does, configured by its flags (plus a
// stand-in client bundle and a PING every 200ms), over httptest.
func startChat(t *testing.T, flags ...string) *server {
	t.Helper()
	args := append([]string{"-client-dir", fakeBundle(t), "-public", "../../public",
		"-ping-interval", "200ms", "-log-level", "debug"}, flags...)
	cfg, err := chat.ParseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("chat flags %q: %v", args, err)
	}
	log := &logBuffer{tb: t}
	s, err := chat.New(cfg, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: cfg.LogLevel})))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		hs.Close()
		log.stop()
	})
	return &server{URL: hs.URL, log: log}
}

// fakeBundle writes a stand-in socket.io-client package (its package.json
// and the eight files Node's serveClient serves) and returns its dist
// directory: the real one is slow to load under -race.
func fakeBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	dist := filepath.Join(dir, "dist")
	if err := os.Mkdir(dist, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"socket.io-client","version":"0.0.0-test"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"socket.io.js", "socket.io.js.map", "socket.io.min.js", "socket.io.min.js.map",
		"socket.io.esm.min.js", "socket.io.esm.min.js.map", "socket.io.msgpack.min.js", "socket.io.msgpack.min.js.map"} {
		if err := os.WriteFile(filepath.Join(dist, name), []byte("/* stand-in */\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dist
}

// logBuffer keeps a server's log and sends it to the test's log until the
// test's cleanup stops it (a Logf after the test is a data race).
type logBuffer struct {
	tb      testing.TB
	mu      sync.Mutex
	buf     bytes.Buffer
	stopped bool
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.stopped {
		l.tb.Logf("%s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}

// client is a connected client and what it received.
type client struct {
	*sio.Socket
	name        string
	startedOn   string        // the transport its first Engine.IO session opened with
	upgraded    chan error    // how the first upgrade ended
	connects    chan struct{} // connections after the first
	disconnects chan string

	mu     sync.Mutex
	msgs   [][]any // the arguments of every "message" event, binary as []byte
	notify chan struct{}
}

// dial connects a client in mode m (its own Manager; reconnection only if
// mutate turns it on) and waits until the server has registered it; in
// upgrade mode, when it opened on polling, until it upgraded. It is
// disconnected when the test ends.
func dial(t *testing.T, srv *server, m mode, mutate func(*sio.Options)) *client {
	t.Helper()
	opts := sio.DefaultOptions()
	switch m {
	case polling:
		opts.SetTransports(types.NewSet(sio.Polling))
	case websocket:
		opts.SetTransports(types.NewSet(sio.WebSocket))
	case upgrade:
		opts.SetTransports(types.NewSet(sio.Polling, sio.WebSocket))
		opts.SetUpgrade(true)
	}
	opts.SetForceNew(true) // one Manager, so one Engine.IO session, per client
	opts.SetAutoConnect(false)
	opts.SetTimeout(connectTimeout)
	// The Manager's own reconnection covers a missed open; once the
	// socket is connected it is turned off, unless mutate wants it.
	opts.SetReconnection(true)
	opts.SetReconnectionDelay(50) // ms
	opts.SetReconnectionDelayMax(200)
	opts.SetRandomizationFactor(0)
	keepReconnecting := false
	if mutate != nil {
		probe := sio.DefaultOptions()
		probe.SetReconnection(false)
		mutate(probe)
		keepReconnecting = probe.Reconnection()
		mutate(opts)
		opts.SetReconnection(true)
	}
	c := &client{upgraded: make(chan error, 1), connects: make(chan struct{}, 16),
		disconnects: make(chan string, 16), notify: make(chan struct{}, 1)}
	mgr := sio.NewManager(srv.URL, opts)
	opened := make(chan string, 1)
	_ = mgr.On("open", func(...any) {
		e := mgr.Engine()
		if e == nil || e.Transport() == nil {
			return
		}
		_ = e.On("upgrade", func(...any) {
			select {
			case c.upgraded <- nil:
			default:
			}
		})
		_ = e.On("upgradeError", func(args ...any) {
			select {
			case c.upgraded <- fmt.Errorf("upgradeError %v", args):
			default:
			}
		})
		select {
		case opened <- e.Transport().Name():
		default:
		}
	})
	mgr.Open(nil)
	select {
	case c.startedOn = <-opened:
	case <-time.After(connectTimeout + 10*time.Second): // a missed open takes connectTimeout
		mgr.Engine().Close()
		t.Fatalf("%s client: no Engine.IO session within %v", m, connectTimeout+10*time.Second)
	}
	if !keepReconnecting {
		mgr.SetReconnection(false)
	}

	s := mgr.Socket("/", opts)
	c.Socket = s
	connected := make(chan struct{})
	var once sync.Once
	failed := make(chan string, 1)
	_ = s.On("connect", func(...any) {
		first := false
		once.Do(func() { first = true })
		if first {
			close(connected)
			return
		}
		select {
		case c.connects <- struct{}{}:
		default:
		}
	})
	_ = s.On("connect_error", func(args ...any) {
		select {
		case failed <- fmt.Sprint(args...):
		default:
		}
	})
	_ = s.On("disconnect", func(args ...any) {
		reason := ""
		if len(args) > 0 {
			reason, _ = args[0].(string)
		}
		select {
		case c.disconnects <- reason:
		default:
		}
	})
	_ = s.On("message", func(args ...any) {
		for i, a := range args {
			args[i] = normalize(a)
		}
		c.mu.Lock()
		c.msgs = append(c.msgs, args)
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	})
	t.Cleanup(func() { s.Disconnect() })
	s.Connect()
	select {
	case <-connected:
	case err := <-failed:
		t.Fatalf("%s client: connect_error %s", m, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s client: not connected within 10s", m)
	}
	c.name = fmt.Sprintf("%s client %s", m, s.Id())
	// The client sees "connect" before the server's connection handler
	// has run; broadcasts in between would miss it.
	waitFor(t, 10*time.Second, "the server to log the connection of "+c.name, func() bool {
		return strings.Contains(srv.log.String(), "id="+s.Id()+" ")
	})
	if m == upgrade && c.startedOn == "polling" {
		select {
		case err := <-c.upgraded:
			if err != nil {
				t.Fatalf("%s: opened on polling, upgrade failed: %v", c.name, err)
			}
		case <-time.After(5 * time.Second):
			// See the top of this file (_probe).
			t.Logf("%s: opened on polling, no upgrade nor upgradeError within 5s: the client missed the 3probe", c.name)
		}
	}
	return c
}

// normalize turns what the client decoded into plain Go values: its
// buffers become []byte.
func normalize(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normalize(e)
		}
		return out
	case types.BufferInterface:
		return bytes.Clone(v.Bytes())
	case io.Reader:
		b, _ := io.ReadAll(v)
		return b
	}
	return v
}

// messages returns what the client received so far.
func (c *client) messages() [][]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]any(nil), c.msgs...)
}

// waitMessages waits until the client received n messages and returns
// them; it fails when none came for idle, or after overall.
func (c *client) waitMessages(t *testing.T, n int, idle, overall time.Duration) [][]any {
	t.Helper()
	deadline := time.NewTimer(overall)
	defer deadline.Stop()
	quiet := time.NewTimer(idle)
	defer quiet.Stop()
	for {
		if msgs := c.messages(); len(msgs) >= n {
			return msgs
		}
		select {
		case <-c.notify:
			quiet.Reset(idle)
		case <-quiet.C:
			t.Fatalf("%s: no message for %v: got %d, want %d", c.name, idle, len(c.messages()), n)
		case <-deadline.C:
			t.Fatalf("%s: timed out after %v: got %d messages, want %d", c.name, overall, len(c.messages()), n)
		}
	}
}

// waitFor polls cond until it holds, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestChat: clients of every mode connect; each in turn says something,
// and everyone, itself included, gets it.
func TestChat(t *testing.T) {
	srv := startChat(t)
	var clients []*client
	for _, m := range modes {
		clients = append(clients, dial(t, srv, m, nil), dial(t, srv, m, nil))
	}
	for i, sender := range clients {
		text := "from " + sender.name
		if err := sender.Emit("user-message", text); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			got := c.waitMessages(t, i+1, 10*time.Second, 10*time.Second)[i]
			if len(got) != 1 || got[0] != text {
				t.Fatalf("%s: message %d = %#v, want [%q]", c.name, i, got, text)
			}
		}
	}
	for _, c := range clients {
		if n := len(c.messages()); n != len(clients) {
			t.Errorf("%s: %d messages, want %d", c.name, n, len(clients))
		}
	}
}

// TestPayloadFidelity: what a client sends reaches every client with its
// type and value, whatever the transports of sender and receiver.
func TestPayloadFidelity(t *testing.T) {
	// want is what the client decodes: JSON numbers are float64, objects
	// map[string]any, arrays []any, binary (normalized) []byte.
	cases := []struct {
		name       string
		send, want any
		binary     bool
	}{
		{"string", "hello", "hello", false},
		{"empty string", "", "", false},
		{"unicode", "héllo wörld — 世界 🚀 \u2028 \"quoted\" \\ <b>tag</b>\n\t", "héllo wörld — 世界 🚀 \u2028 \"quoted\" \\ <b>tag</b>\n\t", false},
		{"int", 42, 42.0, false},
		{"zero", 0, 0.0, false},
		{"float", 3.25, 3.25, false},
		{"negative float", -0.5, -0.5, false},
		{"large int", int64(9007199254740991), 9007199254740991.0, false},
		{"large float", 1.5e300, 1.5e300, false},
		{"true", true, true, false},
		{"false", false, false, false},
		{"null", nil, nil, false},
		{"empty object", map[string]any{}, map[string]any{}, false},
		{"object", map[string]any{"user": "ann", "n": 1, "nested": map[string]any{"ok": true, "list": []any{1, "two", nil}}},
			map[string]any{"user": "ann", "n": 1.0, "nested": map[string]any{"ok": true, "list": []any{1.0, "two", nil}}}, false},
		{"empty array", []any{}, []any{}, false},
		{"mixed array", []any{1, -2.5, "three", true, false, nil, map[string]any{"k": "v"}, []any{[]any{}}},
			[]any{1.0, -2.5, "three", true, false, nil, map[string]any{"k": "v"}, []any{[]any{}}}, false},
		{"binary", []byte{0, 1, 2, 0x7f, 0x80, 0xfe, 0xff}, []byte{0, 1, 2, 0x7f, 0x80, 0xfe, 0xff}, true},
		{"binary 64KiB", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 16<<10), bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 16<<10), true},
		{"binary in object", map[string]any{"name": "f.bin", "data": []byte("\x00\xffbytes"), "size": 7},
			map[string]any{"name": "f.bin", "data": []byte("\x00\xffbytes"), "size": 7.0}, true},
		{"binaries in array", []any{"a", []byte{1}, map[string]any{"b": []byte{2, 3}}},
			[]any{"a", []byte{1}, map[string]any{"b": []byte{2, 3}}}, true},
	}
	srv := startChat(t)
	var clients []*client
	for _, m := range modes {
		clients = append(clients, dial(t, srv, m, nil))
	}
	n := 0 // messages so far: everyone gets every one
	for _, sender := range clients {
		for _, tc := range cases {
			if tc.binary && sender.Io().Engine().Transport().Name() != "websocket" {
				continue // binary over the client's polling stalls (see the top of this file)
			}
			t.Run(sender.name+"/"+tc.name, func(t *testing.T) {
				if err := sender.Emit("user-message", tc.send); err != nil {
					t.Fatal(err)
				}
				n++
				for _, c := range clients {
					got := c.waitMessages(t, n, 10*time.Second, 10*time.Second)[n-1]
					if len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
						t.Errorf("%s got %#v, want [%#v]", c.name, got, tc.want)
					}
				}
			})
		}
	}
}

// TestBurstOrder: clients of every mode send bursts at once; every client
// gets every message once, each sender's in order, and all of them in the
// same order (one order per node).
func TestBurstOrder(t *testing.T) {
	const each = 30
	srv := startChat(t)
	var clients []*client
	for _, m := range modes {
		clients = append(clients, dial(t, srv, m, nil), dial(t, srv, m, nil))
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			for seq := range each {
				if err := c.Emit("user-message", fmt.Sprintf("%d#%02d", i, seq)); err != nil {
					t.Errorf("%s: emit: %v", c.name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := len(clients) * each
	var first []string
	for _, c := range clients {
		var got []string
		for _, args := range c.waitMessages(t, total, 10*time.Second, 60*time.Second) {
			s, _ := args[0].(string)
			got = append(got, s)
		}
		next := make([]int, len(clients))
		for _, m := range got {
			var from, seq int
			if _, err := fmt.Sscanf(m, "%d#%d", &from, &seq); err != nil || from < 0 || from >= len(clients) {
				t.Fatalf("%s: unexpected message %q", c.name, m)
			}
			if seq != next[from] {
				t.Fatalf("%s: got %q, want %d#%02d (lost, duplicated or reordered)", c.name, m, from, next[from])
			}
			next[from]++
		}
		if first == nil {
			first = got
		} else if !reflect.DeepEqual(got, first) {
			t.Errorf("%s got the messages in another order than %s", c.name, clients[0].name)
		}
	}
}

// TestAcks: with -history, the chat acknowledges a user-message once it is
// stored (the tutorial's client retries until it is); the broadcast
// carries the message's offset.
func TestAcks(t *testing.T) {
	srv := startChat(t, "-history", filepath.Join(t.TempDir(), "chat.db"))
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			c := dial(t, srv, m, nil)
			acked := make(chan error, 1)
			text := "acknowledged over " + string(m)
			c.Timeout(10*time.Second).EmitWithAck("user-message", text, "offset-"+string(m))(func(args []any, err error) {
				acked <- err
			})
			select {
			case err := <-acked:
				if err != nil {
					t.Fatalf("acknowledgement: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("no acknowledgement callback within 15s")
			}
			// A new client gets the newest stored messages first: look for
			// this one.
			for k := 1; ; k++ {
				got := c.waitMessages(t, k, 10*time.Second, 10*time.Second)[k-1]
				if len(got) > 0 && got[0] == text {
					if len(got) != 2 {
						t.Errorf("%s: message %#v, want [%q, offset]", c.name, got, text)
					}
					break
				}
			}
		})
	}
}

// TestServerDisconnect: a client the server disconnects (here for
// flooding) is told so: "io server disconnect", over every transport.
func TestServerDisconnect(t *testing.T) {
	srv := startChat(t, "-event-rate", "1", "-event-burst", "5")
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			c := dial(t, srv, m, nil)
			for i := range 30 {
				if err := c.Emit("user-message", fmt.Sprintf("flood %d", i)); err != nil {
					break // disconnected meanwhile
				}
			}
			// The DISCONNECT must reach the client, which may report the
			// end of the transport first (see the top of this file).
			var reasons []string
			deadline := time.After(10 * time.Second)
			for !slices.Contains(reasons, "io server disconnect") {
				select {
				case reason := <-c.disconnects:
					reasons = append(reasons, reason)
				case <-deadline:
					t.Fatalf("%s: disconnect reasons %q 10s after flooding, want \"io server disconnect\"", c.name, reasons)
				}
			}
			if len(reasons) > 1 && (len(reasons) > 2 || reasons[0] != "transport close" && reasons[0] != "transport error") {
				t.Errorf("%s: disconnect reasons %q, want \"io server disconnect\" (after the transport's end at most)", c.name, reasons)
			}
		})
	}
}

// TestRecovery: with -recovery, a client whose transport drops (no
// DISCONNECT, no close handshake) reconnects by itself and gets what was
// said meanwhile, binary included, in order and once.
func TestRecovery(t *testing.T) {
	srv := startChat(t, "-recovery", "2m")
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			gate := make(chan struct{})
			a := dial(t, srv, m, func(o *sio.Options) {
				o.SetReconnection(true)
				o.SetReconnectionDelay(50)
				o.SetReconnectionDelayMax(50)
			})
			b := dial(t, srv, websocket, nil)
			if a.Recovered() {
				t.Fatal("first connection reports recovered")
			}
			if err := b.Emit("user-message", "before"); err != nil {
				t.Fatal(err)
			}
			first := a.waitMessages(t, 1, 10*time.Second, 10*time.Second)[0]
			if len(first) != 2 || first[0] != "before" {
				t.Fatalf("with recovery, message %#v, want [\"before\", offset]", first)
			}
			b.waitMessages(t, 1, 10*time.Second, 10*time.Second)

			// Hold a's reconnection until b's messages went out.
			_ = a.Io().On("reconnect_attempt", func(...any) {
				select {
				case <-gate:
				case <-time.After(10 * time.Second):
				}
			})
			id := a.Id()
			a.Io().Engine().Transport().Close()
			select {
			case reason := <-a.disconnects:
				if reason != "transport close" {
					t.Errorf("disconnect reason %q, want \"transport close\"", reason)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the client did not notice its closed transport within 5s")
			}
			waitFor(t, 10*time.Second, "the server to log the disconnect of "+id, func() bool {
				for l := range strings.SplitSeq(srv.log.String(), "\n") {
					if strings.Contains(l, "user disconnected") && strings.Contains(l, "id="+id+" ") {
						return true
					}
				}
				return false
			})
			missed := []any{"m1", 2.0, []byte("m3 \x00\xff"), map[string]any{"m": 4.0, "bin": []byte{4}}, "m5"}
			for _, msg := range missed {
				if err := b.Emit("user-message", msg); err != nil {
					t.Fatal(err)
				}
			}
			b.waitMessages(t, 1+len(missed), 10*time.Second, 10*time.Second)
			close(gate)
			select {
			case <-a.connects:
			case <-time.After(connectTimeout + 15*time.Second): // a missed open takes connectTimeout
				t.Fatal("the client did not reconnect in time")
			}
			if !a.Recovered() {
				t.Error("Recovered() = false after reconnecting within the window")
			}
			if a.Id() != id {
				t.Errorf("id after recovery %q, want the old id %q", a.Id(), id)
			}
			if err := b.Emit("user-message", "after"); err != nil {
				t.Fatal(err)
			}
			want := append(append([]any{"before"}, missed...), "after")
			var values []any
			for _, args := range a.waitMessages(t, len(want), 10*time.Second, 10*time.Second) {
				if len(args) != 2 {
					t.Errorf("message %#v: want [value, offset]", args)
				}
				values = append(values, args[0])
			}
			if !reflect.DeepEqual(values, want) {
				t.Errorf("a received %#v,\nwant %#v (the missed messages in order, once)", values, want)
			}
		})
	}
}
