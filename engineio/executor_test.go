package engineio

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// goid is the id of the calling goroutine, from its stack header
// ("goroutine 42 [running]:").
func goid() uint64 {
	var b [64]byte
	n := runtime.Stack(b[:], false)
	f := strings.Fields(string(b[:n]))
	id, _ := strconv.ParseUint(f[1], 10, 64)
	return id
}

// readerWaits reports whether a reader waits for room in the event queue.
func (e *executor) readerWaits() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.room != nil
}

// heapAlloc is the live heap after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// seqHandler checks that its messages ("<n> padding…") arrive in order,
// and counts them.
type seqHandler struct {
	mu     sync.Mutex
	n      int
	bad    string
	closed chan struct{}
	gids   []uint64 // the goroutine of each call
}

func (h *seqHandler) OnMessage(data []byte, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gids = append(h.gids, goid())
	num, _, _ := bytes.Cut(data, []byte(" "))
	if got, err := strconv.Atoi(string(num)); (err != nil || got != h.n) && h.bad == "" {
		h.bad = fmt.Sprintf("message %d is %.20q", h.n, data)
	}
	h.n++
}
func (h *seqHandler) OnQueueOverflow() {}
func (h *seqHandler) OnClose(string, error) {
	h.mu.Lock()
	h.gids = append(h.gids, goid())
	h.mu.Unlock()
	close(h.closed)
}

func (h *seqHandler) count() (int, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n, h.bad
}

// startSeqServer serves sessions whose handler is a seqHandler, handed to
// the test on handlers.
func startSeqServer(tb testing.TB, opts Options) (*testServer, chan *Session, chan *seqHandler) {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(tb)
	}
	if opts.CloseTimeout == 0 {
		opts.CloseTimeout = 300 * time.Millisecond
	}
	sessions, handlers := make(chan *Session, 16), make(chan *seqHandler, 16)
	s := &testServer{}
	s.Server = NewServer(opts, func(sess *Session) SessionHandler {
		h := &seqHandler{closed: make(chan struct{})}
		sessions <- sess
		handlers <- h
		return h
	})
	s.ts = httptest.NewServer(s.Server)
	tb.Cleanup(func() {
		s.Server.Close()
		s.ts.Close()
	})
	return s, sessions, handlers
}

// TestFloodWhileHandlerBusy: a client that floods its WebSocket while its
// session's handler is busy (here with a Do from elsewhere) is not read
// into memory: the event queue stops at its bounds (maxPendingMessages,
// maxPendingBytes), the reader stops reading, the client's writes block
// (TCP pushes back), and the heap does not grow with what it sends. Once
// the handler is free, the messages are handled in order.
func TestFloodWhileHandlerBusy(t *testing.T) {
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s, sessions, handlers := startSeqServer(t, Options{IOMode: m.mode})
			c := rawWSDial(t, s, "EIO=4&transport=websocket")
			sess, h := <-sessions, <-handlers
			if f, err := c.readFrame(); err != nil || f.op != opText || !strings.HasPrefix(string(f.payload), "0{") {
				t.Fatalf("OPEN: %v %v", f, err)
			}

			release, busy := make(chan struct{}), make(chan struct{})
			go sess.Do(func() { close(busy); <-release })
			<-busy
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			defer free()

			before := heapAlloc()
			// 1 KiB messages, 64 per write; the client gives up on a
			// write that makes no progress for a second.
			const msgSize, perWrite, total = 1024, 64, 64 << 20
			var written atomic.Int64
			writeErr := make(chan error, 1)
			go func() {
				seq := 0
				for written.Load() < total {
					var chunk []byte
					for range perWrite {
						p := fmt.Sprintf("4%d ", seq)
						p += strings.Repeat("x", msgSize-len(p))
						chunk = append(chunk, masked(opText, p)...)
						seq++
					}
					_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
					n, err := c.conn.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						writeErr <- err
						return
					}
				}
				writeErr <- nil
			}()
			var err error
			select {
			case err = <-writeErr:
			case <-time.After(2 * waitTimeout):
				t.Fatal("the client's writes neither completed nor blocked")
			}
			var ne net.Error
			if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("the client wrote %d MiB without being held back (err %v): the server read it all while its handler was busy",
					written.Load()>>20, err)
			}
			waitFor(t, "the reader waiting for room", sess.exec.readerWaits)
			msgs, queued := sess.exec.pending()
			after := heapAlloc()
			t.Logf("client wrote %.1f MiB before its writes blocked; %d messages (%d KiB) queued; heap %+d KiB",
				float64(written.Load())/(1<<20), msgs, queued>>10, (int64(after)-int64(before))>>10)
			if msgs > maxPendingMessages || queued > maxPendingBytes {
				t.Errorf("%d messages, %d bytes queued: over the bounds %d, %d", msgs, queued, maxPendingMessages, maxPendingBytes)
			}
			if grew := int64(after) - int64(before); grew > 8<<20 {
				t.Errorf("heap grew by %d MiB while the client flooded", grew>>20)
			}
			if n, _ := h.count(); n != 0 {
				t.Errorf("%d messages handled while the handler was busy", n)
			}

			free()
			// Everything that got in before the writes blocked is handled,
			// in order (the last message may be cut in the middle).
			want := int(written.Load()/int64(len(masked(opText, strings.Repeat("x", msgSize))))) - 1
			waitFor(t, "the messages handled", func() bool { n, _ := h.count(); return n >= want })
			if _, bad := h.count(); bad != "" {
				t.Error(bad)
			}
		})
	}
}

