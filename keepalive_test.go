package main

// HTTP connections that idle or stall cost the server a connection each: they
// are closed after an idle timeout (chat.Config.HTTPIdleTimeout) and count against
// the connection limit (chat.Config.MaxHTTPConnections), so that connections which
// send one request and go quiet cannot pile up.

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/chatio/socketio-chat/chat"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// keepaliveIdle opens a TCP connection, sends one keep-alive GET /healthz,
// reads its answer and returns the connection, which then goes quiet.
func keepaliveIdle(ts *testServer) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", ts.Addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+ts.Addr+"\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" || resp.Close {
		c.Close()
		return nil, fmt.Errorf("GET /healthz = %s %q (close %v), want a kept-alive 200 ok", resp.Status, body, resp.Close)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// keepaliveClosedByPeer waits until deadline for the server to close c and
// reports whether it did (EOF or reset; nothing may be sent on an idle
// connection but a close).
func keepaliveClosedByPeer(c net.Conn, deadline time.Time) (bool, error) {
	_ = c.SetReadDeadline(deadline)
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	switch {
	case n > 0:
		return false, fmt.Errorf("the server sent %q on an idle connection", b[:n])
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return true, nil
	case errors.As(err, &ne) && ne.Timeout():
		return false, nil
	default:
		return false, err
	}
}

