package engineio

// Tests of what a client can make the server hold: buffers that grow with
// what arrives, control frames within the send-queue bounds, and the
// process-wide budget of the send queues.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// heapInUse is the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// growth is after-before, in bytes, negative when the heap shrank.
func growth(before, after uint64) int64 { return int64(after) - int64(before) }

const mib = 1 << 20

// TestAnnouncedFrameCostsWhatArrives: WebSocket connections that each send
// the header of a 900 kB frame and 10 bytes of it hold a few KiB each, not
// the announced 900 kB; the frame still arrives whole when its sender
// completes it.
func TestAnnouncedFrameCostsWhatArrives(t *testing.T) {
	const conns, announced = 200, 900_000
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s := startServer(t, Options{IOMode: m.mode, PingInterval: time.Hour}, false)
			clients := make([]*rawWS, conns)
			recs := make([]*recorder, conns)
			for i := range clients {
				clients[i] = rawWSDial(t, s, "EIO=4&transport=websocket")
				if _, err := clients[i].readFrame(); err != nil { // OPEN
					t.Fatal(err)
				}
				recs[i] = s.session(t)
			}
			payload := make([]byte, announced)
			payload[0] = 'x'
			whole := clientFrame(true, opBinary, payload, testKey)
			hdr := len(whole) - announced
			before := heapInUse()
			for _, c := range clients {
				// A ping, whose pong tells that the server has read this
				// write, then the big frame's header and 10 bytes.
				c.writeRaw(append(masked(opPing, "p"), whole[:hdr+10]...))
			}
			for i, c := range clients {
				if f, err := c.readFrame(); err != nil || f.op != opPong {
					t.Fatalf("client %d: %v %v, want a pong", i, f, err)
				}
			}
			after := heapInUse()
			per := growth(before, after) / conns
			t.Logf("%d connections announcing %d bytes: heap in use %+.1f MiB (%d bytes each)",
				conns, announced, float64(growth(before, after))/mib, per)
			if per > 16<<10 {
				t.Errorf("each connection holds %d bytes for 10 bytes of a frame, want < 16 KiB", per)
			}
			// The rest, in pieces: the frame arrives whole.
			c := clients[0]
			for off := hdr + 10; off < len(whole); off += 50_000 {
				c.writeRaw(whole[off:min(off+50_000, len(whole))])
			}
			if got := recs[0].message(t); !got.binary || len(got.data) != announced || got.data[0] != 'x' {
				t.Errorf("message of %d bytes (binary %v), want the %d bytes sent", len(got.data), got.binary, announced)
			}
		})
	}
}

// TestAnnouncedBodyCostsWhatArrives: polling POSTs that announce a
// Content-Length of 900 kB and send 6 bytes hold a few KiB each.
func TestAnnouncedBodyCostsWhatArrives(t *testing.T) {
	const posts, announced = 200, 900_000
	s := startServer(t, Options{PingInterval: time.Hour}, false)
	addr := s.ts.Listener.Addr().String()
	var sessions []*Session
	var conns []net.Conn
	var reqs []string
	for range posts {
		c, rec := pollOpen(t, s, 4)
		sessions = append(sessions, rec.sess)
		nc, err := net.DialTimeout("tcp", addr, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		conns = append(conns, nc)
		reqs = append(reqs, fmt.Sprintf("POST /?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: test\r\n"+
			"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %d\r\n\r\n4hello", c.sid, announced))
	}
	before := heapInUse()
	for i, nc := range conns {
		_ = nc.SetWriteDeadline(time.Now().Add(waitTimeout))
		if _, err := io.WriteString(nc, reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every POST being read", func() bool {
		for _, sess := range sessions {
			sess.mu.Lock()
			posting := sess.pl.posting
			sess.mu.Unlock()
			if !posting {
				return false
			}
		}
		return true
	})
	after := heapInUse()
	per := growth(before, after) / posts
	t.Logf("%d POSTs announcing %d bytes: heap in use %+.1f MiB (%d bytes each)",
		posts, announced, float64(growth(before, after))/mib, per)
	if per > 16<<10 {
		t.Errorf("each POST holds %d bytes for 6 bytes of body, want < 16 KiB", per)
	}
}

// TestReadBody: bodies of every size up to the limit, with and without a
// Content-Length, arrive whole; longer ones and short ones fail.
func TestReadBody(t *testing.T) {
	const limit = 100_000
	for _, size := range []int{0, 1, bodyChunk - 1, bodyChunk, bodyChunk + 1, 3*bodyChunk + 7, limit} {
		for _, chunked := range []bool{false, true} {
			body := strings.Repeat("y", size)
			r := httptest.NewRequest("POST", "/", &trickle{s: body, step: 1000})
			if chunked {
				r.ContentLength = -1
			}
			got, err := readBody(httptest.NewRecorder(), r, limit)
			if err != nil || string(got) != body {
				t.Errorf("size %d chunked %v: %d bytes, %v", size, chunked, len(got), err)
			}
		}
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("y", limit+1)))
	r.ContentLength = -1
	var tooBig *http.MaxBytesError
	if _, err := readBody(httptest.NewRecorder(), r, limit); !errors.As(err, &tooBig) {
		t.Errorf("body over the limit: %v, want a MaxBytesError", err)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader("short"))
	r.ContentLength = 100
	if _, err := readBody(httptest.NewRecorder(), r, limit); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("body shorter than its Content-Length: %v, want ErrUnexpectedEOF", err)
	}
}

