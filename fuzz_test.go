package main

// Fuzz targets for the two ways untrusted bytes reach the server: the body of
// a long-polling POST and a WebSocket message. Both go through the real chat
// handler (newApp on an httptest server: origin policy, guard, engine,
// Socket.IO parser, the chat's handlers), started once per fuzzing process.
// Each input gets a fresh session, so a failure reproduces from the input
// alone. Seeds live in testdata/fuzz/<FuzzName>/; `go test` runs them.
//
//	go test -run '^$' -fuzz FuzzPollingPost -fuzztime 3m .
//	go test -run '^$' -fuzz FuzzWebSocketFrame -fuzztime 3m .

import (
	"bytes"
	"context"
	"errors"
	"github.com/chatio/socketio-chat/chat"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fuzzLimit is the server's maxHttpBufferSize in the fuzz targets, small so
// that the fuzzer reaches it.
const fuzzLimit = 16 << 10

// fuzzServer is a chat server on an httptest listener that notices panics
// net/http recovered from.
type fuzzServer struct {
	URL    string
	hc     *http.Client
	panics *syncBuffer
}

func fuzzStart(f *testing.F) *fuzzServer {
	f.Helper()
	cfg := chat.DefaultConfig()
	cfg.MaxHTTPBufferSize = fuzzLimit
	cfg.ConnectTimeout = time.Second
	cfg.PingInterval = time.Second
	cfg.PingTimeout = time.Second
	app, err := newApp(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	panics := &syncBuffer{}
	hs := httptest.NewUnstartedServer(app)
	hs.Config.ErrorLog = log.New(panics, "", 0)
	hs.Start()
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	f.Cleanup(func() {
		app.Close()
		tr.CloseIdleConnections()
		hs.Close()
	})
	return &fuzzServer{URL: hs.URL, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}, panics: panics}
}

// check fails the input when net/http recovered a panic while serving it.
func (s *fuzzServer) check(t *testing.T) {
	t.Helper()
	if p := s.panics.String(); strings.Contains(p, "panic") {
		t.Fatalf("the server panicked:\n%s", p)
	}
}

// do sends one request and returns its status and body.
func (s *fuzzServer) do(t *testing.T, method, u string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// FuzzPollingPost posts the input as the body of a polling request of a
// fresh session. The answer must be 200 ok, or 400/413 with the JSON error
// body and the session closed; the server must never panic nor hang.
func FuzzPollingPost(f *testing.F) {
	s := fuzzStart(f)
	base := s.URL + "/socket.io/?EIO=4&transport=polling"
	f.Fuzz(func(t *testing.T, body []byte) {
		status, open := s.do(t, http.MethodGet, base, nil)
		if status != 200 || !strings.HasPrefix(open, "0{") {
			t.Fatalf("handshake = %d %q", status, open)
		}
		u := base + "&sid=" + url.QueryEscape(confParseOpen(t, open).Sid)
		status, answer := s.do(t, http.MethodPost, u, body)
		switch status {
		case http.StatusOK:
			if answer != "ok" {
				t.Fatalf("POST = 200 %q, want ok", answer)
			}
			s.do(t, http.MethodPost, u, []byte("1")) // close the session
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if !hostileJSON(answer) {
				t.Fatalf("POST = %d %q, want a JSON error body", status, answer)
			}
			// Closed: unknown sid, or an orderly close with its CLOSE packet.
			status, got := s.do(t, http.MethodGet, u, nil)
			if status != http.StatusBadRequest && (status != http.StatusOK || !slices.Contains(strings.Split(got, "\x1e"), "1")) {
				t.Fatalf("GET after a refused POST = %d %q, want 400 or a CLOSE packet", status, got)
			}
		default:
			t.Fatalf("POST = %d %q, want 200, 400 or 413", status, answer)
		}
		s.check(t)
	})
}

// fuzzProbe asks to join a namespace the chat does not have: the server
// answers it at once (44/fuzz-probe,...) whatever state the input left the
// session in, unless it closes the session.
var fuzzProbe = []byte("40/fuzz-probe,")

// FuzzWebSocketFrame sends the input as one WebSocket message (text or
// binary) on a fresh session that joined the main namespace, then
// fuzzProbe. The server must either answer the probe or close the
// connection, within a deadline; it must never panic nor hang.
func FuzzWebSocketFrame(f *testing.F) {
	s := fuzzStart(f)
	wsURL := confWSURL(s.URL, "/socket.io/", "EIO=4&transport=websocket")
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	f.Fuzz(func(t *testing.T, binary bool, frame []byte) {
		c, _, err := d.DialContext(context.Background(), wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		deadline := time.Now().Add(10 * time.Second)
		_ = c.SetReadDeadline(deadline)
		read := func() (int, []byte, error) {
			for {
				mt, b, err := c.ReadMessage()
				if err == nil && mt == websocket.TextMessage && string(b) == "2" {
					_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
					continue
				}
				return mt, b, err
			}
		}
		if _, b, err := read(); err != nil || !bytes.HasPrefix(b, []byte("0{")) {
			t.Fatalf("OPEN: %q %v", b, err)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
		if _, b, err := read(); err != nil || !bytes.HasPrefix(b, []byte("40{")) {
			t.Fatalf("CONNECT answer: %q %v", b, err)
		}
		mt := websocket.TextMessage
		if binary {
			mt = websocket.BinaryMessage
		}
		if err := c.WriteMessage(mt, frame); err != nil {
			return // closed already
		}
		_ = c.WriteMessage(websocket.TextMessage, fuzzProbe)
		for {
			_, b, err := read()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("no answer and no close within 10s")
				}
				break // closed: fine
			}
			if bytes.HasPrefix(b, []byte("44/fuzz-probe,")) {
				break
			}
		}
		s.check(t)
	})
}
