package main

// A raw Socket.IO v5 / Engine.IO v4 chat client, over WebSocket
// (gorilla/websocket) or HTTP long-polling (net/http), for the black-box
// regression tests of the server's core (order_test.go, disconnect_test.go,
// limiter_test.go, fidelity_test.go). It depends on nothing of the server
// but its wire protocol: it records every packet as the server wrote it,
// byte for byte, and how the connection ended.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rawChatTransport is the Engine.IO transport of a rawChat.
type rawChatTransport string

const (
	rawChatWS      rawChatTransport = "websocket"
	rawChatPolling rawChatTransport = "polling"
)

// rawChat is one raw client joined to the main namespace. A reader goroutine
// answers pings and records every other packet; tests wait on what it
// recorded. Its methods are safe for concurrent use.
type rawChat struct {
	tb        testing.TB
	name      string // for failure messages
	transport rawChatTransport
	id        string // the Socket.IO socket id, from the CONNECT answer

	// WebSocket
	ws  *websocket.Conn
	wmu sync.Mutex // serialises writes

	// polling
	hc     *http.Client
	url    string // ...&sid=...
	cancel context.CancelFunc

	mu      sync.Mutex
	packets []string // every packet received after the CONNECT answer, pings excluded
	end     error    // how the connection ended, once done is closed
	notify  chan struct{}
	done    chan struct{}
	resume  chan struct{} // closed to let a paused WebSocket reader start
}

// rawChatOptions changes how rawChatDial connects.
type rawChatOptions struct {
	// paused makes a client stop reading once connected, until
	// resumeReading: a polling client sends no GET, a WebSocket client
	// reads nothing and has a 4 KiB receive buffer, so the server's writes
	// to it soon block.
	paused bool
}

// rawChatDial connects a raw client over transport and waits for the
// CONNECT answer of the main namespace. It is closed when the test ends.
func rawChatDial(tb testing.TB, ts *testServer, transport rawChatTransport, name string, opts rawChatOptions) *rawChat {
	tb.Helper()
	c := &rawChat{tb: tb, name: name, transport: transport,
		notify: make(chan struct{}, 1), done: make(chan struct{}), resume: make(chan struct{})}
	if !opts.paused {
		close(c.resume)
	}
	switch transport {
	case rawChatWS:
		c.dialWS(ts, opts)
	case rawChatPolling:
		c.dialPolling(ts)
	default:
		tb.Fatalf("unknown transport %q", transport)
	}
	c.name = fmt.Sprintf("%s (%s %s)", name, transport, c.id)
	return c
}

func (c *rawChat) dialWS(ts *testServer, opts rawChatOptions) {
	tb := c.tb
	tb.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if opts.paused {
		d.NetDialContext = (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}).DialContext
	}
	conn, resp, err := d.Dial("ws://"+ts.Addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		tb.Fatalf("%s: dial: %v (response %v)", c.name, err, resp)
	}
	c.ws = conn
	tb.Cleanup(func() {
		_ = conn.Close()
		c.resumeReading()
		<-c.done
	})
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, open, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
		tb.Fatalf("%s: Engine.IO OPEN: %q %v", c.name, open, err)
	}
	if err := c.send("40"); err != nil {
		tb.Fatalf("%s: send CONNECT: %v", c.name, err)
	}
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			tb.Fatalf("%s: waiting for the CONNECT answer: %v", c.name, err)
		}
		if string(b) == "2" {
			_ = c.send("3")
			continue
		}
		c.id = rawChatConnectID(tb, c.name, string(b))
		break
	}
	_ = conn.SetReadDeadline(time.Time{})
	go c.readWS()
}

func (c *rawChat) readWS() {
	defer close(c.done)
	<-c.resume
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.finish(err)
			return
		}
		if string(b) == "2" {
			_ = c.send("3")
			continue
		}
		c.record(string(b))
	}
}