// trickle reads s at most step bytes at a time.
type trickle struct {
	s    string
	step int
}

func (t *trickle) Read(p []byte) (int, error) {
	if t.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), t.step)], t.s)
	t.s = t.s[n:]
	return n, nil
}

// TestPongsInQueue: the pongs waiting on a WebSocket count in the
// session's queue (Session.Queued, the server's QueuedBytes) and against
// its bounds: past MaxQueuedPackets the session overflows.
func TestPongsInQueue(t *testing.T) {
	h := newFrameHarness(t, Options{MaxQueuedPackets: 10}, 4, discardLogger())
	defer h.stop()
	ping := masked(opPing, "0123456789")
	for range 5 {
		if !h.c.handleRead(bytes.Clone(ping)) {
			t.Fatal("reader stopped")
		}
	}
	want := 5 * ctrlCost([]byte("0123456789"))
	if p, b := h.rec.sess.Queued(); p != 5 || b != want {
		t.Errorf("Queued() = %d, %d after 5 pings, want 5, %d", p, b, want)
	}
	if got := h.c.sess.srv.QueuedBytes(); got != want {
		t.Errorf("QueuedBytes() = %d, want %d", got, want)
	}
	h.io.runFlushes()
	if p, b := h.rec.sess.Queued(); p != 0 || b != 0 {
		t.Errorf("Queued() = %d, %d once flushed, want 0, 0", p, b)
	}
	if got := h.c.sess.srv.QueuedBytes(); got != 0 {
		t.Errorf("QueuedBytes() = %d once written, want 0", got)
	}
	if n := len(h.raw.frames(t)); n != 5 {
		t.Errorf("%d pongs written, want 5", n)
	}
	for range 11 {
		h.c.handleRead(bytes.Clone(ping))
	}
	select {
	case <-h.rec.overflow:
	case <-time.After(waitTimeout):
		t.Fatal("11 pongs waiting, MaxQueuedPackets 10: no overflow")
	}
	if p, _ := h.rec.sess.Queued(); p != 0 {
		t.Errorf("Queued() = %d packets after the overflow, want them dropped", p)
	}
}

// TestPingsWithoutReading: a client that sends WebSocket pings and never
// reads the pongs is cut off as a slow consumer once they pass its bounds,
// with the heap bounded.
func TestPingsWithoutReading(t *testing.T) {
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s := startServer(t, Options{IOMode: m.mode, PingInterval: time.Hour}, false)
			c := rawWSDial(t, s, "EIO=4&transport=websocket")
			rec := s.session(t)
			before := heapInUse()
			var peak atomic.Int64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				var ms runtime.MemStats
				for {
					runtime.ReadMemStats(&ms)
					peak.Store(max(peak.Load(), int64(ms.HeapInuse)))
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}()
			ping := masked(opPing, strings.Repeat("p", 125))
			batch := bytes1000(ping)
			sent := 0
			const most = 400_000
		flood:
			for sent < most {
				_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
				if _, err := c.conn.Write(batch); err != nil {
					break // the server cut the client off
				}
				sent += 1000
				select {
				case <-rec.overflow:
					break flood
				default:
				}
			}
			close(stop)
			<-sampled
			grew := peak.Load() - int64(before)
			t.Logf("%d pings of 125 bytes sent; heap in use peaked at %+.1f MiB", sent, float64(grew)/mib)
			if grew > 32*mib {
				t.Errorf("heap grew by %.1f MiB for a client that sends pings, want < 32 MiB", float64(grew)/mib)
			}
			if ev := rec.waitClose(t); ev.reason != "overflow" {
				t.Errorf("closed with %q, want overflow (a slow consumer)", ev.reason)
			}
			if got := s.Stats().Overflows; got != 1 {
				t.Errorf("Stats().Overflows = %d, want 1", got)
			}
			_ = c.conn.Close()
			waitFor(t, "the queues' accounting back to zero", func() bool { return s.QueuedBytes() == 0 })
		})
	}
}

