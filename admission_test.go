package main

// Admission on the public port (docs/OPERATING.md, "Limits"): one address
// cannot hold every connection slot, health and readiness are answered when
// the limits are reached, and the limits fit the open-file limit.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
	"github.com/gorilla/websocket"
)

// admDial opens a TCP connection to addr from the local address from (an
// address of 127.0.0.0/8: every one of them is this host's).
func admDial(from, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return d.Dial("tcp", addr)
}

// admSlowHeaders opens n connections from one address that each send part
// of a request's headers and stall, as a slowloris does. It returns those
// the server kept open and how many it closed at once.
func admSlowHeaders(t *testing.T, from, addr string, n int) (open []net.Conn, closed int) {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		c, err := admDial(from, addr)
		if err != nil {
			t.Fatalf("slow connection %d from %s: %v", i, from, err)
		}
		conns = append(conns, c)
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+addr+"\r\nX-Slow: ")
	}
	// A connection refused is closed by the server at once: its read ends
	// with EOF or a reset. One still open is waited for until the deadline.
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Second)
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(deadline)
			var b [1]byte
			_, err := c.Read(b[:])
			var ne net.Error
			mu.Lock()
			defer mu.Unlock()
			if errors.As(err, &ne) && ne.Timeout() {
				_ = c.SetReadDeadline(time.Time{})
				open = append(open, c)
			} else {
				closed++
			}
		})
	}
	wg.Wait()
	return open, closed
}

// admGet makes one request on a new connection from 127.0.0.1 and returns
// its status and body; status 0 when the server closed the connection or
// did not answer within 3 s.
func admGet(addr, path string) (int, string) {
	c, err := admDial("127.0.0.1", addr)
	if err != nil {
		return 0, err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n"); err != nil {
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

const admHandshake = "/socket.io/?EIO=4&transport=polling"

// TestAdmissionOneAddressCannotFillTheServer: 350 slow-header connections
// from one address, with room for 300 connections, used to take every
// slot: new clients' handshakes and /healthz failed. With at most 50
// connections that serve no session per address, the server closes the
// other 300 at once, and clients from other addresses are served.
func TestAdmissionOneAddressCannotFillTheServer(t *testing.T) {
	const limit, perIP, attack = 300, 50, 350
	ts := startTestServer(t, func(c *chat.Config) {
		c.MaxHTTPConnections = limit
		c.MaxPendingPerIP = perIP
		c.LogLevel = slog.LevelWarn
	})
	open, closed := admSlowHeaders(t, "127.0.0.2", ts.Addr, attack)
	t.Logf("slow-header connections from 127.0.0.2: %d kept open, %d closed at once", len(open), closed)
	if len(open) > perIP {
		t.Errorf("%d slow-header connections from one address kept open, want at most -max-pending-per-ip %d", len(open), perIP)
	}
	for i := range 3 {
		if status, body := admGet(ts.Addr, admHandshake); status != http.StatusOK || !strings.HasPrefix(body, "0{") {
			t.Errorf("handshake %d from another address during the attack = %d %.80q, want 200 and an OPEN packet", i, status, body)
		}
	}
	failed := 0
	for range 50 {
		if status, body := admGet(ts.Addr, "/healthz"); status != http.StatusOK || body != "ok\n" {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("/healthz failed %d of 50 polls during the attack", failed)
	}
	if !strings.Contains(ts.Log.String(), "too many connections from this address (-max-pending-per-ip)") {
		t.Error("no warning logged for the refused connections")
	}
}

// TestAdmissionHealthAtTheLimit: when every connection slot is taken (by
// slow connections from several addresses), /healthz is still answered
// 200, /readyz 503 "at capacity" (a load balancer sends new clients
// elsewhere), and a handshake gets 503, not a closed connection. /readyz
// also answers 503 while the sessions are at -max-connections, and is
// ready again once there is room.
func TestAdmissionHealthAtTheLimit(t *testing.T) {
	const limit, perIP = 40, 10
	ts := startTestServer(t, func(c *chat.Config) {
		c.MaxHTTPConnections = limit
		c.MaxPendingPerIP = perIP
		c.MaxConnections = 2
		c.LogLevel = slog.LevelWarn
	})
	var held []net.Conn
	for i := range limit / perIP {
		open, _ := admSlowHeaders(t, fmt.Sprintf("127.0.0.%d", 10+i), ts.Addr, perIP)
		held = append(held, open...)
	}
	if len(held) != limit {
		t.Fatalf("%d slow connections held, want the limit %d", len(held), limit)
	}
	if status, body := admGet(ts.Addr, "/healthz"); status != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz with every slot taken = %d %q, want 200 ok", status, body)
	}
	if status, body := admGet(ts.Addr, "/readyz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "at capacity") {
		t.Errorf("/readyz with every slot taken = %d %q, want 503 at capacity", status, body)
	}
	if status, body := admGet(ts.Addr, admHandshake); status != http.StatusServiceUnavailable {
		t.Errorf("handshake with every slot taken = %d %.80q, want 503", status, body)
	}
	for _, c := range held {
		c.Close()
	}
	sioEventually(t, 5*time.Second, "/readyz ready once the slow connections are gone", func() bool {
		status, _ := admGet(ts.Addr, "/readyz")
		return status == http.StatusOK
	})

	// Sessions at -max-connections: not ready, until one leaves.
	var ws []*websocket.Conn
	for range 2 {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+ts.Addr+"/socket.io/?EIO=4&transport=websocket", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ws = append(ws, c)
	}
	if status, body := admGet(ts.Addr, "/readyz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "at capacity") {
		t.Errorf("/readyz with the sessions at -max-connections = %d %q, want 503 at capacity", status, body)
	}
	ws[0].Close()
	sioEventually(t, 5*time.Second, "/readyz ready once a session left", func() bool {
		status, _ := admGet(ts.Addr, "/readyz")
		return status == http.StatusOK
	})
}

// TestAdmissionSessionsDoNotCount: long polls of sessions do not count
// against the per-address bound: 20 polling clients from one address (a
// NAT, a proxy) with a bound of 8 all get their messages. (Idle keep-alive
// connections count: the clients reuse theirs, as browsers do.)
func TestAdmissionSessionsDoNotCount(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) {
		c.MaxPendingPerIP = 8
	})
	var clients []*shutPoller
	for i := range 20 {
		p, err := shutDialPolling(ts.URL)
		if err != nil {
			t.Fatalf("polling client %d: %v", i, err)
		}
		clients = append(clients, p)
	}
	// A message reaches every one of them through its long poll: 20 GETs
	// pending at once, from the one address.
	sender := limDial(t, ts, true)
	if err := sender.emit("to the pollers"); err != nil {
		t.Fatal(err)
	}
	sioEventually(t, 10*time.Second, "the message on every long poll", func() bool {
		for _, p := range clients {
			if p.msgs.Load() == 0 {
				return false
			}
		}
		return true
	})
}