func (c *rawChat) dialPolling(ts *testServer) {
	tb := c.tb
	tb.Helper()
	tr := &http.Transport{DisableCompression: true}
	c.hc = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	base := ts.URL + "/socket.io/?EIO=4&transport=polling"
	status, body, err := c.do(context.Background(), http.MethodGet, base, "")
	if err != nil || status != http.StatusOK || !strings.HasPrefix(body, "0{") {
		tb.Fatalf("%s: handshake = %d %q %v, want 200 0{...}", c.name, status, body, err)
	}
	var open struct{ Sid string }
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil || open.Sid == "" {
		tb.Fatalf("%s: handshake %q: no sid", c.name, body)
	}
	c.url = base + "&sid=" + url.QueryEscape(open.Sid)
	if err := c.send("40"); err != nil {
		tb.Fatalf("%s: send CONNECT: %v", c.name, err)
	}
	var rest []string
	for c.id == "" {
		status, body, err := c.do(context.Background(), http.MethodGet, c.url, "")
		if err != nil || status != http.StatusOK {
			tb.Fatalf("%s: waiting for the CONNECT answer: %d %q %v", c.name, status, body, err)
		}
		for _, p := range strings.Split(body, "\x1e") {
			switch {
			case p == "2":
				_ = c.send("3")
			case c.id == "":
				c.id = rawChatConnectID(tb, c.name, p)
			default:
				rest = append(rest, p)
			}
		}
	}
	for _, p := range rest {
		c.record(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	tb.Cleanup(func() {
		cancel()
		c.resumeReading()
		<-c.done
		tr.CloseIdleConnections()
	})
	go c.readPolling(ctx)
}

// readPolling long-polls until the session ends or the test does.
func (c *rawChat) readPolling(ctx context.Context) {
	defer close(c.done)
	select {
	case <-c.resume:
	case <-ctx.Done():
		c.finish(ctx.Err())
		return
	}
	for {
		status, body, err := c.do(ctx, http.MethodGet, c.url, "")
		switch {
		case ctx.Err() != nil:
			c.finish(ctx.Err())
			return
		case err != nil:
			c.finish(err)
			return
		case status != http.StatusOK:
			c.finish(fmt.Errorf("GET answered %d %q", status, body))
			return
		}
		for _, p := range strings.Split(body, "\x1e") {
			switch p {
			case "2":
				_ = c.send("3")
			case "1": // Engine.IO CLOSE
				c.record(p)
				c.finish(errors.New("Engine.IO CLOSE packet"))
				return
			case "6": // NOOP
			default:
				c.record(p)
			}
		}
	}
}

// do sends one request and returns its status and body.
func (c *rawChat) do(ctx context.Context, method, u, body string) (int, string, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// rawChatConnectID reads the socket id of a CONNECT answer 40{"sid":...}.
func rawChatConnectID(tb testing.TB, name, packet string) string {
	tb.Helper()
	var sid struct{ Sid string }
	if !strings.HasPrefix(packet, "40{") || json.Unmarshal([]byte(packet[2:]), &sid) != nil || sid.Sid == "" {
		tb.Fatalf("%s: CONNECT answer %q, want 40{\"sid\":...}", name, packet)
	}
	return sid.Sid
}

// send writes Engine.IO packets: one WebSocket frame each, or one POST
// carrying all of them as a payload.
func (c *rawChat) send(packets ...string) error {
	if c.transport == rawChatWS {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		for _, p := range packets {
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(p)); err != nil {
				return err
			}
		}
		return nil
	}
	status, body, err := c.do(context.Background(), http.MethodPost, c.url, strings.Join(packets, "\x1e"))
	if err != nil {
		return err
	}
	if status != http.StatusOK || body != "ok" {
		return fmt.Errorf("POST answered %d %q", status, body)
	}
	return nil
}

// emit sends user-message events whose argument is the JSON text of each
// element of jsonArgs, in one send.
func (c *rawChat) emit(jsonArgs ...string) error {
	packets := make([]string, len(jsonArgs))
	for i, a := range jsonArgs {
		packets[i] = `42["user-message",` + a + `]`
	}
	return c.send(packets...)
}

// resumeReading lets a paused client read again.
func (c *rawChat) resumeReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.resume:
	default:
		close(c.resume)
	}
}

func (c *rawChat) record(p string) {
	c.mu.Lock()
	c.packets = append(c.packets, p)
	c.mu.Unlock()
	c.signal()
}

func (c *rawChat) finish(err error) {
	c.mu.Lock()
	c.end = err
	c.mu.Unlock()
	c.signal()
}

func (c *rawChat) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// received returns every packet recorded so far, in arrival order.
func (c *rawChat) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.packets...)
}

// messages returns the JSON text of the argument of every "message" event
// received so far, as the server wrote it.
func (c *rawChat) messages() []string {
	var out []string
	for _, p := range c.received() {
		if arg, ok := strings.CutPrefix(p, `42["message",`); ok && strings.HasSuffix(arg, "]") {
			out = append(out, arg[:len(arg)-1])
		}
	}
	return out
}

// ended reports how the connection ended, and whether it did.
func (c *rawChat) ended() (error, bool) {
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.end, true
	default:
		return nil, false
	}
}

// waitMessages waits until at least n messages arrived, failing when none
// arrived for idle or after overall, and returns them.
func (c *rawChat) waitMessages(tb testing.TB, n int, idle, overall time.Duration) []string {
	tb.Helper()
	deadline := time.NewTimer(overall)
	defer deadline.Stop()
	quiet := time.NewTimer(idle)
	defer quiet.Stop()
	last := -1
	for {
		msgs := c.messages()
		if len(msgs) >= n {
			return msgs
		}
		if len(msgs) != last {
			last = len(msgs)
			quiet.Reset(idle)
		}
		if err, ok := c.ended(); ok {
			tb.Fatalf("%s: connection ended (%v) after %d of %d messages", c.name, err, len(msgs), n)
		}
		select {
		case <-c.notify:
		case <-c.done:
		case <-quiet.C:
			tb.Fatalf("%s: no message for %v: got %d, want %d", c.name, idle, len(msgs), n)
		case <-deadline.C:
			tb.Fatalf("%s: timed out after %v: got %d messages, want %d", c.name, overall, len(msgs), n)
		}
	}
}

// waitEnd waits up to timeout for the connection to end and returns why.
func (c *rawChat) waitEnd(tb testing.TB, timeout time.Duration) error {
	tb.Helper()
	select {
	case <-c.done:
		err, _ := c.ended()
		return err
	case <-time.After(timeout):
		tb.Fatalf("%s: connection still open after %v; received %d packets, last %.200q", c.name, timeout, len(c.received()), rawChatLast(c.received()))
		return nil
	}
}

// rawChatLast is the last element of packets, or "" when there is none.
func rawChatLast(packets []string) string {
	if len(packets) == 0 {
		return ""
	}
	return packets[len(packets)-1]
}
