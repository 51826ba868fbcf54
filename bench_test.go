//go:build linux

package main

import (
	"context"
	"github.com/chatio/socketio-chat/chat"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/bench/eio"
)

// Benchmarks of the hot paths, next to the code they measure. The
// side-by-side load benchmark against Node.js is bench/run.sh
// (docs/BENCHMARKS.md); these run in-process, so a -cpuprofile of them shows
// the server's broadcast path:
//
//	go test -run '^$' -bench Broadcast -benchtime 2000x -cpuprofile cpu.prof .
//
// The test command runs them once (-benchtime 1x) so they keep working.

// benchStart starts the real server for a benchmark: warnings only (no
// per-connection log lines) and no per-client event rate limit, so one
// sender can emit as fast as the benchmark asks.
func benchStart(tb testing.TB) *testServer {
	tb.Helper()
	return startTestServer(tb, func(c *chat.Config) {
		c.LogLevel = slog.LevelWarn
		c.EventRate = 1e9
		c.EventBurst = 1 << 30
	})
}

// benchFleet is n WebSocket clients read by one epoll poller (the load
// generator's client, bench/eio), counting the chat messages they receive.
type benchFleet struct {
	poller   *eio.Poller
	clients  []*eio.RawConn
	received atomic.Int64
	// want and reached signal when received hits a target.
	mu      sync.Mutex
	want    int64
	reached chan struct{}
}

// benchConnect opens n clients to ts (dialing 32 at a time) and closes them
// when the benchmark ends.
func benchConnect(tb testing.TB, ts *testServer, n int) *benchFleet {
	tb.Helper()
	p, err := eio.NewPoller(1)
	if err != nil {
		tb.Fatal(err)
	}
	f := &benchFleet{poller: p, clients: make([]*eio.RawConn, n)}
	tb.Cleanup(func() {
		for _, c := range f.clients {
			if c != nil {
				_ = c.Close()
			}
		}
		p.Close()
	})
	endpoint := ts.URL + "/socket.io/"
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := eio.DialRaw(ctx, nil, endpoint)
			if err != nil {
				errs <- err
				return
			}
			f.clients[i] = c
			if err := p.Add(c, f.onEvent, func(error) {}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("connect: %v", err)
	}
	return f
}

func (f *benchFleet) onEvent(pkt []byte) {
	if _, ok := eio.MessageText(pkt); !ok {
		return
	}
	n := f.received.Add(1)
	f.mu.Lock()
	if f.reached != nil && n >= f.want {
		close(f.reached)
		f.reached = nil
	}
	f.mu.Unlock()
}

// await blocks until the fleet has received total messages in all.
func (f *benchFleet) await(tb testing.TB, total int64) {
	tb.Helper()
	f.mu.Lock()
	if f.received.Load() >= total {
		f.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	f.want, f.reached = total, ch
	f.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		tb.Fatalf("received %d of %d messages within 30s", f.received.Load(), total)
	}
}

// benchMessage is the tutorial page's user-message packet carrying text.
func benchMessage(text string) []byte { return eio.AppendUserMessage(nil, []byte(text)) }

// BenchmarkBroadcast measures one chat message reaching every client: a
// client emits user-message, the server's io.Emit delivers it to all n
// clients (the sender included); one op is the whole fan-out, one at a time.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run("clients="+strconv.Itoa(n), func(b *testing.B) {
			ts := benchStart(b)
			f := benchConnect(b, ts, n)
			msg := benchMessage("hello from the benchmark")
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := f.clients[0].Emit(msg); err != nil {
					b.Fatal(err)
				}
				f.await(b, int64(i+1)*int64(n))
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkBroadcastPipelined keeps up to 64 messages in flight from 10
// senders to 1000 clients: the server's sustained delivery rate rather than
// the latency of one fan-out. One op is one message delivered to everyone.
func BenchmarkBroadcastPipelined(b *testing.B) {
	const n, senders, window = 1000, 10, 64
	ts := benchStart(b)
	f := benchConnect(b, ts, n)
	msg := benchMessage("hello from the benchmark")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i >= window {
			f.await(b, int64(i-window+1)*n)
		}
		if err := f.clients[i%senders].Emit(msg); err != nil {
			b.Fatal(err)
		}
	}
	f.await(b, int64(b.N)*n)
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(b.Elapsed().Seconds()*1e9/(float64(b.N)*n), "ns/delivery")
}

