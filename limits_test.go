package main

import (
	"encoding/json"
	"fmt"
	"github.com/chatio/socketio-chat/chat"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// limClient is a raw Engine.IO v4 / Socket.IO v5 WebSocket client that
// answers pings and records the chat messages it reads.
type limClient struct {
	t    testing.TB
	conn *websocket.Conn
	wmu  sync.Mutex
	msgs chan string // payloads of "message" events
	done chan struct{}
}

// limDial connects to the main namespace over WebSocket. When read is false
// the client never reads after connecting, and its receive buffer is small,
// so the server's writes to it soon block.
func limDial(t testing.TB, ts *testServer, read bool) *limClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if !read {
		d.NetDialContext = (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}).DialContext
	}
	conn, _, err := d.Dial("ws://"+ts.Addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &limClient{t: t, conn: conn, msgs: make(chan string, 100_000), done: make(chan struct{})}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, open, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
		t.Fatalf("engine open: %q %v", open, err)
	}
	c.write("40")
	if _, ack, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(ack), "40{") {
		t.Fatalf("socket.io connect: %q %v", ack, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if read {
		go c.readLoop()
	}
	return c
}

func (c *limClient) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, []byte(s))
}

// emit sends user-message with a JSON-encodable payload.
func (c *limClient) emit(payload any) error {
	b, _ := json.Marshal([]any{"user-message", payload})
	return c.write("42" + string(b))
}

func (c *limClient) readLoop() {
	defer close(c.done)
	for {
		_, m, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		s := string(m)
		switch {
		case s == "2":
			_ = c.write("3")
		case strings.HasPrefix(s, `42["message",`):
			var ev []json.RawMessage
			if json.Unmarshal([]byte(s[2:]), &ev) == nil && len(ev) == 2 {
				var text string
				if json.Unmarshal(ev[1], &text) == nil {
					c.msgs <- text
				}
			}
		}
	}
}

// next waits for the next chat message.
func (c *limClient) next(timeout time.Duration) (string, bool) {
	select {
	case m := <-c.msgs:
		return m, true
	case <-time.After(timeout):
		return "", false
	}
}

// waitFor waits for a condition with a deadline, polling.
func limWaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSlowConsumersAreDisconnected: 5 clients that never read while 18 MB is
// broadcast are disconnected, the readers get every message with bounded
// latency, and the heap grows by far less than 18 MB × 5.
func TestSlowConsumersAreDisconnected(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) {
		c.EventRate, c.EventBurst = 10_000, 10_000
		c.LogLevel = 0 // info: the debug log of 300 × 60 KB would dominate
	})
	readers := []*limClient{limDial(t, ts, true), limDial(t, ts, true), limDial(t, ts, true)}
	for i := 0; i < 5; i++ {
		limDial(t, ts, false)
	}
	sender := limDial(t, ts, true)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()

	const messages, size = 300, 60_000 // 18 MB
	filler := strings.Repeat("x", size)
	var maxLatency time.Duration
	for i := 0; i < messages; i++ {
		msg := fmt.Sprintf("%d|%d|%s", i, time.Now().UnixNano(), filler)
		if err := sender.emit(msg); err != nil {
			t.Fatalf("emit %d: %v", i, err)
		}
		for _, r := range append(readers, sender) {
			got, ok := r.next(10 * time.Second)
			if !ok {
				t.Fatalf("a reading client did not get message %d within 10s", i)
			}
			var seq int
			var sent int64
			if _, err := fmt.Sscanf(got[:strings.LastIndex(got, "|")], "%d|%d", &seq, &sent); err != nil || seq != i {
				t.Fatalf("reader got message %d (%v), want %d", seq, err, i)
			}
			maxLatency = max(maxLatency, time.Since(time.Unix(0, sent)))
		}
	}
	close(stopSampling)
	<-sampled

	limWaitFor(t, 10*time.Second, "5 slow-consumer disconnects in the log", func() bool {
		return strings.Count(ts.Log.String(), "reason=\"slow consumer\"") >= 5
	})
	growth := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("heap growth peak %.1f MB; max reader latency %v", float64(growth)/1e6, maxLatency)
	if limit := int64(18e6 * 5 / 3); growth > limit {
		t.Errorf("heap grew by %.1f MB, want far less than 5 × 18 MB (limit %.1f MB)", float64(growth)/1e6, float64(limit)/1e6)
	}
	if maxLatency > 2*time.Second {
		t.Errorf("a reading client waited %v for a message; slow consumers must not delay the others", maxLatency)
	}
}