// TestAdmissionFitsTheOpenFileLimit: a server whose open-file limit is 400
// lowers -max-connections (100 000 by default) and says so; clients past
// the lowered limit get 503 at once instead of a connection that hangs
// because the process has no descriptor left (accept fails with EMFILE).
// The server runs in a child process (this test binary) with the limit
// lowered.
func TestAdmissionFitsTheOpenFileLimit(t *testing.T) {
	if os.Getenv("ADMISSION_NOFILE_CHILD") == "1" {
		admNofileChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAdmissionFitsTheOpenFileLimit$", "-test.v=false")
	cmd.Env = append(os.Environ(), "ADMISSION_NOFILE_CHILD=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("child's log:\n%s", stderr.String())
		}
	})
	lines := bufio.NewScanner(stdout)
	addr := ""
	for lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatalf("the child did not start: %s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	const clients = 450 // more than the child's open-file limit
	var conns []*websocket.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	ok, refused, other := 0, 0, 0
	var firstOther string
	d := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	for range clients {
		c, resp, err := d.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
		switch {
		case err == nil:
			conns = append(conns, c)
			// A session is one that opens: its OPEN packet comes.
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, open, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
				other++
				if firstOther == "" {
					firstOther = fmt.Sprintf("no OPEN packet after the upgrade: %q %v", open, err)
				}
				continue
			}
			ok++
		case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
			refused++
		default:
			other++
			if firstOther == "" {
				firstOther = err.Error()
			}
		}
	}
	t.Logf("%d WebSocket clients: %d sessions, %d refused with 503, %d failed otherwise (%s)", clients, ok, refused, other, firstOther)
	if other > 0 {
		t.Errorf("%d clients failed without a 503 (first: %s): the process ran out of descriptors", other, firstOther)
	}
	if ok == 0 || refused == 0 {
		t.Errorf("%d sessions and %d refusals, want the sessions up to the lowered limit and 503s past it", ok, refused)
	}
	if !strings.Contains(stderr.String(), "lowering the connection limits to fit the open-file limit") {
		t.Errorf("no warning that the limits were lowered in the child's log")
	}
	// The process still answers its probes.
	if status, body := admGet(addr, "/healthz"); status != http.StatusOK {
		t.Errorf("/healthz past the limit = %d %q, want 200", status, body)
	}
}

