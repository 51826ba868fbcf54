package engineio_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/gorilla/websocket"
)

// dlvWait bounds the waits of these tests.
const dlvWait = 10 * time.Second

// dlvEcho sends every text message back.
type dlvEcho struct{ s *engineio.Session }

func (e dlvEcho) OnMessage(data []byte, binary bool) {
	_ = e.s.Send(engineio.TextMessage(append([]byte("4"), data...)))
}
func (e dlvEcho) OnQueueOverflow()      { e.s.Close("slow consumer") }
func (e dlvEcho) OnClose(string, error) {}

// dlvServer is an engine whose sessions are handed to the test.
func dlvServer(t *testing.T, opts engineio.Options) (*httptest.Server, *engineio.Server, chan *engineio.Session) {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	sessions := make(chan *engineio.Session, 4)
	srv := engineio.NewServer(opts, func(s *engineio.Session) engineio.SessionHandler {
		sessions <- s
		return dlvEcho{s}
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); ts.Close() })
	return ts, srv, sessions
}

func dlvGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// dlvHandshake opens a polling session and returns its URL.
func dlvHandshake(t *testing.T, base string) string {
	t.Helper()
	url := base + "/engine.io/?EIO=4&transport=polling"
	body := dlvGet(t, url)
	var open struct{ SID string }
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil {
		t.Fatalf("handshake %q: %v", body, err)
	}
	return url + "&sid=" + open.SID
}

func waitDone(t *testing.T, done chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(dlvWait):
		t.Fatalf("%s: the delivery was not done within %v", what, dlvWait)
	}
}

// A tracked message is done once written to every session it was queued
// for, over polling and WebSocket, or dropped with a session.
func TestDeliveryIsDoneWhenWrittenOrDropped(t *testing.T) {
	ts, srv, sessions := dlvServer(t, engineio.Options{CloseTimeout: 200 * time.Millisecond})

	// Polling: done when a GET takes it.
	url := dlvHandshake(t, ts.URL)
	polling := <-sessions
	// WebSocket.
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/engine.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, m, err := ws.ReadMessage(); err != nil || m[0] != '0' {
		t.Fatalf("OPEN %q, %v", m, err)
	}
	websock := <-sessions

	done := make(chan struct{})
	d := engineio.NewDelivery(func() { close(done) })
	m := engineio.TextMessage([]byte("4broadcast")).Tracked(d)
	for _, s := range []*engineio.Session{polling, websock} {
		d.Add()
		if err := s.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	d.Done() // the sender's hold
	if _, got, err := ws.ReadMessage(); err != nil || string(got) != "4broadcast" {
		t.Fatalf("websocket got %q, %v", got, err)
	}
	select {
	case <-done:
		t.Fatal("done before the polling client took the message")
	case <-time.After(50 * time.Millisecond):
	}
	if got := dlvGet(t, url); got != "4broadcast" {
		t.Fatalf("poll got %q", got)
	}
	waitDone(t, done, "written")

	// Dropped: queued for a polling session that closes without polling.
	url = dlvHandshake(t, ts.URL)
	s := <-sessions
	done = make(chan struct{})
	d = engineio.NewDelivery(func() { close(done) })
	d.Add()
	if err := s.Send(engineio.TextMessage([]byte("4never read")).Tracked(d)); err != nil {
		t.Fatal(err)
	}
	d.Done()
	s.Close("test") // its last packets wait CloseTimeout for a GET that never comes
	waitDone(t, done, "dropped")
	_ = url

	st := srv.Stats()
	if st.MessagesOut < 2 || st.BytesOut < 2*uint64(len("broadcast")) {
		t.Errorf("MessagesOut %d, BytesOut %d: want the two written copies counted", st.MessagesOut, st.BytesOut)
	}
}

// Stats count messages in and out and refusals by status and reason.
func TestStatsCountMessagesAndRefusals(t *testing.T) {
	ts, srv, _ := dlvServer(t, engineio.Options{})
	url := dlvHandshake(t, ts.URL)
	resp, err := http.Post(url, "text/plain", strings.NewReader("4hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := dlvGet(t, url); got != "4hello" {
		t.Fatalf("echo %q", got)
	}
	dlvGet(t, ts.URL+"/engine.io/?EIO=4&transport=carrier-pigeon")
	dlvGet(t, ts.URL+"/engine.io/?EIO=4&transport=polling&sid=nosuchsession")
	st := srv.Stats()
	if st.MessagesIn != 1 || st.BytesIn != 5 || st.MessagesOut != 1 || st.BytesOut != 5 {
		t.Errorf("in %d/%d bytes, out %d/%d bytes; want 1/5 each", st.MessagesIn, st.BytesIn, st.MessagesOut, st.BytesOut)
	}
	for _, want := range []engineio.Refusal{{Status: 400, Reason: "transport_unknown"}, {Status: 400, Reason: "session_id_unknown"}} {
		if st.Refusals[want] != 1 {
			t.Errorf("Refusals[%v] = %d, want 1 (all: %v)", want, st.Refusals[want], st.Refusals)
		}
	}
	if st.Refused[400] != 2 {
		t.Errorf("Refused[400] = %d, want 2", st.Refused[400])
	}
}