func bytes1000(b []byte) []byte {
	out := make([]byte, 0, 1000*len(b))
	for range 1000 {
		out = append(out, b...)
	}
	return out
}

// TestV3PongsWithoutReading: a v3 polling client that sends PINGs and
// never polls: the PONGs count in its queue, and it is cut off as a slow
// consumer when they pass MaxQueuedPackets.
func TestV3PongsWithoutReading(t *testing.T) {
	s := startServer(t, Options{AllowEIO3: true, MaxQueuedPackets: 100}, false)
	c, rec := pollOpen(t, s, 3)
	body := strings.Repeat("1:2", 50)
	if r := c.post(body); r.status != http.StatusOK {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	if p, _ := rec.sess.Queued(); p != 50 {
		t.Errorf("Queued() = %d packets after 50 PINGs, want 50 PONGs", p)
	}
	c.post(body + body)
	select {
	case <-rec.overflow:
	case <-time.After(waitTimeout):
		t.Fatalf("150 PONGs queued for a client that does not poll, not cut off (queued %v)", fmt.Sprint(rec.sess.Queued()))
	}
	if ev := rec.waitClose(t); ev.reason != "overflow" {
		t.Errorf("closed with %q", ev.reason)
	}
}

// TestQueueBudgetShedsLargest: past the process-wide budget, the largest
// queue is shed first, and only as many as it takes to come under 7/8 of
// the budget.
func TestQueueBudgetShedsLargest(t *testing.T) {
	const kb = 1000
	payload := TextMessage([]byte("4" + strings.Repeat("z", kb-1)))
	cost := payload.cost()
	budget := 64 * cost
	s := startServer(t, Options{QueueBudget: budget}, false)
	var recs []*recorder
	for range 4 {
		_, rec := pollOpen(t, s, 4) // OPEN taken: the queues are empty
		recs = append(recs, rec)
	}
	fill := func(r *recorder, n int) {
		for i := range n {
			if err := r.sess.Send(payload); err != nil {
				t.Fatalf("Send %d: %v", i, err)
			}
		}
	}
	fill(recs[0], 10)
	fill(recs[1], 20)
	fill(recs[2], 30)
	if got, want := s.QueuedBytes(), 60*cost; got != want {
		t.Errorf("QueuedBytes() = %d, want %d", got, want)
	}
	fill(recs[3], 8) // 68 packets: over the budget
	select {
	case <-recs[2].overflow:
	case <-time.After(waitTimeout):
		t.Fatal("the largest queue was not shed")
	}
	waitFor(t, "the shedding pass to end", func() bool { return !s.shedding.Load() })
	if got := s.Stats().Shed; got != 1 {
		t.Errorf("Stats().Shed = %d, want 1", got)
	}
	for i, r := range []*recorder{recs[0], recs[1], recs[3]} {
		if err := r.sess.Send(payload); err != nil {
			t.Errorf("session %d: Send after the shedding: %v", i, err)
		}
	}
	if got, want := s.QueuedBytes(), 41*cost; got != want {
		t.Errorf("QueuedBytes() = %d, want %d (the shed queue given back)", got, want)
	}
}

// lightHandler is a SessionHandler that costs little memory (a recorder
// buffers 16 384 messages), for tests with thousands of sessions: it
// closes a slow consumer, as Socket.IO does, and counts what it received.
type lightHandler struct {
	sess     *Session
	overflow atomic.Bool
}

func (h *lightHandler) OnMessage([]byte, bool) {}
func (h *lightHandler) OnQueueOverflow() {
	h.overflow.Store(true)
	h.sess.Close("slow consumer")
}
func (h *lightHandler) OnClose(string, error) {}

// TestQueueBudgetNeverPolling: 2000 polling sessions that never poll while
// the chat goes on (a broadcast every step to every session, read by two
// WebSocket clients): the heap grows by less than 256 MiB with the default
// budget, the never-polling sessions are shed, and the readers get every
// message.
func TestQueueBudgetNeverPolling(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of sessions")
	}
	const idle, broadcasts = 2000, 4000
	var (
		mu       sync.Mutex
		handlers []*lightHandler
	)
	srv := NewServer(Options{PingInterval: time.Hour, CloseTimeout: 100 * time.Millisecond, Logger: discardLogger()},
		func(sess *Session) SessionHandler {
			h := &lightHandler{sess: sess}
			mu.Lock()
			handlers = append(handlers, h)
			mu.Unlock()
			return h
		})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); ts.Close() })
	hc := &http.Client{Timeout: waitTimeout}
	for range idle {
		r := do(t, hc, "GET", ts.URL+"/?EIO=4&transport=polling", "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("handshake: %d %s", r.status, r.body)
		}
	}
	hc.CloseIdleConnections()
	readers := make([]*bufio.Reader, 2)
	for i := range readers {
		c := rawWSDial(t, &testServer{ts: ts}, "EIO=4&transport=websocket")
		_ = c.conn.SetReadDeadline(time.Time{})
		readers[i] = c.br
	}
	var all []*lightHandler
	waitFor(t, "every session's handler", func() bool {
		mu.Lock()
		defer mu.Unlock()
		all = append(all[:0], handlers...)
		return len(all) == idle+2
	})
	readerSessions := all[idle:]
	var wg sync.WaitGroup
	got := make([]int, len(readers))
	for i, br := range readers {
		wg.Go(func() {
			for got[i] < broadcasts {
				f, err := readServerFrame(br)
				if err != nil {
					return
				}
				if f.op == opText && len(f.payload) > 0 && f.payload[0] == typeMessage {
					got[i]++
				}
			}
		})
	}

	before := heapInUse()
	var peak int64
	for i := range broadcasts {
		msg := TextMessage(fmt.Appendf(nil, `42["chat message","message number %d from alice"]`, i))
		for _, h := range all {
			_ = h.sess.Send(msg)
		}
		if i%100 == 99 {
			peak = max(peak, growth(before, heapInUse()))
		}
	}
	wg.Wait()
	for i, n := range got {
		if n != broadcasts {
			t.Errorf("reader %d got %d of %d messages", i, n, broadcasts)
		}
	}
	for i, h := range readerSessions {
		if h.overflow.Load() {
			t.Errorf("reader %d was shed", i)
		}
	}
	shed := 0
	for _, h := range all[:idle] {
		if h.overflow.Load() {
			shed++
		}
	}
	st := srv.Stats()
	t.Logf("%d never-polling sessions, %d broadcasts: heap in use peaked at %+.1f MiB; %d sessions shed (Stats().Shed %d), queues hold %.1f MiB",
		idle, broadcasts, float64(peak)/mib, shed, st.Shed, float64(srv.QueuedBytes())/mib)
	if peak > 256*mib {
		t.Errorf("heap grew by %.1f MiB, want < 256 MiB", float64(peak)/mib)
	}
	if shed == 0 || st.Shed == 0 {
		t.Error("no never-polling session was shed")
	}
	srv.Close()
	waitFor(t, "the sessions gone", func() bool { return srv.Len() == 0 })
	waitFor(t, "the queues' accounting back to zero", func() bool { return srv.QueuedBytes() == 0 })
}

