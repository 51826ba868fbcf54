package engineio_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/chatio/socketio-chat/engineio"
)

// echo is a SessionHandler that sends every message back.
type echo struct{ s *engineio.Session }

func (e echo) OnMessage(data []byte, binary bool) {
	if binary {
		_ = e.s.Send(engineio.BinaryMessage(data))
		return
	}
	_ = e.s.Send(engineio.TextMessage(append([]byte("4"), data...)))
}

func (e echo) OnQueueOverflow() { e.s.Close("slow consumer") }

func (e echo) OnClose(reason string, err error) {}

// An echo server, and a long-polling client that speaks Engine.IO v4 by
// hand: the handshake, a POST of a MESSAGE packet, and the GET that
// brings its echo back.
func ExampleNewServer() {
	srv := engineio.NewServer(engineio.Options{Logger: slog.New(slog.DiscardHandler)},
		func(s *engineio.Session) engineio.SessionHandler { return echo{s} })
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Close()

	url := ts.URL + "/engine.io/?EIO=4&transport=polling"
	resp, err := http.Get(url)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var open struct {
		SID      string   `json:"sid"`
		Upgrades []string `json:"upgrades"`
	}
	_ = json.Unmarshal(body[1:], &open) // after the packet type, '0'
	fmt.Printf("open: type %c, upgrades %v\n", body[0], open.Upgrades)

	url += "&sid=" + open.SID
	resp, err = http.Post(url, "text/plain", strings.NewReader("4hello"))
	if err != nil {
		panic(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("post: %s\n", body)

	resp, err = http.Get(url)
	if err != nil {
		panic(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("poll: %q\n", body)
	// Output:
	// open: type 0, upgrades [websocket]
	// post: ok
	// poll: "4hello"
}
