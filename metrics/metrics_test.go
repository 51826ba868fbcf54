package metrics_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/metrics"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// mtServer is a socketio server on httptest, with metrics when m is set.
func mtServer(tb testing.TB, m *metrics.Metrics) (*socketio.Server, string) {
	tb.Helper()
	srv, err := socketio.NewServer(socketio.Options{
		Logger: slog.New(slog.DiscardHandler),
		Engine: engineio.Options{MaxQueuedPackets: 1 << 24, MaxQueuedBytes: 1 << 34},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if m != nil {
		m.Instrument(srv)
	}
	ts := httptest.NewServer(srv)
	tb.Cleanup(func() { srv.Close(); ts.Close() })
	return srv, ts.URL
}

// mtClient connects a WebSocket client to "/" that reads and discards
// everything after the CONNECT answer, and returns its session.
func mtClient(tb testing.TB, srv *socketio.Server, url string) *engineio.Session {
	tb.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	_, open, err := conn.ReadMessage()
	if err != nil {
		tb.Fatal(err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		tb.Fatal(err)
	}
	if _, p, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(p), "40{") {
		tb.Fatalf("CONNECT answer %q %v", p, err)
	}
	go func() { _, _ = io.Copy(io.Discard, conn.NetConn()) }()
	sid := string(open[strings.Index(string(open), `"sid":"`)+7:][:20])
	sess := srv.Engine().Session(sid)
	if sess == nil {
		tb.Fatalf("no session %q", sid)
	}
	return sess
}

// Event names the server sends get their own label up to MaxSentEvents;
// those clients send only when listed in Events.
func TestEventLabelsAreBounded(t *testing.T) {
	m := metrics.New(metrics.Options{Events: []string{"message"}, MaxSentEvents: 2})
	srv, url := mtServer(t, m)
	sess := mtClient(t, srv, url)
	for i := range 5 {
		if err := srv.Emit(fmt.Sprintf("server-event-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = srv.Emit("message", "listed, so always its own")
	for deadline := time.Now().Add(5 * time.Second); ; {
		if p, _ := sess.Queued(); p == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	sent := m.Registry()
	n, err := testutil.GatherAndCount(sent, "socket_io_events_sent_total")
	if err != nil {
		t.Fatal(err)
	}
	// server-event-0, server-event-1, message and _other (with 3 events).
	if n != 4 {
		t.Errorf("%d socket_io_events_sent_total series, want 4", n)
	}
	want := `
# HELP socket_io_events_sent_total Total count of socket.io sent events
# TYPE socket_io_events_sent_total counter
socket_io_events_sent_total{event="_other",namespace="/"} 3
socket_io_events_sent_total{event="message",namespace="/"} 1
socket_io_events_sent_total{event="server-event-0",namespace="/"} 1
socket_io_events_sent_total{event="server-event-1",namespace="/"} 1
`
	if err := testutil.GatherAndCompare(sent, strings.NewReader(want), "socket_io_events_sent_total"); err != nil {
		t.Error(err)
	}
}

// A nil *Metrics does nothing, so that the application can keep one that
// is off.
func TestNilMetrics(t *testing.T) {
	var m *metrics.Metrics
	m.EventDropped("rate_limit")
	m.Refused(403, "origin_not_allowed")
	m.ObserveHistoryWrite(1, time.Millisecond, nil)
	if m.HistoryStore(nil) != nil {
		t.Error("HistoryStore on nil metrics wraps the store")
	}
}

// BenchmarkEmit broadcasts a chat message to 1000 WebSocket clients of the
// process (they read and discard), without and with metrics, and waits
// until every queue has been written: ns/recipient is one delivery's wall
// time, cpu-ns/recipient the process's CPU time per delivery (server and
// clients), the metrics' included (the counters once per broadcast, the
// fan-out latency of a sample of the broadcasts).
func BenchmarkEmit(b *testing.B) {
	msg := socketio.Arg{JSON: []byte(`{"from":"alice","text":"hello, everyone","at":1712345678901}`)}
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", on), func(b *testing.B) {
			var m *metrics.Metrics
			if on {
				m = metrics.New(metrics.Options{Events: []string{"message"}})
			}
			srv, url := mtServer(b, m)
			sessions := make([]*engineio.Session, 1000)
			for i := range sessions {
				sessions[i] = mtClient(b, srv, url)
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				if err := srv.Emit("message", msg); err != nil {
					b.Fatal(err)
				}
			}
			for _, sess := range sessions {
				for {
					if p, _ := sess.Queued(); p == 0 {
						break
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(sessions)), "ns/recipient")
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*len(sessions)), "cpu-ns/recipient")
		})
	}
}

// cpuTime is the CPU time the process used so far (user and system): the
// server's and its clients', less sensitive than wall time to the other
// processes of a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
