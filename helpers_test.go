package main

import (
	"context"
	"fmt"
	"github.com/chatio/socketio-chat/chat"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/testlog"
)

// testServer is a chat server started by startTestServer on 127.0.0.1:0.
type testServer struct {
	URL  string // http://127.0.0.1:PORT
	Addr string // 127.0.0.1:PORT
	Log  *syncBuffer
	stop context.CancelFunc
	done chan error
}

// startTestServer runs the real serve loop (the same handler main serves) with
// test-friendly defaults, changed by mutate. Logs go to t.Logf and to Log.
// The server is shut down when the test ends.
func startTestServer(tb testing.TB, mutate func(*chat.Config)) *testServer {
	tb.Helper()
	cfg := chat.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.ShutdownGrace = 5 * time.Second
	cfg.LogLevel = slog.LevelDebug
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatalf("test config: %v", err)
	}
	buf := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(buf, testlog.Writer(tb)), &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	ts := &testServer{Log: buf, stop: cancel, done: make(chan error, 1)}
	go func() { ts.done <- serve(ctx, cfg, log, ready) }()
	select {
	case addr := <-ready:
		ts.Addr = addr.String()
		ts.URL = "http://" + ts.Addr
	case err := <-ts.done:
		tb.Fatalf("server did not start: %v", err)
	case <-time.After(10 * time.Second):
		tb.Fatal("server did not start within 10s")
	}
	tb.Cleanup(func() { ts.Stop(tb) })
	return ts
}

// Stop shuts the server down as SIGTERM would and waits for serve to return.
// A second call does nothing.
func (ts *testServer) Stop(tb testing.TB) {
	tb.Helper()
	ts.stop()
	select {
	case err, ok := <-ts.done:
		if ok && err != nil {
			tb.Errorf("serve: %v", err)
		}
		if ok { // a second Stop finds done closed: nothing to do
			close(ts.done)
		}
	case <-time.After(30 * time.Second):
		tb.Error("server did not stop within 30s")
	}
}

func TestStartTestServerServesHealthz(t *testing.T) {
	ts := startTestServer(t, nil)
	resp, err := httpGet(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	if resp != "ok\n" {
		t.Fatalf("healthz body = %q, want %q", resp, "ok\n")
	}
}

// syncBuffer is a log a test reads while the server writes it.
type syncBuffer = testlog.Buffer

// httpGet returns the body of a GET that answered 200.
func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// confEnv is a getenv over a fixed map.
func confEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// needs reports a missing prerequisite of a test (Redis, Node, nginx…):
// the test is skipped, except under CI=true, where it fails, so that a CI
// machine that lacks something cannot pass by running less.
func needs(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("missing prerequisite: "+format, args...)
	}
	tb.Skipf("missing prerequisite (CI=true makes this a failure): "+format, args...)
}
