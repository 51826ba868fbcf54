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