// TestPollingPostWaitsWhileHandlerBusy: a polling POST whose packets find
// the handler busy and the event queue full waits (its answer is held
// back, so the client sends nothing more) instead of queueing them all;
// it is answered once the handler took them, and they run in order.
func TestPollingPostWaitsWhileHandlerBusy(t *testing.T) {
	s := startServer(t, Options{}, false)
	c, rec := pollOpen(t, s, 4)
	release, busy := make(chan struct{}), make(chan struct{})
	go rec.sess.Do(func() { close(busy); <-release })
	<-busy
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()

	const n = 1000
	var body strings.Builder
	for i := range n {
		if i > 0 {
			body.WriteByte('\x1e')
		}
		fmt.Fprintf(&body, "4m%d", i)
	}
	answered := make(chan response, 1)
	go func() { answered <- c.post(body.String()) }()
	deadline := time.After(waitTimeout)
	for !rec.sess.exec.readerWaits() {
		select {
		case r := <-answered:
			t.Fatalf("POST answered %d %q while the handler was busy: all %d messages were queued", r.status, r.body, n)
		case <-deadline:
			t.Fatal("the POST neither waited nor was answered")
		case <-time.After(2 * time.Millisecond):
		}
	}
	if msgs, _ := rec.sess.exec.pending(); msgs > maxPendingMessages {
		t.Errorf("%d messages queued, over the bound %d", msgs, maxPendingMessages)
	}
	free()
	if r := <-answered; r.status != http.StatusOK || r.body != "ok" {
		t.Fatalf("POST: %d %q", r.status, r.body)
	}
	for i := range n {
		if got := rec.message(t).data; got != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d = %q", i, got)
		}
	}
}

// TestForeignCallerRunsNoHandler: Do and Close called from a goroutine
// that is not the session's (another session's handler, a timer, an
// adapter, Server.Close) never run the session's handler calls on that
// goroutine, even when the session is idle; the calls keep their order,
// and OnClose comes last.
func TestForeignCallerRunsNoHandler(t *testing.T) {
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s, sessions, handlers := startSeqServer(t, Options{IOMode: m.mode})
			c := rawWSDial(t, s, "EIO=4&transport=websocket")
			sess, h := <-sessions, <-handlers
			c.writeRaw(masked(opText, "40 a"))
			waitFor(t, "the first message", func() bool { n, _ := h.count(); return n == 1 })

			me := goid()
			var order []string
			var mu sync.Mutex
			ran := make(chan uint64, 3)
			for i := range 3 {
				sess.Do(func() {
					mu.Lock()
					order = append(order, strconv.Itoa(i))
					mu.Unlock()
					ran <- goid()
				})
			}
			for range 3 {
				var g uint64
				select {
				case g = <-ran:
				case <-time.After(waitTimeout):
					t.Fatal("Do did not run")
				}
				if g == me {
					t.Fatal("Do ran its function on the caller's goroutine")
				}
			}
			c.writeRaw(masked(opText, "41 b"))
			waitFor(t, "the second message", func() bool { n, _ := h.count(); return n == 2 })
			sess.Close("bye")
			select {
			case <-h.closed:
			case <-time.After(waitTimeout):
				t.Fatal("no OnClose")
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if g := h.gids[len(h.gids)-1]; g == me {
				t.Error("Close ran OnClose on the caller's goroutine")
			}
			if fmt.Sprint(order) != "[0 1 2]" {
				t.Errorf("Do order %v", order)
			}
		})
	}
}

// TestWaitingReaderReleasedByClose: a reader waiting for room in a busy
// session's queue is released when the session closes (here by Close; a
// heartbeat timeout does the same): the rest of what it read is dropped,
// as what a client sends to a closing session is, and the queued messages
// still run before OnClose.
func TestWaitingReaderReleasedByClose(t *testing.T) {
	s := startServer(t, Options{}, false)
	c, rec := pollOpen(t, s, 4)
	release, busy := make(chan struct{}), make(chan struct{})
	go rec.sess.Do(func() { close(busy); <-release })
	<-busy
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()

	var body strings.Builder
	for i := range 1000 {
		if i > 0 {
			body.WriteByte('\x1e')
		}
		fmt.Fprintf(&body, "4m%d", i)
	}
	answered := make(chan response, 1)
	go func() { answered <- c.post(body.String()) }()
	waitFor(t, "the POST waiting for room", rec.sess.exec.readerWaits)
	queued, _ := rec.sess.exec.pending()
	go rec.sess.Close("bye")
	select {
	case r := <-answered:
		if r.status != http.StatusOK {
			t.Errorf("POST: %d %q", r.status, r.body)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the waiting POST was not released by the close")
	}
	free()
	if ev := rec.waitClose(t); ev.reason != "bye" {
		t.Errorf("closed with %q", ev.reason)
	}
	if n := len(rec.msgs); n != queued {
		t.Errorf("%d messages handled, want the %d queued before the close", n, queued)
	}
}
