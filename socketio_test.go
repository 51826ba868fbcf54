package main

// Tests of the tutorial backend against the real serve loop (startTestServer) with the
// test Socket.IO client (sioclient_test.go): each transport and the upgrade, broadcast, the burst of
// 20 clients × 50 messages, payload fidelity, connection state recovery,
// graceful shutdown, run() end to end, static files, and raw Engine.IO
// requests that broke socket.io v2 (the `42` POST, oversized bodies).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/chatio/socketio-chat/chat"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sioMode is how a test client reaches the server.
type sioMode string

const (
	sioPolling   sioMode = "polling"   // HTTP long-polling only
	sioWebSocket sioMode = "websocket" // WebSocket only
	sioUpgrade   sioMode = "upgrade"   // polling first, then upgraded to WebSocket
)

var sioModes = []sioMode{sioPolling, sioWebSocket, sioUpgrade}

// sioInbox records the arguments of every "message" event a client receives,
// in arrival order. The client calls add from its own goroutine.
type sioInbox struct {
	label  string // which client, for failure messages
	mu     sync.Mutex
	msgs   [][]any
	notify chan struct{} // signalled (never blocking) after each add
}

func newSioInbox() *sioInbox { return &sioInbox{notify: make(chan struct{}, 1)} }

func (in *sioInbox) add(args ...any) {
	in.mu.Lock()
	in.msgs = append(in.msgs, args)
	in.mu.Unlock()
	select {
	case in.notify <- struct{}{}:
	default:
	}
}

func (in *sioInbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

func (in *sioInbox) snapshot() [][]any {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([][]any(nil), in.msgs...)
}

// waitN waits until at least n messages arrived and returns all of them.
func (in *sioInbox) waitN(tb testing.TB, n int, timeout time.Duration) [][]any {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		if in.len() >= n {
			return in.snapshot()
		}
		select {
		case <-in.notify:
		case <-timer.C:
			tb.Fatalf("%s: timed out after %v: got %d messages, want %d", in.label, timeout, len(in.snapshot()), n)
		}
	}
}

// waitNActive is waitN for long streams: it fails once no message arrived
// for idle (something was lost) or after overall.
func (in *sioInbox) waitNActive(tb testing.TB, n int, idle, overall time.Duration) [][]any {
	tb.Helper()
	deadline := time.NewTimer(overall)
	defer deadline.Stop()
	quiet := time.NewTimer(idle)
	defer quiet.Stop()
	for {
		if in.len() >= n {
			return in.snapshot()
		}
		select {
		case <-in.notify:
			quiet.Reset(idle)
		case <-quiet.C:
			tb.Fatalf("%s: no message for %v: got %d messages, want %d", in.label, idle, len(in.snapshot()), n)
		case <-deadline.C:
			tb.Fatalf("%s: timed out after %v: got %d messages, want %d", in.label, overall, len(in.snapshot()), n)
		}
	}
}

