package main

// Heartbeat timing as Node's engine.io has it: the server sends a PING
// pingInterval after the client's PONG (not later), and a client that answers
// its pings is never cut off by them, over WebSocket and polling.

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/chatio/socketio-chat/chat"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// heartbeatConn is a raw Engine.IO session that waits for PINGs and answers
// them with PONGs.
type heartbeatConn interface {
	// nextPing waits up to timeout for the next PING, skipping other packets.
	nextPing(timeout time.Duration) error
	// pong sends a PONG; it returns once the server has it (polling) or it
	// was written (WebSocket).
	pong() error
}

type heartbeatWS struct{ c *websocket.Conn }

// heartbeatDialWS opens an Engine.IO session over WebSocket at path and
// sends the Socket.IO packets in join (none: the session joins nothing).
func heartbeatDialWS(tb testing.TB, ts *testServer, path string, join ...string) *heartbeatWS {
	tb.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial("ws://"+ts.Addr+path+"?EIO=4&transport=websocket", nil)
	if err != nil {
		tb.Fatalf("dial: %v (%v)", err, resp)
	}
	tb.Cleanup(func() { _ = c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, b, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(b), "0{") {
		tb.Fatalf("OPEN: %q %v", b, err)
	}
	for _, p := range join {
		if err := c.WriteMessage(websocket.TextMessage, []byte(p)); err != nil {
			tb.Fatal(err)
		}
	}
	return &heartbeatWS{c: c}
}

func (h *heartbeatWS) nextPing(timeout time.Duration) error {
	_ = h.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, b, err := h.c.ReadMessage()
		if err != nil {
			return err
		}
		if string(b) == "2" {
			return nil
		}
	}
}

func (h *heartbeatWS) pong() error { return h.c.WriteMessage(websocket.TextMessage, []byte("3")) }

type heartbeatPoll struct {
	hc      *http.Client
	url     string
	pending []string // packets of the last GET not read yet
}

// heartbeatDialPolling opens an Engine.IO session over polling at path and
// posts the Socket.IO packets in join.
func heartbeatDialPolling(tb testing.TB, ts *testServer, path string, join ...string) *heartbeatPoll {
	tb.Helper()
	tr := &http.Transport{}
	tb.Cleanup(tr.CloseIdleConnections)
	h := &heartbeatPoll{hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	base := ts.URL + path + "?EIO=4&transport=polling"
	status, body, err := h.do(http.MethodGet, base, "", 5*time.Second)
	var open struct{ Sid string }
	if err != nil || status != 200 || !strings.HasPrefix(body, "0{") || json.Unmarshal([]byte(body[1:]), &open) != nil {
		tb.Fatalf("handshake = %d %q %v", status, body, err)
	}
	h.url = base + "&sid=" + url.QueryEscape(open.Sid)
	for _, p := range join {
		if status, body, err := h.do(http.MethodPost, h.url, p, 5*time.Second); err != nil || status != 200 {
			tb.Fatalf("POST %q = %d %q %v", p, status, body, err)
		}
	}
	return h
}

func (h *heartbeatPoll) do(method, u, body string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, "", err
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (h *heartbeatPoll) nextPing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		for len(h.pending) > 0 {
			p := h.pending[0]
			h.pending = h.pending[1:]
			switch p {
			case "2":
				return nil
			case "1":
				return fmt.Errorf("the server closed the session (CLOSE packet)")
			}
		}
		status, body, err := h.do(http.MethodGet, h.url, "", time.Until(deadline))
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("GET answered %d %q: the session is gone", status, body)
		}
		h.pending = strings.Split(body, "\x1e")
	}
}

func (h *heartbeatPoll) pong() error {
	status, body, err := h.do(http.MethodPost, h.url, "3", 5*time.Second)
	if err == nil && (status != http.StatusOK || body != "ok") {
		err = fmt.Errorf("POST 3 answered %d %q", status, body)
	}
	return err
}