// BenchmarkIdleHeap measures the live heap an idle WebSocket client costs,
// the server's side and the load generator's client (bench/eio) together:
// 1 000 clients connect to "/" and stay, then the heap is measured after a
// GC. The server's side alone is in a heap profile of bench/run.sh
// -scenarios idle -profile DIR (docs/ARCHITECTURE.md, "Per-connection
// budget"); this is the quick check of a change to it:
//
//	go test -run '^$' -bench IdleHeap -benchtime 3x .
func BenchmarkIdleHeap(b *testing.B) {
	const n = 1000
	ts := benchStart(b)
	var perConn, objects float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f := benchConnect(b, ts, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(f)
		perConn += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		objects += float64(int64(after.HeapObjects)-int64(before.HeapObjects)) / n
	}
	b.ReportMetric(perConn/float64(b.N), "heap-B/conn")
	b.ReportMetric(objects/float64(b.N), "objects/conn")
}

// BenchmarkConnect is one client's connection setup over WebSocket: TCP
// connect, HTTP upgrade, Engine.IO OPEN, Socket.IO CONNECT and its answer,
// then the client goes away.
func BenchmarkConnect(b *testing.B) {
	ts := benchStart(b)
	endpoint := ts.URL + "/socket.io/"
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := eio.DialRaw(ctx, nil, endpoint)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connects/s")
}

// TestBenchClientsAgainstServer checks the load generator's protocol code
// (bench/eio) against the real server: a WebSocket client read by the epoll
// poller, one read by its own goroutine and a polling-only client all
// receive a message one of them sent, and the server's pings are answered.
func TestBenchClientsAgainstServer(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) {
		c.PingInterval = 100 * time.Millisecond
		c.PingTimeout = time.Second
	})
	endpoint := ts.URL + "/socket.io/"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	type inbox struct {
		mu   sync.Mutex
		msgs []string
	}
	add := func(in *inbox) func([]byte) {
		return func(pkt []byte) {
			if text, ok := eio.MessageText(pkt); ok {
				in.mu.Lock()
				in.msgs = append(in.msgs, string(text))
				in.mu.Unlock()
			}
		}
	}
	var raw, ws, poll inbox

	p, err := eio.NewPoller(1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rc, err := eio.DialRaw(ctx, nil, endpoint)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	defer rc.Close()
	if err := p.Add(rc, add(&raw), func(error) {}); err != nil {
		t.Fatal(err)
	}

	wc, err := eio.DialWS(ctx, eio.NewWSDialer(nil), endpoint)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	defer wc.Close()
	go func() { _ = wc.ReadLoop(add(&ws)) }()

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	pc, err := eio.DialPolling(ctx, hc, endpoint)
	if err != nil {
		t.Fatalf("polling dial: %v", err)
	}
	pollDone := make(chan error, 1)
	go func() { pollDone <- pc.ReadLoop(ctx, add(&poll)) }()
	defer func() {
		_ = pc.Close(context.Background())
		cancel()
		<-pollDone
	}()

	// Each client answers two pings (the server would close a session whose
	// pong went missing, and it would miss the messages below).
	for name, pings := range map[string]*atomic.Int64{"epoll websocket": &rc.Pings, "goroutine websocket": &wc.Pings, "polling": &pc.Pings} {
		deadline := time.Now().Add(10 * time.Second)
		for pings.Load() < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%s client answered %d pings in 10s", name, pings.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i, send := range []func([]byte) error{rc.Emit, wc.Emit, func(b []byte) error { return pc.Emit(ctx, b) }} {
		if err := send(benchMessage("m" + strconv.Itoa(i))); err != nil {
			t.Fatalf("emit %d: %v", i, err)
		}
	}
	want := "m0 m1 m2"
	deadline := time.Now().Add(10 * time.Second)
	for _, in := range []struct {
		name string
		box  *inbox
	}{{"epoll websocket", &raw}, {"goroutine websocket", &ws}, {"polling", &poll}} {
		for {
			in.box.mu.Lock()
			got := strings.Join(in.box.msgs, " ")
			in.box.mu.Unlock()
			// Per-sender order is kept; across senders the order may differ.
			if len(got) == len(want) {
				for _, m := range strings.Fields(want) {
					if !strings.Contains(got, m) {
						t.Fatalf("%s client got %q, want %q in any order", in.name, got, want)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s client got %q, want %q", in.name, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