// admNofileChild is the server of TestAdmissionFitsTheOpenFileLimit: it
// lowers its open-file limit to 400 (soft and hard, so that it cannot be
// raised back), serves with the default limits on 127.0.0.1:0, prints its
// address, and stops on SIGTERM.
func admNofileChild() {
	lim := syscall.Rlimit{Cur: 400, Max: 400}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg := chat.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.ShutdownGrace = time.Second
	cfg.LogLevel = slog.LevelWarn
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ready := make(chan net.Addr, 1)
	go func() {
		fmt.Printf("ADDR %s\n", <-ready)
	}()
	if err := serve(ctx, cfg, log, ready); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestFitFileLimit: the connection limits are lowered only when they do
// not fit the open-file limit, with a warning, and start-up fails when not
// one session fits.
func TestFitFileLimit(t *testing.T) {
	for _, tc := range []struct {
		nofile                 uint64
		sessions, httpConns    int
		wantSessions, wantHTTP int
		wantErr, wantWarn      bool
	}{
		{nofile: 1 << 20, sessions: 100_000, httpConns: 10_000, wantSessions: 100_000, wantHTTP: 10_000},
		// This machine: 20 000 files, 1 000 kept, 32 for the health reserve.
		{nofile: 20_000, sessions: 100_000, httpConns: 10_000, wantSessions: 17_792, wantHTTP: 1_976, wantWarn: true},
		{nofile: 20_000, sessions: 5_000, httpConns: 10_000, wantSessions: 5_000, wantHTTP: 10_000}, // they fit
		{nofile: 20_000, sessions: 1_000, httpConns: 1_000, wantSessions: 1_000, wantHTTP: 1_000},
		{nofile: 400, sessions: 100_000, httpConns: 10_000, wantSessions: 274, wantHTTP: 30, wantWarn: true},
		{nofile: 90, sessions: 100, httpConns: 100, wantErr: true},
		{nofile: 0, sessions: 100_000, httpConns: 10_000, wantSessions: 100_000, wantHTTP: 10_000}, // unknown
	} {
		cfg := chat.DefaultConfig()
		cfg.MaxConnections, cfg.MaxHTTPConnections = tc.sessions, tc.httpConns
		var buf syncBuffer
		err := fitFileLimit(&cfg, tc.nofile, slog.New(slog.NewTextHandler(&buf, nil)))
		name := fmt.Sprintf("nofile %d, sessions %d, http %d", tc.nofile, tc.sessions, tc.httpConns)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: no error, want one", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if cfg.MaxConnections != tc.wantSessions || cfg.MaxHTTPConnections != tc.wantHTTP {
			t.Errorf("%s: limits %d sessions, %d HTTP connections, want %d and %d", name, cfg.MaxConnections, cfg.MaxHTTPConnections, tc.wantSessions, tc.wantHTTP)
		}
		if warned := strings.Contains(buf.String(), "level=WARN"); warned != tc.wantWarn {
			t.Errorf("%s: warned %v, want %v: %q", name, warned, tc.wantWarn, buf.String())
		}
	}
}

// TestAddrKey: connections are counted per IP, IPv6 per /64.
func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:1234":             "127.0.0.1",
		"[::ffff:10.0.0.1]:80":       "10.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := addrKey(a).String(); got != want {
			t.Errorf("addrKey(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestMaxPendingPerIPFlag: the flag, its environment variable, its default
// and its validation.
func TestMaxPendingPerIPFlag(t *testing.T) {
	if got := chat.DefaultConfig().MaxPendingPerIP; got != 512 {
		t.Errorf("default -max-pending-per-ip = %d, want 512", got)
	}
	cfg, err := chat.ParseConfig([]string{"-max-pending-per-ip", "0"}, confEnv(nil), io.Discard)
	if err != nil || cfg.MaxPendingPerIP != 0 {
		t.Errorf("-max-pending-per-ip 0: %d, %v; want 0 (no limit)", cfg.MaxPendingPerIP, err)
	}
	cfg, err = chat.ParseConfig(nil, confEnv(map[string]string{"MAX_PENDING_PER_IP": "64"}), io.Discard)
	if err != nil || cfg.MaxPendingPerIP != 64 {
		t.Errorf("MAX_PENDING_PER_IP=64: %d, %v; want 64", cfg.MaxPendingPerIP, err)
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-max-pending-per-ip", "-1"}, confEnv(nil), io.Discard, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "-max-pending-per-ip -1: must not be negative") {
		t.Errorf("-max-pending-per-ip -1: exit %d, %q; want exit 2 and why", code, stderr.String())
	}
}