// TestHeartbeatPingFollowsPong: with pingInterval 300 ms, the next PING
// comes 300 ms after the client's PONG, as in Node, not later. Five
// intervals are measured from the moment the PONG was sent (WebSocket) or
// acknowledged (polling) to the arrival of the next PING; none may be early,
// none may come near the client's timeout, and their median must be within
// 90 ms of pingInterval.
func TestHeartbeatPingFollowsPong(t *testing.T) {
	const (
		interval = 300 * time.Millisecond
		timeout  = 200 * time.Millisecond
		samples  = 5
	)
	ts := startTestServer(t, func(c *chat.Config) {
		c.PingInterval, c.PingTimeout = interval, timeout
		c.LogLevel = 0
	})
	for _, tc := range []struct {
		name string
		dial func(t *testing.T) heartbeatConn
	}{
		{"websocket", func(t *testing.T) heartbeatConn { return heartbeatDialWS(t, ts, "/socket.io/", "40") }},
		{"polling", func(t *testing.T) heartbeatConn { return heartbeatDialPolling(t, ts, "/socket.io/", "40") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.dial(t)
			if err := c.nextPing(interval + time.Second); err != nil {
				t.Fatalf("first PING: %v", err)
			}
			var gaps []time.Duration
			for range samples {
				if err := c.pong(); err != nil {
					t.Fatalf("PONG: %v", err)
				}
				ponged := time.Now()
				if err := c.nextPing(interval + timeout + time.Second); err != nil {
					t.Fatalf("after %d PINGs: %v", len(gaps)+1, err)
				}
				gaps = append(gaps, time.Since(ponged))
			}
			sorted := slices.Sorted(slices.Values(gaps))
			median := sorted[len(sorted)/2]
			t.Logf("PONG → next PING: %v (median %v)", gaps, median)
			if sorted[0] < interval-50*time.Millisecond {
				t.Errorf("a PING came %v after the PONG, before pingInterval %v: %v", sorted[0], interval, gaps)
			}
			if median > interval+90*time.Millisecond {
				t.Errorf("the next PING comes %v (median) after the PONG, want pingInterval %v (at most %v): %v",
					median, interval, interval+90*time.Millisecond, gaps)
			}
			if last := sorted[len(sorted)-1]; last >= interval+timeout {
				t.Errorf("a PING came %v after the PONG, beyond pingInterval+pingTimeout %v: %v", last, interval+timeout, gaps)
			}
		})
	}
}

// TestHeartbeatThreePingsBeforeConnectTimeout is the protocol suite's
// heartbeat test against -conformance (pingInterval 300 ms, pingTimeout
// 200 ms, connectTimeout 1 s): a client that answers pings and has not
// joined a namespace yet gets three PINGs before connectTimeout cuts it off
// (at about 300, 600 and 900 ms), over WebSocket and over polling.
func TestHeartbeatThreePingsBeforeConnectTimeout(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) { c.Conformance = true })
	for _, tc := range []struct {
		name string
		dial func(t *testing.T) heartbeatConn
	}{
		{"websocket", func(t *testing.T) heartbeatConn { return heartbeatDialWS(t, ts, "/socket.io/") }},
		{"polling", func(t *testing.T) heartbeatConn { return heartbeatDialPolling(t, ts, "/socket.io/") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			c := tc.dial(t)
			var at []time.Duration
			for len(at) < 3 {
				if err := c.nextPing(2 * time.Second); err != nil {
					t.Fatalf("cut off after %d PINGs (at %v), %v after the handshake: %v", len(at), at, time.Since(start).Round(time.Millisecond), err)
				}
				at = append(at, time.Since(start).Round(time.Millisecond))
				if err := c.pong(); err != nil {
					t.Fatalf("PONG %d: %v", len(at), err)
				}
			}
			t.Logf("PINGs at %v after the handshake", at)
		})
	}
}