// TestQueueBudgetSharedBroadcast: one broadcast's payload waiting in many
// queues is held once, and the process-wide budget counts it once: a big
// message to many healthy clients does not get them shed, while each
// client's own bound still counts the whole payload it has to receive.
func TestQueueBudgetSharedBroadcast(t *testing.T) {
	const sessions, size = 100, 64 << 10
	payload := TextMessage([]byte("4" + strings.Repeat("z", size-1)))
	// Counted in full in every queue, the broadcast would cost 6.4 MB.
	budget := int64(sessions) * payload.cost() / 4
	s := startServer(t, Options{QueueBudget: budget}, false)
	var recs []*recorder
	for range sessions {
		_, rec := pollOpen(t, s, 4)
		recs = append(recs, rec)
	}
	m := payload.Shared(sessions)
	for i, r := range recs {
		if err := r.sess.Send(m); err != nil {
			t.Fatalf("Send to session %d: %v", i, err)
		}
	}
	want := int64(sessions) * (size/sessions + queueEntryCost)
	if got := s.QueuedBytes(); got != want {
		t.Errorf("QueuedBytes() = %d, want %d (the payload once, plus a slot per queue)", got, want)
	}
	if got := s.Stats().Shed; got != 0 || s.shedding.Load() {
		t.Errorf("Stats().Shed = %d (shedding %v), want 0: nothing is over the budget", got, s.shedding.Load())
	}
	if _, b := recs[0].sess.Queued(); b != payload.cost() {
		t.Errorf("session's Queued() bytes = %d, want the whole payload and its slot, %d", b, payload.cost())
	}
	for _, r := range recs {
		r.sess.Close("done")
	}
	waitFor(t, "the queues to be given back", func() bool { return s.QueuedBytes() == 0 })
}