// limPolling is a raw Engine.IO polling session.
func limPollingConnect(t testing.TB, ts *testServer) (sid string) {
	t.Helper()
	body, err := httpGet(ts.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	var open struct{ Sid string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(body, "0")), &open); err != nil {
		t.Fatalf("handshake %q: %v", body, err)
	}
	limPost(t, ts, open.Sid, "40")
	got, err := httpGet(ts.URL + "/socket.io/?EIO=4&transport=polling&sid=" + open.Sid)
	if err != nil || !strings.HasPrefix(got, "40{") {
		t.Fatalf("connect ack: %q %v", got, err)
	}
	return open.Sid
}

func limPost(t testing.TB, ts *testServer, sid, body string) {
	t.Helper()
	resp, err := http.Post(ts.URL+"/socket.io/?EIO=4&transport=polling&sid="+sid, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post %q: %s %s", body, resp.Status, b)
	}
}

// TestSlowPollingClientIsDisconnected: a polling client that stops polling is
// disconnected once its backlog passes the send queue limit.
func TestSlowPollingClientIsDisconnected(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) {
		c.EventRate, c.EventBurst = 10_000, 10_000
		c.SendQueueBytes = 256 << 10
	})
	sid := limPollingConnect(t, ts) // and never polls again
	sender := limDial(t, ts, true)
	filler := strings.Repeat("y", 10_000)
	for i := 0; i < 40; i++ { // 400 KB > 256 KB
		if err := sender.emit(filler); err != nil {
			t.Fatal(err)
		}
		if _, ok := sender.next(5 * time.Second); !ok {
			t.Fatalf("sender did not get its message %d back", i)
		}
	}
	limWaitFor(t, 5*time.Second, "the polling client's slow-consumer disconnect", func() bool {
		return strings.Contains(ts.Log.String(), `transport=polling`) && strings.Contains(ts.Log.String(), `reason="slow consumer"`)
	})
	// The backlog is dropped; the next polls get only the goodbye: the
	// DISCONNECT packet (the client reports "io server disconnect"), then
	// CLOSE. The session is gone after that.
	for _, want := range []string{"41", "1"} {
		status, body := limGet(t, ts.URL+"/socket.io/?EIO=4&transport=polling&sid="+sid)
		if status != http.StatusOK || body != want {
			t.Errorf("GET after the disconnect: %d %q, want 200 %q", status, body, want)
		}
	}
	if status, _ := limGet(t, ts.URL+"/socket.io/?EIO=4&transport=polling&sid="+sid); status != http.StatusBadRequest {
		t.Errorf("GET on the dropped session: %d, want 400 (session gone)", status)
	}
}

