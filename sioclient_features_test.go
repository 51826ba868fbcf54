package main

// Tests of what the test client (sioclient_test.go) does that the chat does
// not use: auth and connect_error, acknowledgements both ways with binary
// arguments, and each disconnect reason, against a bare socketio.Server,
// or a stand-in Engine.IO server that stops pinging.

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/gorilla/websocket"
)

// sioClientServer serves a Socket.IO server, set up by setup, over
// httptest (a PING every 200ms) and returns its URL.
func sioClientServer(t *testing.T, setup func(*socketio.Server)) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := socketio.NewServer(socketio.Options{Engine: engineio.Options{PingInterval: 200 * time.Millisecond, Logger: log}})
	if err != nil {
		t.Fatal(err)
	}
	setup(srv)
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return hs.URL
}

func TestSioClientAuthAndAcks(t *testing.T) {
	answers := make(chan []socketio.Arg, 3)
	url := sioClientServer(t, func(srv *socketio.Server) {
		srv.Use(func(s *socketio.Socket) error {
			var auth struct{ Token string }
			if json.Unmarshal(s.Handshake().Auth, &auth) != nil || auth.Token != "secret" {
				return errors.New("bad token")
			}
			return nil
		})
		srv.OnConnection(func(s *socketio.Socket) {
			s.On("echo", func(e *socketio.Event) {
				args := make([]any, len(e.Args))
				for i, a := range e.Args {
					args[i] = a
				}
				_ = e.Ack(args...)
			})
			s.On("ask me", func(*socketio.Event) {
				_ = s.Emit("question", "what?", []byte{1, 2}, socketio.AckFunc(func(args []socketio.Arg, err error) {
					if err != nil {
						t.Errorf("acknowledgement of question: %v", err)
					}
					answers <- args
				}))
			})
		})
	})
	for _, mode := range sioModes {
		t.Run(string(mode), func(t *testing.T) {
			if _, err := sioOpen(t, url, mode, func(o *sioOptions) { o.Auth = map[string]any{"token": "wrong"} }); err == nil || !strings.Contains(err.Error(), "bad token") {
				t.Errorf("connect with a wrong token: %v, want a connect_error with \"bad token\"", err)
			}
			c, err := sioOpen(t, url, mode, func(o *sioOptions) { o.Auth = map[string]any{"token": "secret"} })
			if err != nil {
				t.Fatal(err)
			}

			send := []any{1, "two", []byte{3}, map[string]any{"b": []byte{4}, "n": nil}, []any{true, []byte{}}}
			got, err := c.EmitWithAck(5*time.Second, "echo", send...)
			if err != nil {
				t.Fatal(err)
			}
			if want := []any{1.0, "two", []byte{3}, map[string]any{"b": []byte{4}, "n": nil}, []any{true, []byte{}}}; !reflect.DeepEqual(got, want) {
				t.Errorf("acknowledgement = %#v, want %#v", got, want)
			}

			c.On("question", func(args []any) []any {
				if want := []any{"what?", []byte{1, 2}}; !reflect.DeepEqual(args, want) {
					t.Errorf("question = %#v, want %#v", args, want)
				}
				return []any{"answer", []byte{5, 6}}
			})
			if err := c.Emit("ask me"); err != nil {
				t.Fatal(err)
			}
			select {
			case args := <-answers:
				if len(args) != 2 || string(args[0].JSON) != `"answer"` {
					t.Fatalf("answer = %v, want [\"answer\", <binary>]", args)
				}
				if b, ok := args[1].Bytes(); !ok || string(b) != "\x05\x06" {
					t.Errorf("answer's second argument = %v, want the bytes 05 06", args[1])
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the server got no acknowledgement of its question within 5s")
			}
		})
	}
}

func TestSioClientDisconnectReasons(t *testing.T) {
	var mu sync.Mutex
	serverReasons := map[string]chan string{} // by socket id
	reasonsOf := func(id string) chan string {
		mu.Lock()
		defer mu.Unlock()
		if serverReasons[id] == nil {
			serverReasons[id] = make(chan string, 1)
		}
		return serverReasons[id]
	}
	url := sioClientServer(t, func(srv *socketio.Server) {
		srv.OnConnection(func(s *socketio.Socket) {
			s.On("kick me", func(*socketio.Event) { s.Disconnect(false) })
			s.OnDisconnect(func(reason string, _ error) { reasonsOf(s.ID()) <- reason })
		})
	})
	reconnecting := func(o *sioOptions) { o.Reconnection = true }
	// wait returns what arrives on ch within 10s.
	wait := func(t *testing.T, ch chan string, what string) string {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
			return ""
		}
	}
	for _, mode := range sioModes {
		t.Run(string(mode), func(t *testing.T) {
			t.Run("io server disconnect", func(t *testing.T) {
				c, err := sioOpen(t, url, mode, reconnecting)
				if err != nil {
					t.Fatal(err)
				}
				id := c.Id()
				if err := c.Emit("kick me"); err != nil {
					t.Fatal(err)
				}
				if got := wait(t, c.disconnects, "disconnect"); got != "io server disconnect" {
					t.Errorf("client reason %q, want \"io server disconnect\"", got)
				}
				if got := wait(t, reasonsOf(id), "server disconnect"); got != "server namespace disconnect" {
					t.Errorf("server reason %q, want \"server namespace disconnect\"", got)
				}
				c.mu.Lock()
				session, again := c.session, c.reconnecting
				c.mu.Unlock()
				if session != nil || again {
					t.Errorf("after \"io server disconnect\": session %v, reconnecting %v; want neither", session != nil, again)
				}
			})
			t.Run("io client disconnect", func(t *testing.T) {
				c, err := sioOpen(t, url, mode, reconnecting)
				if err != nil {
					t.Fatal(err)
				}
				id := c.Id()
				c.Disconnect()
				if got := wait(t, c.disconnects, "disconnect"); got != "io client disconnect" {
					t.Errorf("client reason %q, want \"io client disconnect\"", got)
				}
				if got := wait(t, reasonsOf(id), "server disconnect"); got != "client namespace disconnect" {
					t.Errorf("server reason %q, want \"client namespace disconnect\"", got)
				}
			})
			t.Run("transport close", func(t *testing.T) {
				c, err := sioOpen(t, url, mode, reconnecting)
				if err != nil {
					t.Fatal(err)
				}
				id := c.Id()
				c.dropTransport()
				if got := wait(t, c.disconnects, "disconnect"); got != "transport close" {
					t.Errorf("client reason %q, want \"transport close\"", got)
				}
				select {
				case <-c.connects:
				case <-time.After(10 * time.Second):
					t.Fatal("no reconnection within 10s")
				}
				if c.Id() == "" || c.Id() == id {
					t.Errorf("id after reconnecting %q (before %q), want a new one (recovery is off)", c.Id(), id)
				}
				if mode == sioUpgrade {
					if err := c.waitUpgrade(10 * time.Second); err != nil {
						t.Errorf("reconnected session: %v", err)
					}
				}
				// The server learns that a polling client vanished from its
				// aborted GET or, if none was pending, from its silence.
				if mode != sioPolling {
					if got := wait(t, reasonsOf(id), "server disconnect"); got != "transport close" {
						t.Errorf("server reason %q, want \"transport close\"", got)
					}
				}
			})
		})
	}
}

