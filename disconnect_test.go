package main

// Disconnects as Node's socket.io has them. When the server disconnects a
// client (a flood, a slow consumer), the client gets the Socket.IO DISCONNECT
// packet and, over WebSocket, a close frame with code 1000, so that
// socket.io-client reports "io server disconnect" and does not reconnect.
// When a client disconnects itself, the server reports it once, with the
// reason "client namespace disconnect".

import (
	"errors"
	"fmt"
	"github.com/chatio/socketio-chat/chat"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// disconnectCheck checks that c's connection ended as a server disconnect
// does: the last packet it received is the DISCONNECT packet 41 of the main
// namespace, preceded only by chat messages, and a WebSocket ends with a
// close frame with code 1000.
func disconnectCheck(t *testing.T, c *rawChat, end error) {
	t.Helper()
	packets := c.received()
	if c.transport == rawChatPolling && rawChatLast(packets) == "1" {
		packets = packets[:len(packets)-1] // the Engine.IO CLOSE after it
	}
	var others []string
	for _, p := range packets[:max(len(packets)-1, 0)] {
		if !strings.HasPrefix(p, `42["message",`) {
			others = append(others, p)
		}
	}
	if last := rawChatLast(packets); last != "41" {
		t.Errorf("%s: the last packet before the end (%v) is %.80q, want the DISCONNECT packet 41 (%d packets received)",
			c.name, end, last, len(packets))
	}
	if len(others) > 0 {
		t.Errorf("%s: packets other than chat messages before the DISCONNECT: %.200q", c.name, others)
	}
	if c.transport == rawChatWS {
		var ce *websocket.CloseError
		if !errors.As(end, &ce) || ce.Code != websocket.CloseNormalClosure {
			t.Errorf("%s: the WebSocket ended with %v, want a close frame with code 1000", c.name, end)
		}
	}
}

// TestServerDisconnectSendsDisconnectPacket: a client disconnected by the
// server for flooding or for not reading gets 41, then (WebSocket) a close
// frame 1000, over WebSocket and polling.
func TestServerDisconnectSendsDisconnectPacket(t *testing.T) {
	for _, transport := range []rawChatTransport{rawChatWS, rawChatPolling} {
		t.Run("flood/"+string(transport), func(t *testing.T) {
			ts := startTestServer(t, func(c *chat.Config) {
				c.EventRate, c.EventBurst = 50, 100
				c.LogLevel = 0
			})
			flooder := rawChatDial(t, ts, transport, "flooder", rawChatOptions{})
			// 400 events at once, in 8 sends of 50: twice the burst is
			// refused long before the rate refills it.
			for i := 0; i < 8; i++ {
				batch := make([]string, 50)
				for k := range batch {
					batch[k] = fmt.Sprintf(`"flood %d"`, i*50+k)
				}
				if err := flooder.emit(batch...); err != nil {
					t.Logf("send %d: %v (disconnected meanwhile)", i, err)
					break
				}
			}
			end := flooder.waitEnd(t, 10*time.Second)
			disconnectCheck(t, flooder, end)
		})

		t.Run("slow consumer/"+string(transport), func(t *testing.T) {
			ts := startTestServer(t, func(c *chat.Config) {
				c.EventRate, c.EventBurst = 10_000, 10_000
				c.SendQueueBytes = 256 << 10
				c.LogLevel = 0
			})
			slow := rawChatDial(t, ts, transport, "slow", rawChatOptions{paused: true})
			sender := rawChatDial(t, ts, rawChatWS, "sender", rawChatOptions{})
			// 8 MB for a client that reads nothing: more than its queue
			// (256 KiB) and the kernel's buffers (up to 4 MiB) hold.
			filler := strings.Repeat("z", 40_000)
			const n = 200
			for i := range n {
				if err := sender.emit(fmt.Sprintf(`"%d %s"`, i, filler)); err != nil {
					t.Fatal(err)
				}
				sender.waitMessages(t, i+1, 5*time.Second, 10*time.Second)
			}
			// The sender got all of it: the server has disconnected the
			// slow client by now. It reads again.
			slow.resumeReading()
			end := slow.waitEnd(t, 10*time.Second)
			t.Logf("the slow client read %d packets, then: %v", len(slow.received()), end)
			disconnectCheck(t, slow, end)
		})
	}
}

// disconnectReasons returns the reason of every "user disconnected" line
// the server logged for socket id.
func disconnectReasons(log, id string) []string {
	var out []string
	re := regexp.MustCompile(`reason=("(?:[^"\\]|\\.)*"|\S+)`)
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `msg="user disconnected"`) || !strings.Contains(l, " id="+id+" ") {
			continue
		}
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, strings.Trim(m[1], `"`))
		} else {
			out = append(out, "")
		}
	}
	return out
}

// TestClientDisconnectReportedOnce: 20 WebSocket clients disconnect at once
// as socket.io-client's disconnect() does (the DISCONNECT packet 41, then a
// close frame); the server reports each exactly once, with the reason
// "client namespace disconnect", as Node does.
func TestClientDisconnectReportedOnce(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) { c.LogLevel = 0 })
	const n = 20
	clients := make([]*rawChat, n)
	for i := range clients {
		clients[i] = rawChatDial(t, ts, rawChatWS, fmt.Sprintf("client %d", i), rawChatOptions{})
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			c.wmu.Lock()
			defer c.wmu.Unlock()
			_ = c.ws.WriteMessage(websocket.TextMessage, []byte("41"))
			_ = c.ws.WriteControl(websocket.CloseMessage, []byte{}, time.Now().Add(2*time.Second))
		})
	}
	wg.Wait()
	for _, c := range clients {
		c.waitEnd(t, 5*time.Second) // the server's close frame, or the TCP close
	}
	for _, c := range clients {
		sioEventually(t, 5*time.Second, "the server to report the disconnect of "+c.name, func() bool {
			return len(disconnectReasons(ts.Log.String(), c.id)) > 0
		})
	}
	// A second report is logged at about the same time as the first; a
	// later connection, logged after them, bounds the wait.
	last := rawChatDial(t, ts, rawChatWS, "last", rawChatOptions{})
	sioWaitConnectLog(t, ts, last.id)
	var wrong []string
	for _, c := range clients {
		if got := disconnectReasons(ts.Log.String(), c.id); len(got) != 1 || got[0] != "client namespace disconnect" {
			wrong = append(wrong, fmt.Sprintf("%s: %q", c.name, got))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d clients were not reported exactly once as [\"client namespace disconnect\"]:\n%s",
			len(wrong), n, strings.Join(wrong, "\n"))
	}
}
