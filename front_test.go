package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/bench/eio"
	"github.com/chatio/socketio-chat/chat"
)

// TestFrontDoor: with the front door on (the default), a WebSocket
// handshake to the Socket.IO path is served without net/http, and a chat
// message goes through it; a polling handshake, a static file and a
// handshake the Host check refuses are answered as net/http answers them,
// and the metrics count each kind. With -ws-front=false, net/http serves
// them all and the counter stays at zero.
func TestFrontDoor(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[on], func(t *testing.T) {
			ts := startTestServer(t, func(c *chat.Config) {
				c.MetricsAddr = "127.0.0.1:0"
				c.WSFront = on
				c.ShutdownGrace = 500 * time.Millisecond // the polling session below never comes back for its CLOSE
			})
			murl := metricsURL(t, ts)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			// Two WebSocket clients; one's message reaches the other.
			p, err := eio.NewPoller(1)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			got := make(chan string, 4)
			var clients []*eio.RawConn
			for range 2 {
				c, err := eio.DialRaw(ctx, nil, ts.URL+"/socket.io/")
				if err != nil {
					t.Fatalf("websocket connect: %v", err)
				}
				defer c.Close()
				clients = append(clients, c)
			}
			if err := p.Add(clients[1], func(pkt []byte) {
				if text, ok := eio.MessageText(pkt); ok {
					got <- string(text)
				}
			}, func(error) {}); err != nil {
				t.Fatal(err)
			}
			if err := clients[0].Emit(eio.AppendUserMessage(nil, []byte("through the front"))); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if !strings.Contains(m, "through the front") {
					t.Errorf("received %q", m)
				}
			case <-ctx.Done():
				t.Fatal("the message did not arrive")
			}

			// A polling handshake and the page: net/http's answers.
			resp, err := http.Get(ts.URL + "/socket.io/?EIO=4&transport=polling")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), `0{"sid":`) {
				t.Errorf("polling handshake: %s %q", resp.Status, body)
			}
			resp, err = http.Get(ts.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET /: %s", resp.Status)
			}

			// A handshake with a Host the server does not answer to: the
			// Host check's 403, then the connection closes.
			c, err := net.DialTimeout("tcp", ts.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
			br := bufio.NewReader(c)
			r, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("refused handshake: %v", err)
			}
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode != http.StatusForbidden {
				t.Errorf("handshake with Host evil.example: %s, want 403", r.Status)
			}
			if on && !r.Close {
				t.Error("the front's refusal does not close the connection")
			}

			m := scrape(t, murl)
			served, given := value(m, "engineio_ws_front_connections_total", "to", "handshake"), value(m, "engineio_ws_front_connections_total", "to", "net_http")
			switch {
			case on && (served != 3 || given < 1):
				t.Errorf("front counters: %v handshakes (want 3: two clients, one refused), %v given to net/http (want ≥ 1: the polling handshake and the page, on one kept-alive connection)", served, given)
			case !on && served+given != 0:
				t.Errorf("front counters with -ws-front=false: %v, %v", served, given)
			}
		})
	}
}