// TestKeepAliveIdleConnectionsAreClosed: 300 connections that each send one
// keep-alive GET /healthz and go quiet are all closed by the server within
// a few seconds of an idle timeout of 1 s.
func TestKeepAliveIdleConnectionsAreClosed(t *testing.T) {
	const (
		n       = 300
		idle    = time.Second
		allowed = 5 * time.Second // idle, plus slack for a loaded machine
	)
	ts := startTestServer(t, func(c *chat.Config) {
		c.HTTPIdleTimeout = idle
		c.LogLevel = 0
	})
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { conns[i], errs[i] = keepaliveIdle(ts) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(idle + allowed)
	open := 0
	for i, c := range conns {
		closed, err := keepaliveClosedByPeer(c, deadline)
		if err != nil {
			t.Errorf("connection %d: %v", i, err)
		} else if !closed {
			open++
		}
	}
	if open > 0 {
		t.Errorf("%d of %d idle keep-alive connections still open %v after their request, with an idle timeout of %v",
			open, n, idle+allowed, idle)
	}
}

// TestKeepAliveConnectionsCountAgainstTheLimit: with room for 20
// connections, 10 idle keep-alive connections and 10 that stall in the middle
// of their request headers leave no room for a new Engine.IO session: its
// handshake gets 503, or no answer; once they are gone, a handshake succeeds.
func TestKeepAliveConnectionsCountAgainstTheLimit(t *testing.T) {
	const limit = 20
	ts := startTestServer(t, func(c *chat.Config) {
		c.MaxHTTPConnections = limit
		c.HTTPIdleTimeout = 30 * time.Second // not during the test
		c.LogLevel = 0
	})
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for i := range limit / 2 {
		c, err := keepaliveIdle(ts)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	for i := range limit / 2 {
		c, err := net.DialTimeout("tcp", ts.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("stalled connection %d: %v", i, err)
		}
		held = append(held, c)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+ts.Addr+"\r\n"); err != nil {
			t.Fatalf("stalled connection %d: %v", i, err)
		}
	}

	// handshake opens a new Engine.IO session on a new connection and
	// returns its status, or 0 when the server closed the connection or
	// did not answer within 2 s.
	handshake := func() (int, string) {
		c, err := net.DialTimeout("tcp", ts.Addr, 2*time.Second)
		if err != nil {
			return 0, err.Error()
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: "+ts.Addr+"\r\nConnection: close\r\n\r\n"); err != nil {
			return 0, err.Error()
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := handshake(); status == http.StatusOK {
		t.Errorf("with %d connections held open (the limit), a new session's handshake = 200 %.80q, want 503 or no answer", limit, body)
	} else {
		t.Logf("handshake at the limit: %d %.80q", status, body)
	}

	for _, c := range held {
		c.Close()
	}
	held = nil
	var last string
	sioEventually(t, 5*time.Second, "room for a session once the connections are closed", func() bool {
		status, body := handshake()
		last = fmt.Sprintf("%d %.80q", status, body)
		return status == http.StatusOK && strings.HasPrefix(body, "0{")
	})
	t.Logf("handshake after the connections closed: %s", last)
}

// kaConn is one keep-alive HTTP/1.1 connection on which a test writes
// requests by hand, as a browser's polling transport does.
type kaConn struct {
	tb   testing.TB
	host string
	c    net.Conn
	br   *bufio.Reader
}

func kaDial(tb testing.TB, ts *testServer) *kaConn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", ts.Addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &kaConn{tb: tb, host: ts.Addr, c: c, br: bufio.NewReader(c)}
}

// do sends one request and reads its answer (10 s at most).
func (k *kaConn) do(method, target, body string) (int, string) {
	k.tb.Helper()
	_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: " + k.host + "\r\n"
	if method == http.MethodPost {
		req += fmt.Sprintf("Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %d\r\n", len(body))
	}
	if _, err := io.WriteString(k.c, req+"\r\n"+body); err != nil {
		k.tb.Fatalf("%s %s: %v", method, target, err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		k.tb.Fatalf("%s %s: %v", method, target, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		k.tb.Fatalf("%s %s: body: %v", method, target, err)
	}
	if resp.Close {
		k.tb.Fatalf("%s %s: the server closes the connection (%s %q)", method, target, resp.Status, b)
	}
	return resp.StatusCode, string(b)
}

// TestKeepAlivePollingOnTheEventLoop: after a session's first long poll on
// a keep-alive connection, the engine serves the connection's later polls
// itself (engineio.KeepAlive): the chat works on it as on net/http, a
// request of another kind on it goes back to net/http, the connection
// still counts against -max-http-connections, and -http-idle-timeout still
// closes it. The metrics show the moves.
func TestKeepAlivePollingOnTheEventLoop(t *testing.T) {
	const idle = 1500 * time.Millisecond
	ts := startTestServer(t, func(c *chat.Config) {
		c.MetricsAddr = "127.0.0.1:0"
		c.HTTPIdleTimeout = idle
		c.MaxHTTPConnections = 2
	})
	murl := metricsURL(t, ts)
	gauge := func() float64 { return value(scrape(t, murl), "engineio_polling_keepalive_connections") }

	k := kaDial(t, ts)
	status, body := k.do(http.MethodGet, "/socket.io/?EIO=4&transport=polling", "")
	if status != http.StatusOK || !strings.HasPrefix(body, `0{"sid":"`) {
		t.Fatalf("handshake = %d %q", status, body)
	}
	sid := body[len(`0{"sid":"`):]
	sid = sid[:strings.IndexByte(sid, '"')]
	poll := "/socket.io/?EIO=4&transport=polling&sid=" + sid
	if status, body = k.do(http.MethodPost, poll, "40"); status != http.StatusOK || body != "ok" {
		t.Fatalf("CONNECT = %d %q", status, body)
	}
	if status, body = k.do(http.MethodGet, poll, ""); status != http.StatusOK || !strings.HasPrefix(body, `40{"sid":"`) {
		t.Fatalf("first poll = %d %q, want the CONNECT's answer", status, body)
	}
	sioEventually(t, 5*time.Second, "the engine to serve the connection", func() bool { return gauge() == 1 })

	// The chat on the engine's path: a message goes around.
	for i := range 20 {
		msg := fmt.Sprintf(`42["user-message","hello %d"]`, i)
		if status, body = k.do(http.MethodPost, poll, msg); status != http.StatusOK || body != "ok" {
			t.Fatalf("POST %d = %d %q", i, status, body)
		}
		want := fmt.Sprintf(`42["message","hello %d"]`, i)
		if status, body = k.do(http.MethodGet, poll, ""); status != http.StatusOK || body != want {
			t.Fatalf("poll %d = %d %q, want %q", i, status, body, want)
		}
	}
	if got := value(scrape(t, murl), "engineio_polling_keepalive_requests_total"); got < 40 {
		t.Errorf("requests served on the event loop = %v, want the 20 POSTs and 20 GETs at least", got)
	}
	// Anything else goes back to net/http, on the same connection.
	if status, body = k.do(http.MethodGet, "/healthz", ""); status != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz on the engine's connection = %d %q", status, body)
	}
	m := scrape(t, murl)
	if got := value(m, "engineio_polling_keepalive_moves_total", "to", "net_http"); got != 1 {
		t.Errorf("connections given back to net/http = %v, want 1", got)
	}
	if got := value(m, "engineio_polling_keepalive_connections"); got != 0 {
		t.Errorf("engineio_polling_keepalive_connections = %v after the hand-back, want 0", got)
	}
	if status, body = k.do(http.MethodPost, poll, `42["user-message","back"]`); status != http.StatusOK || body != "ok" {
		t.Fatalf("POST after the hand-back = %d %q", status, body)
	}
	lastRequest := time.Now() // before it: the idle time starts after its answer
	if status, body = k.do(http.MethodGet, poll, ""); status != http.StatusOK || body != `42["message","back"]` {
		t.Fatalf("poll after the hand-back = %d %q", status, body)
	}
	sioEventually(t, 5*time.Second, "the engine to take the connection again", func() bool { return gauge() == 1 })
	if got := value(scrape(t, murl), "engineio_polling_keepalive_moves_total", "to", "engine"); got != 2 {
		t.Errorf("connections taken over = %v, want 2", got)
	}

	// It counts against -max-http-connections (2): with another idle
	// keep-alive connection, there is no room for a third.
	other, err := keepaliveIdle(ts)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	third, err := net.DialTimeout("tcp", ts.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	_ = third.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(third, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: "+ts.Addr+"\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(third), nil); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Errorf("a third connection's handshake = 200 with 2 connections open and -max-http-connections 2")
		}
		resp.Body.Close()
	}

	// -http-idle-timeout closes it, not before.
	closed, err := keepaliveClosedByPeer(k.c, lastRequest.Add(idle+5*time.Second))
	switch {
	case err != nil:
		t.Fatal(err)
	case !closed:
		t.Fatalf("the engine's idle connection is still open %v after its last request (idle timeout %v)", idle+5*time.Second, idle)
	case time.Since(lastRequest) < idle:
		t.Errorf("the engine closed its idle connection %v after its last request, before the idle timeout %v", time.Since(lastRequest), idle)
	}
	sioEventually(t, 5*time.Second, "the gauge to drop", func() bool { return gauge() == 0 })
}
