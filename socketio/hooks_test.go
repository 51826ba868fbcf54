package socketio_test

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/gorilla/websocket"
)

const hkWait = 10 * time.Second

// hkRecorder records the hooks' calls, in order.
type hkRecorder struct {
	mu    sync.Mutex
	calls []string
	fan   chan int // recipients of each BroadcastDelivered
}

func (r *hkRecorder) add(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *hkRecorder) has(want string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.calls, want)
}

func (r *hkRecorder) hooks() *socketio.Hooks {
	return &socketio.Hooks{
		Connect: func(s *socketio.Socket) { r.add("connect " + s.Namespace().Name()) },
		ConnectError: func(n *socketio.Namespace, err error) {
			name := "?"
			if n != nil {
				name = n.Name()
			}
			r.add("connect_error " + name + " " + err.Error())
		},
		Disconnect: func(s *socketio.Socket, reason string, _ error) { r.add("disconnect " + reason) },
		Join:       func(s *socketio.Socket, room string) { r.add("join " + room) },
		Leave:      func(s *socketio.Socket, room string) { r.add("leave " + room) },
		EventReceived: func(s *socketio.Socket, event string, size int) {
			r.add("received " + event + " " + itoa(size))
		},
		EventSent: func(n *socketio.Namespace, event string, size, recipients int) {
			r.add("sent " + event + " " + itoa(size) + " to " + itoa(recipients))
		},
		BroadcastDelivered: func(n *socketio.Namespace, recipients int, elapsed time.Duration) {
			if elapsed > 0 {
				r.fan <- recipients
			}
		},
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// hkClient is a bare WebSocket client of the test server.
type hkClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func hkDial(t *testing.T, url string) *hkClient {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &hkClient{t, ws}
	if m := c.next(); m[0] != '0' {
		t.Fatalf("OPEN: %q", m)
	}
	return c
}

func (c *hkClient) send(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next message that is not a PING (answered).
func (c *hkClient) next() string {
	c.t.Helper()
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(hkWait))
		_, m, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatal(err)
		}
		if string(m) == "2" {
			c.send("3")
			continue
		}
		return string(m)
	}
}

func TestHooksSeeConnectionsEventsRoomsBroadcastsAndDisconnects(t *testing.T) {
	rec := &hkRecorder{fan: make(chan int, 16)}
	srv, err := socketio.NewServer(socketio.Options{
		Engine: engineio.Options{Logger: slog.New(slog.DiscardHandler)},
		Hooks:  rec.hooks(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Of("/private").Use(func(*socketio.Socket) error { return errors.New("keep out") })
	srv.OnConnection(func(s *socketio.Socket) {
		if !rec.has("connect /") {
			t.Error("the Connect hook did not run before the connection handlers")
		}
		s.Join("room1")
		s.On("say", func(e *socketio.Event) {
			_ = srv.Emit("said", e.Arg(0))
			s.Leave("room1")
		})
	})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Close()

	c := hkDial(t, ts.URL)
	c.send("40")
	if m := c.next(); !strings.HasPrefix(m, "40{") {
		t.Fatalf("CONNECT answer %q", m)
	}
	c.send("40/private,")
	if m := c.next(); !strings.HasPrefix(m, "44/private,") {
		t.Fatalf("CONNECT_ERROR expected, got %q", m)
	}
	c.send("40/nowhere,")
	if m := c.next(); !strings.HasPrefix(m, "44/nowhere,") {
		t.Fatalf("CONNECT_ERROR expected, got %q", m)
	}
	c.send(`42["say","hi"]`)
	if m := c.next(); m != `42["said","hi"]` {
		t.Fatalf("broadcast %q", m)
	}
	select {
	case n := <-rec.fan:
		if n != 1 {
			t.Errorf("BroadcastDelivered with %d recipients, want 1", n)
		}
	case <-time.After(hkWait):
		t.Fatal("BroadcastDelivered was not called")
	}
	c.ws.Close()
	deadline := time.Now().Add(hkWait)
	for !rec.has("disconnect transport close") {
		if time.Now().After(deadline) {
			t.Fatalf("no Disconnect hook; calls: %v", rec.calls)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []string{
		"connect /",
		"join room1",
		"connect_error /private keep out",
		"connect_error ? Invalid namespace",
		`received say 12`,   // ["say","hi"]
		`sent said 13 to 1`, // ["said","hi"]
		"leave room1",
		"disconnect transport close",
	}
	if !slices.Equal(rec.calls, want) {
		t.Errorf("hook calls\n got %q\nwant %q", rec.calls, want)
	}
}

// A broadcast allocates nothing more for hooks that do not track
// broadcasts, and nothing at all for the hooks when there are none.
func TestHooksCostNoAllocationWhenUnused(t *testing.T) {
	emit := func(h *socketio.Hooks) float64 {
		srv, err := socketio.NewServer(socketio.Options{
			Engine: engineio.Options{Logger: slog.New(slog.DiscardHandler)},
			Hooks:  h,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		return testing.AllocsPerRun(200, func() { _ = srv.Emit("message", "hello") })
	}
	none := emit(nil)
	counting := emit(&socketio.Hooks{EventSent: func(*socketio.Namespace, string, int, int) {}})
	if counting != none {
		t.Errorf("a broadcast allocates %v times with an EventSent hook, %v without", counting, none)
	}
}