// sioDial connects a new client (sioclient_test.go; no reconnection unless
// mutate turns it on) in the given mode and waits until the server has
// registered it (see sioDialErr). The client is disconnected when the test
// ends.
func sioDial(tb testing.TB, ts *testServer, mode sioMode, mutate func(*sioOptions)) *sioClient {
	tb.Helper()
	c, err := sioDialErr(tb, ts, mode, mutate)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// sioDialErr is sioDial for any goroutine: it reports failure instead of
// ending the test.
func sioDialErr(tb testing.TB, ts *testServer, mode sioMode, mutate func(*sioOptions)) (*sioClient, error) {
	c, err := sioOpen(tb, ts.URL, mode, mutate)
	if err != nil {
		return nil, err
	}
	// The client sees "connect" before the server's connection handler
	// has run (see TestTransportEmitOnConnect); tests that are not about
	// that start once it has.
	if err := sioWaitConnectLogErr(ts, c.Id(), 5*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

// sioConnectTimeout bounds one connection attempt of the test clients: the
// Engine.IO handshake, then the namespace's CONNECT answer.
const sioConnectTimeout = 10 * time.Second

// sioOpen connects a client to url in mode with one attempt, waits for its
// "connect" and, in sioUpgrade mode, for the upgrade to WebSocket. When the
// test ends it is disconnected, and a reconnection attempt of its that
// failed fails the test: the tests' reconnections must succeed at once.
func sioOpen(tb testing.TB, url string, mode sioMode, mutate func(*sioOptions)) (*sioClient, error) {
	opts := sioOptions{Timeout: sioConnectTimeout}
	if mutate != nil {
		mutate(&opts)
	}
	c := sioNewClient(url, mode, opts)
	tb.Cleanup(func() {
		c.Disconnect()
		if errs := c.reconnectErrors(); len(errs) > 0 {
			tb.Errorf("%s client: %d failed reconnection attempts: %v", mode, len(errs), errors.Join(errs...))
		}
	})
	if err := c.connect(); err != nil {
		return nil, fmt.Errorf("%s client: %v", mode, err)
	}
	if mode == sioUpgrade {
		if err := c.waitUpgrade(10 * time.Second); err != nil {
			return nil, fmt.Errorf("upgrade client %s: %v", c.Id(), err)
		}
	}
	c.inbox.label = fmt.Sprintf("%s client %s", mode, c.Id())
	return c, nil
}

// sioStart starts a test server (startTestServer) whose client bundle is a
// tiny stand-in: reading and gzipping the real one takes seconds under -race,
// and only TestBundle is about the bundle.
func sioStart(tb testing.TB, mutate func(*chat.Config)) *testServer {
	tb.Helper()
	dist := sioFakeBundle(tb)
	return startTestServer(tb, func(c *chat.Config) {
		c.ClientDir = dist
		if mutate != nil {
			mutate(c)
		}
	})
}

// sioFakeBundle writes a stand-in socket.io-client package (package.json and
// the eight dist files, a few bytes each) and returns its dist directory.
func sioFakeBundle(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	dist := filepath.Join(dir, "dist")
	if err := os.Mkdir(dist, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"socket.io-client","version":"0.0.0-test"}`), 0o644); err != nil {
		tb.Fatal(err)
	}
	for _, name := range bundleFileNames {
		if err := os.WriteFile(filepath.Join(dist, name), []byte("/* "+name+" stand-in */\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dist
}

// sioFastPing makes the server ping every 200 ms, so that the test clients
// answer heartbeats all along, between their messages: a polling client's
// pong POST next to its emits, pings during an upgrade's steps.
func sioFastPing(c *chat.Config) { c.PingInterval = 200 * time.Millisecond }

// sioEventually polls cond until it holds, failing after timeout.
func sioEventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sioWaitConnectLog waits for the server's "A new user has connected" line of
// socket id and returns it.
func sioWaitConnectLog(tb testing.TB, ts *testServer, id string) string {
	tb.Helper()
	if err := sioWaitConnectLogErr(ts, id, 5*time.Second); err != nil {
		tb.Fatal(err)
	}
	return sioConnectLogLine(ts, id)
}

func sioWaitConnectLogErr(ts *testServer, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for sioConnectLogLine(ts, id) == "" {
		if time.Now().After(deadline) {
			return fmt.Errorf("the server logged no connection of %s within %v", id, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

func sioConnectLogLine(ts *testServer, id string) string {
	for l := range strings.SplitSeq(ts.Log.String(), "\n") {
		if strings.Contains(l, "A new user has connected") && strings.Contains(l, "id="+id+" ") {
			return l
		}
	}
	return ""
}

// sioOneArg returns the single argument of a "message" event.
func sioOneArg(tb testing.TB, args []any) any {
	tb.Helper()
	if len(args) != 1 {
		tb.Fatalf("message has %d arguments %#v, want exactly 1 (recovery is off)", len(args), args)
	}
	return args[0]
}

func TestTransport(t *testing.T) {
	ts := sioStart(t, sioFastPing)
	for _, mode := range sioModes {
		t.Run(string(mode), func(t *testing.T) {
			c := sioDial(t, ts, mode, nil)
			if got, want := c.transportAtOpen, map[sioMode]string{sioPolling: "polling", sioWebSocket: "websocket", sioUpgrade: "polling"}[mode]; got != want {
				t.Errorf("session opened on %q, want %q", got, want)
			}
			line := sioWaitConnectLog(t, ts, c.Id())
			if mode != sioUpgrade && !strings.Contains(line, "transport="+string(mode)) {
				t.Errorf("server log %q does not show transport=%s", line, mode)
			}
			if mode == sioUpgrade {
				sioEventually(t, 10*time.Second, "upgrade to websocket", func() bool {
					return c.transportName() == "websocket" && slices.Contains(c.upgrades(), "websocket")
				})
			} else if up := c.upgrades(); len(up) > 0 {
				t.Errorf("%s client upgraded to %q", mode, up)
			}
			text := "hello over " + string(mode)
			if err := c.Emit("user-message", text); err != nil {
				t.Fatal(err)
			}
			msgs := c.inbox.waitN(t, 1, 10*time.Second)
			if got := sioOneArg(t, msgs[0]); got != text {
				t.Errorf("message = %#v, want %q", got, text)
			}
			if mode == sioUpgrade {
				if got := c.transportName(); got != "websocket" {
					t.Errorf("final transport = %q, want websocket", got)
				}
			}
		})
	}
}

// TestTransportEmitOnConnect: clients that emit as soon as they are
// connected (socket.on("connect", () => socket.emit(...)), a common pattern)
// must be served, not disconnected.
func TestTransportEmitOnConnect(t *testing.T) {
	ts := sioStart(t, sioFastPing)
	const n = 30
	type result struct {
		i      int
		err    error
		reason string
	}
	results := make(chan result, n)
	for i := range n {
		mode := []sioMode{sioWebSocket, sioPolling}[i%2]
		go func() {
			text := fmt.Sprintf("hello from %d", i)
			emitted := make(chan error, 1)
			c, err := sioOpen(t, ts.URL, mode, func(o *sioOptions) {
				o.OnConnect = func(c *sioClient) { emitted <- c.Emit("user-message", text) }
			})
			if err != nil {
				results <- result{i: i, err: err}
				return
			}
			if err := <-emitted; err != nil {
				results <- result{i: i, err: err}
				return
			}
			timeout := time.NewTimer(10 * time.Second)
			defer timeout.Stop()
			for {
				if slices.ContainsFunc(c.inbox.snapshot(), func(args []any) bool { return len(args) == 1 && args[0] == text }) {
					results <- result{i: i}
					return
				}
				select {
				case <-c.inbox.notify:
				case reason := <-c.disconnects:
					results <- result{i: i, err: errors.New("disconnected"), reason: reason}
					return
				case <-timeout.C:
					results <- result{i: i, err: errors.New("no answer within 10s")}
					return
				}
			}
		}()
	}
	var failed []string
	for range n {
		if r := <-results; r.err != nil {
			failed = append(failed, fmt.Sprintf("client %d: %v %s", r.i, r.err, r.reason))
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d clients that emit on connect were not served:\n%s", len(failed), n, strings.Join(failed, "\n"))
	}
}

func TestBroadcastReachesAllIncludingSender(t *testing.T) {
	ts := sioStart(t, sioFastPing)
	var clients []*sioClient
	for _, mode := range sioModes {
		clients = append(clients, sioDial(t, ts, mode, nil), sioDial(t, ts, mode, nil))
	}
	// Each client in turn sends one message and waits until everyone,
	// itself included, got it.
	for i, sender := range clients {
		text := fmt.Sprintf("from client %d", i)
		if err := sender.Emit("user-message", text); err != nil {
			t.Fatal(err)
		}
		for j, c := range clients {
			msgs := c.inbox.waitN(t, i+1, 10*time.Second)
			if got := sioOneArg(t, msgs[i]); got != text {
				t.Fatalf("client %d message %d = %#v, want %q", j, i, got, text)
			}
		}
	}
	for j, c := range clients {
		if n := len(c.inbox.snapshot()); n != len(clients) {
			t.Errorf("client %d got %d messages, want %d", j, n, len(clients))
		}
	}
}

// TestBurst is the regression test of socket.io v2's lost and reordered
// broadcasts: N clients each send M messages as fast as they can, all at
// once; every client must receive all N×M exactly once, each sender's in order.
func TestBurst(t *testing.T) {
	cases := []struct {
		mode              sioMode
		clients, messages int
	}{
		{sioWebSocket, 20, 50},
		{sioPolling, 20, 50},
	}
	ts := sioStart(t, sioFastPing)
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s_%dx%d", tc.mode, tc.clients, tc.messages), func(t *testing.T) {
			sioBurst(t, ts, tc.mode, tc.clients, tc.messages)
		})
	}
}

func sioBurst(t *testing.T, ts *testServer, mode sioMode, nClients, nMessages int) {
	clients := make([]*sioClient, nClients)
	errs := make([]error, nClients)
	var dials sync.WaitGroup
	for i := range clients {
		dials.Go(func() { clients[i], errs[i] = sioDialErr(t, ts, mode, nil) })
	}
	dials.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	total := nClients * nMessages
	start := make(chan struct{})
	var wg sync.WaitGroup
	began := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			<-start
			for seq := range nMessages {
				if err := c.Emit("user-message", map[string]any{"from": i, "seq": seq}); err != nil {
					t.Errorf("client %d emit %d: %v", i, seq, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for _, c := range clients {
		c.inbox.waitNActive(t, total, 5*time.Second, 60*time.Second)
	}
	// A final marker from client 0: anything the server broadcast before it
	// (a duplicate, say) has reached every client before the marker.
	if err := clients[0].Emit("user-message", "done"); err != nil {
		t.Fatal(err)
	}
	for r, c := range clients {
		msgs := c.inbox.waitN(t, total+1, 30*time.Second)
		if len(msgs) != total+1 || sioOneArg(t, msgs[total]) != "done" {
			t.Fatalf("client %d: got %d messages before the marker, want exactly %d", r, len(msgs)-1, total)
		}
		next := make([]int, nClients) // next expected seq per sender
		for k, args := range msgs[:total] {
			m, ok := sioOneArg(t, args).(map[string]any)
			from, ok1 := m["from"].(float64)
			seq, ok2 := m["seq"].(float64)
			if !ok || !ok1 || !ok2 || from < 0 || int(from) >= nClients {
				t.Fatalf("client %d message %d = %#v, want {from, seq}", r, k, args)
			}
			if int(seq) != next[int(from)] {
				t.Fatalf("client %d message %d: sender %d seq %d, want seq %d (lost, duplicated or reordered)", r, k, int(from), int(seq), next[int(from)])
			}
			next[int(from)]++
		}
		for s, n := range next {
			if n != nMessages {
				t.Fatalf("client %d got %d messages from sender %d, want %d", r, n, s, nMessages)
			}
		}
	}
	t.Logf("%s: %d clients × %d messages, %d deliveries in %v", mode, nClients, nMessages, nClients*(total+1), time.Since(began).Round(time.Millisecond))
}

func TestPayloadFidelity(t *testing.T) {
	// want is what the test client decodes: JSON numbers are float64,
	// objects map[string]any, arrays []any, binary attachments []byte.
	cases := []struct {
		name       string
		send, want any
	}{
		{"string", "hello", "hello"},
		{"empty string", "", ""},
		{"unicode", "héllo wörld — 世界 🚀 \u2028 \"quoted\" \\ <b>tag</b>\n\t", "héllo wörld — 世界 🚀 \u2028 \"quoted\" \\ <b>tag</b>\n\t"},
		{"int", 42, 42.0},
		{"zero", 0, 0.0},
		{"float", 3.25, 3.25},
		{"small float", 0.1, 0.1},
		{"negative", -17, -17.0},
		{"negative float", -0.5, -0.5},
		{"large int", int64(9007199254740991), 9007199254740991.0},
		{"large float", 1.5e300, 1.5e300},
		{"true", true, true},
		{"false", false, false},
		{"null", nil, nil},
		{"empty object", map[string]any{}, map[string]any{}},
		{"object", map[string]any{"user": "ann", "n": 1, "nested": map[string]any{"ok": true, "list": []any{1, "two", nil}}},
			map[string]any{"user": "ann", "n": 1.0, "nested": map[string]any{"ok": true, "list": []any{1.0, "two", nil}}}},
		{"empty array", []any{}, []any{}},
		{"mixed array", []any{1, -2.5, "three", true, false, nil, map[string]any{"k": "v"}, []any{[]any{}}},
			[]any{1.0, -2.5, "three", true, false, nil, map[string]any{"k": "v"}, []any{[]any{}}}},
		{"binary", []byte{0, 1, 2, 0x7f, 0x80, 0xfe, 0xff}, []byte{0, 1, 2, 0x7f, 0x80, 0xfe, 0xff}},
		{"binary 64KiB", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 16<<10), bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 16<<10)},
		{"binary in object", map[string]any{"name": "f.bin", "data": []byte("\x00\xffbytes"), "size": 7},
			map[string]any{"name": "f.bin", "data": []byte("\x00\xffbytes"), "size": 7.0}},
		{"binaries in array", []any{"a", []byte{1}, map[string]any{"b": []byte{2, 3}}},
			[]any{"a", []byte{1}, map[string]any{"b": []byte{2, 3}}}},
	}
	ts := sioStart(t, sioFastPing)
	for _, mode := range []sioMode{sioWebSocket, sioPolling} {
		t.Run(string(mode), func(t *testing.T) {
			a, b := sioDial(t, ts, mode, nil), sioDial(t, ts, mode, nil)
			clients := []*sioClient{a, b}
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if err := a.Emit("user-message", tc.send); err != nil {
						t.Fatal(err)
					}
					for k, c := range clients {
						msgs := c.inbox.waitN(t, i+1, 10*time.Second)
						if got := sioOneArg(t, msgs[i]); !reflect.DeepEqual(got, tc.want) {
							t.Errorf("client %d got %#v (%T), want %#v (%T)", k, got, got, tc.want, tc.want)
						}
					}
				})
			}
		})
	}
}

// TestRecovery drops a WebSocket client without a clean disconnect while
// another client sends; on reconnection it must get exactly what it missed.
func TestRecovery(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		ts := sioStart(t, func(c *chat.Config) { c.Recovery = 2 * time.Minute })
		gate := make(chan struct{})
		a := sioDial(t, ts, sioWebSocket, func(o *sioOptions) {
			o.Reconnection = true
			o.ReconnectionDelay, o.ReconnectionDelayMax = 50*time.Millisecond, 50*time.Millisecond
		})
		b := sioDial(t, ts, sioWebSocket, nil)
		if a.Recovered() {
			t.Fatal("first connection reports recovered")
		}

		// A gets one broadcast first, so it holds an offset to recover from.
		if err := b.Emit("user-message", "before"); err != nil {
			t.Fatal(err)
		}
		first := a.inbox.waitN(t, 1, 10*time.Second)[0]
		if len(first) != 2 || first[0] != "before" {
			t.Fatalf("with recovery on, message = %#v, want [\"before\", offset]", first)
		}
		if off, ok := first[1].(string); !ok || off == "" {
			t.Fatalf("offset argument = %#v, want a non-empty string", first[1])
		}
		b.inbox.waitN(t, 1, 10*time.Second)

		// Hold A's automatic reconnection until B's messages went out.
		a.onReconnectAttempt(func() {
			select {
			case <-gate:
			case <-time.After(10 * time.Second):
			}
		})
		id := a.Id()
		a.dropTransport() // drop the WebSocket: no DISCONNECT, no close handshake
		select {
		case reason := <-a.disconnects:
			if reason != "transport close" {
				t.Errorf("disconnect reason %q, want \"transport close\"", reason)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("client did not notice its dropped transport within 5s")
		}
		sioEventually(t, 5*time.Second, "server to log the disconnect of "+id, func() bool {
			for l := range strings.SplitSeq(ts.Log.String(), "\n") {
				if strings.Contains(l, "user disconnected") && strings.Contains(l, "id="+id+" ") {
					return true
				}
			}
			return false
		})

		// Binary too: the server must keep replayable copies of buffers.
		missed := []any{"m1", 2.0, []byte("m3 \x00\xff"), map[string]any{"m": 4.0, "bin": []byte{4}}, "m5"}
		for _, m := range missed {
			if err := b.Emit("user-message", m); err != nil {
				t.Fatal(err)
			}
		}
		b.inbox.waitN(t, 1+len(missed), 10*time.Second)
		close(gate)

		select {
		case <-a.connects:
		case <-time.After(10 * time.Second):
			t.Fatal("client did not reconnect within 10s")
		}
		if !a.Recovered() {
			t.Error("Recovered() = false after reconnecting within the window")
		}
		if a.Id() != id {
			t.Errorf("id after recovery = %q, want the old id %q", a.Id(), id)
		}
		if err := b.Emit("user-message", "after"); err != nil {
			t.Fatal(err)
		}
		want := append(append([]any{"before"}, missed...), "after")
		got := a.inbox.waitN(t, len(want), 10*time.Second)
		var values []any
		for _, args := range got {
			if len(args) != 2 {
				t.Errorf("message %#v: want [value, offset]", args)
			}
			values = append(values, args[0])
		}
		if !reflect.DeepEqual(values, want) {
			t.Errorf("client received %#v,\nwant %#v (missed messages in order, once)", values, want)
		}
	})

	t.Run("off", func(t *testing.T) {
		ts := sioStart(t, nil)
		a := sioDial(t, ts, sioWebSocket, func(o *sioOptions) {
			o.Reconnection = true
			o.ReconnectionDelay, o.ReconnectionDelayMax = 50*time.Millisecond, 50*time.Millisecond
		})
		b := sioDial(t, ts, sioWebSocket, nil)
		if err := b.Emit("user-message", "one argument"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*sioClient{a, b} {
			if args := c.inbox.waitN(t, 1, 10*time.Second)[0]; len(args) != 1 || args[0] != "one argument" {
				t.Fatalf("with recovery off, message = %#v, want exactly [\"one argument\"]", args)
			}
		}
		id := a.Id()
		a.dropTransport()
		select {
		case <-a.connects:
		case <-time.After(10 * time.Second):
			t.Fatal("client did not reconnect within 10s")
		}
		if a.Recovered() {
			t.Error("Recovered() = true with recovery off")
		}
		if a.Id() == id {
			t.Error("id unchanged after reconnecting with recovery off")
		}
	})
}

// TestShutdown stops the server as SIGTERM does, with clients connected.
func TestShutdown(t *testing.T) {
	ts := sioStart(t, sioFastPing) // ShutdownGrace 5s
	clients := []*sioClient{sioDial(t, ts, sioPolling, nil), sioDial(t, ts, sioWebSocket, nil), sioDial(t, ts, sioUpgrade, nil)}
	began := time.Now()
	ts.Stop(t) // fails the test if serve returns an error
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("serve returned after %v, more than the 5s grace period", took)
	}
	for i, c := range clients {
		select {
		case reason := <-c.disconnects:
			// As with Node's io.close(): the transport closes, and clients
			// reconnect (here or to another node). "io server disconnect"
			// would stop their reconnection.
			t.Logf("client %d (%s) disconnected: %q", i, c.transportName(), reason)
			if reason != "transport close" && reason != "transport error" {
				t.Errorf("client %d disconnect reason %q, want transport close (clients then reconnect)", i, reason)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("client %d saw no disconnect within 5s of shutdown", i)
		}
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := hc.Get(ts.URL + "/healthz")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET /healthz after shutdown = %s, want connection refused", resp.Status)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("GET /healthz after shutdown: %v, want connection refused", err)
	}
	if log := ts.Log.String(); !strings.Contains(log, "server stopped") {
		t.Errorf("log has no \"server stopped\":\n%s", log)
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	dist := sioFakeBundle(t) // the real bundle is TestBundle's; it is slow to load under -race
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-addr", "127.0.0.1:0"}, confEnv(map[string]string{"CLIENT_DIR": dist}), out, errOut)
	}()
	var addr string
	sioEventually(t, 10*time.Second, "\"Server started\" in the output", func() bool {
		for l := range strings.SplitSeq(out.String(), "\n") {
			if strings.Contains(l, "Server started") {
				for f := range strings.FieldsSeq(l) {
					if a, ok := strings.CutPrefix(f, "addr="); ok {
						addr = a
						return true
					}
				}
			}
		}
		return false
	})
	body, err := httpGet("http://" + addr + "/healthz")
	if err != nil || body != "ok\n" {
		t.Fatalf("GET /healthz = %q, %v; want \"ok\\n\"", body, err)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("run returned %d after cancel, want 0\nstdout:\n%s\nstderr:\n%s", c, out, errOut)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15s of cancel")
	}
}

func TestRunUsage(t *testing.T) {
	emptyDir := t.TempDir()
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  []string // each must appear in stdout+stderr
	}{
		{"help", []string{"-h"}, nil, 0, []string{"-addr", "-recovery", "-cors-origin", "PORT"}},
		{"unknown flag", []string{"-nope"}, nil, 2, []string{"-nope", "Run with -h"}},
		{"bad duration", []string{"-ping-interval", "soon"}, nil, 2, []string{"-ping-interval", "soon"}},
		{"bad value", []string{"-log-format", "xml"}, nil, 2, []string{"-log-format", "xml"}},
		{"extra argument", []string{"serve"}, nil, 2, []string{"serve"}},
		{"bad env", nil, map[string]string{"PING_TIMEOUT": "forever"}, 2, []string{"PING_TIMEOUT", "forever"}},
		{"missing bundle", []string{"-addr", "127.0.0.1:0", "-client-dir", filepath.Join(emptyDir, "dist")}, nil, 1, []string{"npm ci"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := run(ctx, tc.args, func(k string) string { return tc.env[k] }, &out, &errOut)
			all := out.String() + errOut.String()
			if got != tc.wantCode {
				t.Errorf("run(%q) = %d, want %d\n%s", tc.args, got, tc.wantCode, all)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(all, w) {
					t.Errorf("output does not mention %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestStatic(t *testing.T) {
	t.Run("tutorial page", func(t *testing.T) {
		ts := sioStart(t, nil)
		resp, body := sioHTTP(t, http.MethodGet, ts.URL+"/", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET / = %s", resp.Status)
		}
		// The SHA-256 of the tutorial's index.html, which public/index.html
		// is byte for byte.
		const tutorialPage = "8a4ef9c123bb315e6e4589941ded852a82b28d7dd5f22dae742c3003a189b110"
		if got := fmt.Sprintf("%x", sha256.Sum256(body)); got != tutorialPage {
			t.Errorf("GET / (%d bytes) has SHA-256 %s, want the tutorial's index.html (%s)", len(body), got, tutorialPage)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET / Content-Type = %q, want text/html", ct)
		}
		body2, err := httpGet(ts.URL + "/healthz")
		if err != nil || body2 != "ok\n" {
			t.Errorf("GET /healthz = %q, %v", body2, err)
		}
	})

	t.Run("public dir", func(t *testing.T) {
		dir := t.TempDir()
		files := map[string]string{
			"index.html":      "<!doctype html><title>home</title>",
			"style.css":       "body { color: red }",
			"js/app.js":       "console.log('hi')",
			"img/logo.svg":    "<svg xmlns='http://www.w3.org/2000/svg'/>",
			"notes/readme.md": "# notes",
		}
		for name, content := range files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ts := sioStart(t, func(c *chat.Config) { c.PublicDir = dir })
		cases := []struct {
			path, wantBody, wantType string
			wantStatus               int
		}{
			{"/", files["index.html"], "text/html", 200},
			{"/style.css", files["style.css"], "text/css", 200},
			{"/js/app.js", files["js/app.js"], "javascript", 200},
			{"/img/logo.svg", files["img/logo.svg"], "image/svg+xml", 200},
			{"/notes/readme.md", files["notes/readme.md"], "", 200},
			{"/missing.txt", "", "", 404},
			{"/healthz", "ok\n", "text/plain", 200},
		}
		for _, tc := range cases {
			resp, body := sioHTTP(t, http.MethodGet, ts.URL+tc.path, nil)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("GET %s = %s, want %d", tc.path, resp.Status, tc.wantStatus)
				continue
			}
			if tc.wantStatus == 200 && string(body) != tc.wantBody {
				t.Errorf("GET %s body = %q, want %q", tc.path, body, tc.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tc.wantType) {
				t.Errorf("GET %s Content-Type = %q, want it to contain %q", tc.path, ct, tc.wantType)
			}
		}
		if resp, _ := sioHTTP(t, http.MethodPost, ts.URL+"/style.css", strings.NewReader("x")); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /style.css = %s, want 405", resp.Status)
		}
	})
}

// sioHTTP does one request without keep-alive or transparent gzip and
// returns the response with its body read.
func sioHTTP(tb testing.TB, method, url string, body io.Reader, header ...string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	hc := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true},
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

// rawSession is an Engine.IO v4 long-polling session driven by hand.
type rawSession struct {
	tb  testing.TB
	url string // .../socket.io/?EIO=4&transport=polling&sid=...
	hc  *http.Client
}

// rawOpen does the Engine.IO handshake and joins the main namespace.
func rawOpen(tb testing.TB, ts *testServer) *rawSession {
	tb.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	base := ts.URL + "/socket.io/?EIO=4&transport=polling"
	resp, err := hc.Get(base)
	if err != nil {
		tb.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var hs struct {
		Sid         string `json:"sid"`
		MaxPayload  int64  `json:"maxPayload"`
		PingTimeout int64  `json:"pingTimeout"`
	}
	if resp.StatusCode != 200 || len(body) == 0 || body[0] != '0' || json.Unmarshal(body[1:], &hs) != nil || hs.Sid == "" {
		tb.Fatalf("handshake = %s %q, want 200 0{\"sid\":...}", resp.Status, body)
	}
	s := &rawSession{tb: tb, url: base + "&sid=" + url.QueryEscape(hs.Sid), hc: hc}
	if status, body := s.post(strings.NewReader("40"), 2); status != 200 || body != "ok" {
		tb.Fatalf("POST 40 = %d %q, want 200 ok", status, body)
	}
	if status, body := s.poll(5 * time.Second); status != 200 || !strings.HasPrefix(body, "40{") {
		tb.Fatalf("namespace connect answer = %d %q, want 40{...}", status, body)
	}
	return s
}

// post sends body; contentLength < 0 sends it chunked.
func (s *rawSession) post(body io.Reader, contentLength int64) (int, string) {
	s.tb.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url, body)
	if err != nil {
		s.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.ContentLength = contentLength
	if contentLength < 0 {
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		// The server may answer and close before reading all of the body.
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// poll does one long-polling GET, giving up after timeout (status 0).
func (s *rawSession) poll(timeout time.Duration) (int, string) {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// closed reports whether the server ended the session within timeout: a poll
// answers 400 (unknown sid) or carries a CLOSE packet.
func (s *rawSession) closed(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		status, body := s.poll(time.Until(deadline))
		switch {
		case status == http.StatusBadRequest:
			return true
		case status == 200 && slices.Contains(strings.Split(body, "\x1e"), "1"):
			return true
		case status == 0:
			return false // the poll hung until the deadline: still open
		}
	}
	return false
}

// rawStillChats checks that the server still serves: a fresh client gets its
// own message back, and an observer that was connected all along gets it
// without having received anything else.
func rawStillChats(t *testing.T, ts *testServer, observer *sioClient) {
	t.Helper()
	healthz, err := httpGet(ts.URL + "/healthz")
	if err != nil || healthz != "ok\n" {
		t.Fatalf("GET /healthz = %q, %v", healthz, err)
	}
	c := sioDial(t, ts, sioPolling, nil)
	if err := c.Emit("user-message", "still here"); err != nil {
		t.Fatal(err)
	}
	if got := sioOneArg(t, c.inbox.waitN(t, 1, 10*time.Second)[0]); got != "still here" {
		t.Fatalf("fresh client got %#v, want \"still here\"", got)
	}
	msgs := observer.inbox.waitN(t, 1, 10*time.Second)
	if len(msgs) != 1 || sioOneArg(t, msgs[0]) != "still here" {
		t.Fatalf("observer got %d messages (first %.80v), want only \"still here\"", len(msgs), msgs[0])
	}
}

func TestRawProtocol(t *testing.T) {
	const limit = 10_000
	ts := sioStart(t, func(c *chat.Config) { c.MaxHTTPBufferSize = limit; sioFastPing(c) })
	// Each case gets its own observer, connected all along, that must see
	// nothing but the messages of healthy clients.
	newObserver := func(t *testing.T) *sioClient { return sioDial(t, ts, sioWebSocket, nil) }

	// socket.io v2 panicked on an EVENT packet with no payload.
	t.Run("event without payload", func(t *testing.T) {
		observer := newObserver(t)
		s := rawOpen(t, ts)
		status, body := s.post(strings.NewReader("42"), 2)
		t.Logf("POST 42 = %d %q", status, body)
		if !s.closed(3 * time.Second) {
			t.Error("session still open after an invalid `42` packet, want it closed as Node does (parse error)")
		}
		rawStillChats(t, ts, observer)
	})

	big := `42["user-message","` + strings.Repeat("x", 5*limit) + `"]`

	// socket.io v2 read a chunked body without any limit.
	t.Run("chunked body over the limit", func(t *testing.T) {
		observer := newObserver(t)
		s := rawOpen(t, ts)
		// A reader of unknown size makes net/http send it chunked.
		status, body := s.post(io.MultiReader(strings.NewReader(big)), -1)
		t.Logf("chunked POST of %d bytes = %d %.60q", len(big), status, body)
		if status != http.StatusRequestEntityTooLarge && !s.closed(3*time.Second) {
			t.Errorf("chunked body of %d bytes (limit %d): status %d and the session is still open", len(big), limit, status)
		}
		rawStillChats(t, ts, observer)
	})

	t.Run("content-length over the limit", func(t *testing.T) {
		observer := newObserver(t)
		s := rawOpen(t, ts)
		status, body := s.post(strings.NewReader(big), int64(len(big)))
		t.Logf("POST of %d bytes = %d %.60q", len(big), status, body)
		if status != http.StatusRequestEntityTooLarge && !s.closed(3*time.Second) {
			t.Errorf("body of %d bytes (limit %d): status %d and the session is still open", len(big), limit, status)
		}
		rawStillChats(t, ts, observer)
	})

	// Binary over polling as browsers send it: the BINARY_EVENT header and
	// its base64 attachment in one payload.
	t.Run("binary event", func(t *testing.T) {
		observer := newObserver(t)
		s := rawOpen(t, ts)
		data := []byte{0, 1, 0xfe, 0xff, 'o', 'k'}
		body := `451-["user-message",{"name":"f.bin","data":{"_placeholder":true,"num":0}}]` + "\x1eb" + base64.StdEncoding.EncodeToString(data)
		if status, answer := s.post(strings.NewReader(body), int64(len(body))); status != 200 || answer != "ok" {
			t.Fatalf("POST binary event = %d %q, want 200 ok", status, answer)
		}
		got := sioOneArg(t, observer.inbox.waitN(t, 1, 10*time.Second)[0])
		if want := map[string]any{"name": "f.bin", "data": data}; !reflect.DeepEqual(got, want) {
			t.Fatalf("observer got %#v, want %#v", got, want)
		}
		status, echo := s.poll(5 * time.Second)
		// The object as the client wrote it, keys in its order (as Node keeps them).
		if want := `451-["message",{"name":"f.bin","data":{"_placeholder":true,"num":0}}]` + "\x1eb" + base64.StdEncoding.EncodeToString(data); status != 200 || echo != want {
			t.Errorf("raw client's poll = %d %q, want %q", status, echo, want)
		}
	})

	// Bodies within the limit still work: a well-formed event is broadcast.
	t.Run("event within the limit", func(t *testing.T) {
		observer := newObserver(t)
		s := rawOpen(t, ts)
		if status, body := s.post(strings.NewReader(`42["user-message","raw"]`), -1); status != 200 || body != "ok" {
			t.Fatalf("chunked POST of a small event = %d %q, want 200 ok", status, body)
		}
		if got := sioOneArg(t, observer.inbox.waitN(t, 1, 10*time.Second)[0]); got != "raw" {
			t.Fatalf("observer got %#v, want \"raw\"", got)
		}
	})
}
