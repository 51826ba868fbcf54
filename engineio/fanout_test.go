package engineio

import (
	"fmt"
	"io"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// BenchmarkFanOut sends one TextMessage to N WebSocket sessions with
// Session.Send, as a broadcast does, and reports what it costs per
// recipient (ns/recipient):
//
//   - inline: sessions over fake connections whose flushes run on the
//     benchmark's goroutine: Send (lock, queue, schedule a flush) and the
//     flush (frame headers, iovecs, a writev that discards), no system call.
//   - worker: the same, the flushes on a goroutine of their own (workerIO),
//     as the epoll engine's flush workers run them: the sender and the
//     flushes share the sessions, the budget's counter and the pools
//     across the machine's CPUs.
//   - tcp-goroutine, tcp-epoll: real loopback connections through the I/O
//     engines, until every client has read every message; the clients'
//     reads (a byte counter each) share the machine's CPUs.
func BenchmarkFanOut(b *testing.B) {
	msg := TextMessage([]byte(`42["chat message",{"from":"alice","text":"hello, everyone"}]`))
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("inline/sessions=%d", n), func(b *testing.B) {
			fio := &fakeIO{}
			sessions := fakeSessions(n, fio)
			b.ReportAllocs()
			for b.Loop() {
				for _, s := range sessions {
					if err := s.Send(msg); err != nil {
						b.Fatal(err)
					}
				}
				fio.runFlushes()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/recipient")
		})
	}
	b.Run("worker/sessions=1000", func(b *testing.B) {
		const n = 1000
		wio := newWorkerIO()
		defer wio.stop()
		sessions := fakeSessions(n, wio)
		b.ReportAllocs()
		for b.Loop() {
			for _, s := range sessions {
				if err := s.Send(msg); err != nil {
					b.Fatal(err)
				}
			}
			wio.wait()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/recipient")
	})
	for _, m := range ioModes {
		const n = 100
		b.Run(fmt.Sprintf("tcp-%s/sessions=%d", m.name, n), func(b *testing.B) {
			s := startServer(b, Options{IOMode: m.mode, PingInterval: time.Hour, Logger: discardLogger(),
				MaxQueuedPackets: 1 << 22, MaxQueuedBytes: 1 << 32}, false)
			frameLen := int64(2 + len(msg.b))
			sessions := make([]*Session, n)
			readers := make([]*countingReader, n)
			for i := range sessions {
				c := rawWSDial(b, s, "EIO=4&transport=websocket")
				if _, err := c.readFrame(); err != nil { // OPEN
					b.Fatal(err)
				}
				_ = c.conn.SetReadDeadline(time.Time{})
				readers[i] = &countingReader{r: c.br}
				sessions[i] = s.session(b).sess
			}
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for _, r := range readers {
				r.want = int64(b.N) * frameLen
				wg.Go(r.run)
			}
			for range b.N {
				for _, s := range sessions {
					if err := s.Send(msg); err != nil {
						b.Fatal(err)
					}
				}
			}
			wg.Wait()
			b.StopTimer()
			for _, r := range readers {
				if r.err != nil {
					b.Fatal(r.err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/recipient")
		})
	}
}

// workerIO is an ioEngine whose flushes run on a goroutine of their own,
// in the order they were scheduled, as the epoll engine's flush workers
// run them: the sender and the flush share the session across cores.
type workerIO struct {
	fakeIO
	ch     chan *wsConn // nil: a wait
	waited chan struct{}
}

func newWorkerIO() *workerIO {
	w := &workerIO{ch: make(chan *wsConn, 1<<16), waited: make(chan struct{})}
	go func() {
		for c := range w.ch {
			if c == nil {
				w.waited <- struct{}{}
				continue
			}
			c.flush()
		}
	}()
	return w
}

func (w *workerIO) scheduleFlush(c *wsConn) { w.ch <- c }
func (w *workerIO) waitWritable(c *wsConn)  { w.ch <- c }

// wait returns once the flushes scheduled so far have run.
func (w *workerIO) wait() { w.ch <- nil; <-w.waited }

func (w *workerIO) stop() { close(w.ch) }

// TestFanOutAllocs: a delivery to an idle WebSocket session allocates
// nothing. The flush's frame headers and iovecs come from the pooled flush
// buffer, whose capacity survives a complete write (consume used to slice
// it away from the front, so that every frame allocated its iovecs again:
// 3 allocations per delivery), and so does the session's queue array: the
// send that finds the connection idle takes it from the flush buffer it
// takes from the pool, and the fill gives it back (Send used to append to
// the nil queue fill had left: 1 allocation per delivery). What is left is
// the fake engine's list of pending flushes growing now and then.
func TestFanOutAllocs(t *testing.T) {
	msg := TextMessage([]byte(`42["chat message","hello"]`))
	fio := &fakeIO{}
	const n = 100
	sessions := fakeSessions(n, fio)
	deliver := func() {
		for _, s := range sessions {
			if err := s.Send(msg); err != nil {
				t.Fatal(err)
			}
		}
		fio.runFlushes()
	}
	deliver()
	want := 0.05
	if raceEnabled {
		want = 2 // sync.Pool drops a quarter of its flush buffers, and the queue arrays with them
	}
	if per := testing.AllocsPerRun(50, deliver) / n; per > want {
		t.Errorf("%.2f allocations per delivery, want at most %.2f", per, want)
	}
}

// countingReader reads until it has read want bytes.
type countingReader struct {
	r    io.Reader
	want int64
	err  error
}

func (c *countingReader) run() {
	buf := make([]byte, 64<<10)
	var got int64
	for got < c.want {
		n, err := c.r.Read(buf)
		got += int64(n)
		if err != nil {
			c.err = fmt.Errorf("after %d of %d bytes: %w", got, c.want, err)
			return
		}
	}
}

// fakeSessions returns n open sessions of a new server, each with a
// WebSocket on io whose writes are discarded.
func fakeSessions(n int, io ioEngine) []*Session {
	srv := NewServer(Options{Logger: discardLogger(), CloseTimeout: time.Hour}, nil)
	sessions := make([]*Session, n)
	for i := range sessions {
		s := newSession(srv, newID(), 4, httptest.NewRequest("GET", "/", nil))
		s.handler = nopHandler{}
		s.ws = &wsConn{sess: s, io: io, raw: &fakeRaw{discard: true}}
		sessions[i] = s
	}
	return sessions
}
