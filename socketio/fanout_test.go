package socketio

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/gorilla/websocket"
)

// BenchmarkNamespaceEmit broadcasts a chat message with Namespace.Emit to
// N local sockets over WebSocket (clients that read and discard) and
// waits until every session's queue has been written; ns/recipient is the
// cost of one delivery, encoding and hand-off to the kernel included (the
// clients' reads share the machine's CPUs). With recovery, every
// broadcast also gets its offset and is logged.
func BenchmarkNamespaceEmit(b *testing.B) {
	msg := Arg{JSON: []byte(`{"from":"alice","text":"hello, everyone","at":1712345678901}`)}
	for _, recovery := range []bool{false, true} {
		for _, n := range []int{100, 1000} {
			b.Run(fmt.Sprintf("recovery=%v/sockets=%d", recovery, n), func(b *testing.B) {
				opts := Options{
					Logger: slog.New(slog.DiscardHandler),
					Engine: engineio.Options{MaxQueuedPackets: 1 << 24, MaxQueuedBytes: 1 << 34},
				}
				if recovery {
					opts.Recovery = &RecoveryOptions{MaxDisconnectionDuration: time.Minute}
				}
				s := startIO(b, opts, nil)
				sessions := make([]*engineio.Session, n)
				for i := range sessions {
					sessions[i] = drainingClient(b, s)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if err := s.Emit("chat message", msg); err != nil {
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
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/recipient")
			})
		}
	}
}

// drainingClient connects a WebSocket client to "/" that reads and
// discards everything after the CONNECT answer, and returns its session.
func drainingClient(tb testing.TB, s *testIO) *engineio.Session {
	tb.Helper()
	return drainingClientOf(tb, s, "/")
}

// drainingClientOf is drainingClient in namespace nsp.
func drainingClientOf(tb testing.TB, s *testIO, nsp string) *engineio.Session {
	tb.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	_, open, err := conn.ReadMessage()
	if err != nil {
		tb.Fatal(err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40"+nspPrefix(nsp))); err != nil {
		tb.Fatal(err)
	}
	if _, p, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(p), "40"+nspPrefix(nsp)+"{") {
		tb.Fatalf("CONNECT answer %q %v", p, err)
	}
	go func() { _, _ = io.Copy(io.Discard, conn.NetConn()) }()
	var sid string
	if i := strings.Index(string(open), `"sid":"`); i >= 0 {
		sid = string(open[i+7 : i+27])
	}
	sess := s.Engine().Session(sid)
	if sess == nil {
		tb.Fatalf("no session %q", sid)
	}
	return sess
}