// limGet does a GET and returns its status and body.
func limGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestFloodIsLimited: events beyond the rate are dropped with a warning, a
// client that keeps flooding is disconnected, others keep chatting.
func TestFloodIsLimited(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) { c.EventRate, c.EventBurst = 50, 100 })
	other := limDial(t, ts, true)
	flooder := limDial(t, ts, true)
	start := time.Now()
	for i := 0; i < 1000; i++ {
		if err := flooder.emit(fmt.Sprintf("flood %d", i)); err != nil {
			break // disconnected mid-flood
		}
	}
	limWaitFor(t, 5*time.Second, "the flooder's disconnect", func() bool {
		select {
		case <-flooder.done:
			return true
		default:
			return false
		}
	})
	elapsed := time.Since(start)
	log := ts.Log.String()
	for _, want := range []string{"dropping events over the rate limit", `reason=flood`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	// The other client saw at most a burst plus what the rate refilled.
	received := 0
	for {
		m, ok := other.next(200 * time.Millisecond)
		if !ok {
			break
		}
		if strings.HasPrefix(m, "flood") {
			received++
		}
	}
	if maxOK := 100 + int(50*elapsed.Seconds()) + 1; received > maxOK || received < 100 {
		t.Errorf("other client received %d flood messages in %v, want 100..%d", received, elapsed, maxOK)
	}
	// Others are not slowed: a normal client still chats at once.
	third := limDial(t, ts, true)
	if err := third.emit("still here"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*limClient{other, third} {
		if m, ok := c.next(2 * time.Second); !ok || m != "still here" {
			t.Errorf("after the flood a client got %q (ok=%v), want %q", m, ok, "still here")
		}
	}
}

// TestOversizedMessageIsDropped: a chat message over MaxMessageBytes (its
// JSON size) is not broadcast; the sender stays connected and later messages flow.
func TestOversizedMessageIsDropped(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) { c.MaxMessageBytes = 1000 })
	a, b := limDial(t, ts, true), limDial(t, ts, true)
	if err := a.emit(strings.Repeat("z", 999)); err != nil { // 1001 bytes of JSON
		t.Fatal(err)
	}
	if err := a.emit(strings.Repeat("z", 998)); err != nil { // 1000 bytes of JSON
		t.Fatal(err)
	}
	for _, c := range []*limClient{a, b} {
		m, ok := c.next(5 * time.Second)
		if !ok || len(m) != 998 {
			t.Fatalf("got a message of %d characters (ok=%v), want the 998-character one only", len(m), ok)
		}
	}
	if !strings.Contains(ts.Log.String(), "dropping oversized chat message") {
		t.Error("log lacks the oversized-message warning")
	}
}

// TestChatRefusesHostileEvents: on the chat server, events nested too deeply
// or with placeholders that lie close the sender's session; others chat on.
func TestChatRefusesHostileEvents(t *testing.T) {
	for _, tt := range []struct{ name, packet string }{
		{"nested 200 deep", `42["user-message",` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `]`},
		{"negative placeholder", `451-["user-message",{"_placeholder":true,"num":-1}]`},
		{"fractional placeholder", `451-["user-message",{"_placeholder":true,"num":0.5}]`},
		{"placeholder index not a number", `451-["user-message",{"_placeholder":true,"num":"0"}]`},
		{"placeholder without attachments", `451-["user-message",{"_placeholder":true,"num":3}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := startTestServer(t, nil)
			bystander := limDial(t, ts, true)
			attacker := limDial(t, ts, true)
			if err := attacker.write(tt.packet); err != nil {
				t.Fatal(err)
			}
			if tt.packet[1] == '5' {
				_ = attacker.conn.WriteMessage(websocket.BinaryMessage, []byte{1})
			}
			select {
			case <-attacker.done:
			case <-time.After(5 * time.Second):
				t.Fatal("the attacker's session was not closed")
			}
			if err := bystander.emit("still here"); err != nil {
				t.Fatal(err)
			}
			if m, ok := bystander.next(5 * time.Second); !ok || m != "still here" {
				t.Fatalf("bystander got %q (ok=%v), want its own message and nothing else", m, ok)
			}
		})
	}
}

// TestBroadcastReachesAClientAsSoonAsItIsConnected: a broadcast sent right
// after a client got its CONNECT answer reaches it. (A membership list filled
// in the connection handler, after the answer had left, once made a new
// client miss the messages of the next moments.)
func TestBroadcastReachesAClientAsSoonAsItIsConnected(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) { c.LogLevel = 0 })
	sender := limDial(t, ts, true)
	for round := 0; round < 50; round++ {
		newcomer := limDial(t, ts, true) // returns once the CONNECT answer is in
		want := fmt.Sprintf("round %d", round)
		if err := sender.emit(want); err != nil {
			t.Fatal(err)
		}
		if m, ok := newcomer.next(5 * time.Second); !ok || m != want {
			t.Fatalf("round %d: the new client got %q (ok=%v), want %q", round, m, ok, want)
		}
		if m, ok := sender.next(5 * time.Second); !ok || m != want {
			t.Fatalf("round %d: the sender got %q (ok=%v), want %q", round, m, ok, want)
		}
		_ = newcomer.conn.Close()
	}
}