// TestSioClientPingTimeout: a server that stops pinging is given up after
// pingInterval + pingTimeout with "ping timeout", over each transport.
func TestSioClientPingTimeout(t *testing.T) {
	// 2s from the handshake to the client's ping timeout: time enough to
	// join the namespace on a loaded machine.
	const open = `0{"sid":"stand-in","upgrades":[],"pingInterval":1000,"pingTimeout":1000,"maxPayload":1000000}`
	const answer = `40{"sid":"socket"}`
	var mu sync.Mutex
	var joined chan struct{} // the polling session's CONNECT came
	mux := http.NewServeMux()
	mux.HandleFunc("/socket.io/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("transport") == "websocket" {
			conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer conn.Close()
			_ = conn.WriteMessage(websocket.TextMessage, []byte(open))
			if _, b, err := conn.ReadMessage(); err != nil || string(b) != "40" {
				return
			}
			_ = conn.WriteMessage(websocket.TextMessage, []byte(answer))
			for { // no PING, ever
				if _, _, err := conn.ReadMessage(); err != nil {
					return
				}
			}
		}
		mu.Lock()
		if r.URL.Query().Get("sid") == "" {
			joined = make(chan struct{}, 1)
		}
		ch := joined
		mu.Unlock()
		switch {
		case r.URL.Query().Get("sid") == "":
			_, _ = w.Write([]byte(open))
		case r.Method == http.MethodPost:
			if body, _ := io.ReadAll(r.Body); string(body) == "40" {
				ch <- struct{}{}
			}
			_, _ = w.Write([]byte("ok"))
		default: // the CONNECT answer once, then no PING, ever
			select {
			case <-ch:
				_, _ = w.Write([]byte(answer))
			case <-r.Context().Done():
			}
		}
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	for _, mode := range []sioMode{sioPolling, sioWebSocket} {
		t.Run(string(mode), func(t *testing.T) {
			c, err := sioOpen(t, hs.URL, mode, nil)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-c.disconnects:
				if got != "ping timeout" {
					t.Errorf("reason %q, want \"ping timeout\"", got)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still connected 10s after the server's last sign of life")
			}
		})
	}
}
