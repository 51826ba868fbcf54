package chat

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/history"
	"github.com/chatio/socketio-chat/internal/testlog"
)

// The feed's unit tests run it on a real SQLite history with fake
// subscribers and a fake live room, so that they can check every delivery
// of the seam between catch-up and live messages.

// fakeRoom is the live room: broadcast delivers to its members.
type fakeRoom struct {
	mu      sync.Mutex
	members []*fakeSub
	order   []int64 // every broadcast, in order
}

func (r *fakeRoom) broadcast(rec history.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.order = append(r.order, rec.Offset)
	for _, m := range r.members {
		m.receive(rec.Offset)
	}
}

func (r *fakeRoom) broadcasts() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

// fakeSub is a subscriber that records what it receives.
type fakeSub struct {
	room *fakeRoom
	name string

	mu        sync.Mutex
	got       []int64
	live      bool
	liveAt    int64
	abandoned bool
	left      atomic.Bool
}

func (s *fakeSub) receive(off int64) {
	s.mu.Lock()
	s.got = append(s.got, off)
	s.mu.Unlock()
}

func (s *fakeSub) emit(r history.Record) bool {
	if s.left.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live {
		panic(fmt.Sprintf("%s: catch-up message %d after going live", s.name, r.Offset))
	}
	s.got = append(s.got, r.Offset)
	return true
}

func (s *fakeSub) goLive(last int64) bool {
	if s.left.Load() {
		return false
	}
	s.mu.Lock()
	s.live, s.liveAt = true, last
	s.mu.Unlock()
	s.room.mu.Lock()
	s.room.members = append(s.room.members, s)
	s.room.mu.Unlock()
	return true
}

func (s *fakeSub) backlog() (int, int64) { return 0, 0 }
func (s *fakeSub) gone() bool            { return s.left.Load() }
func (s *fakeSub) drop(string)           { s.left.Store(true) }
func (s *fakeSub) abandon() {
	s.mu.Lock()
	s.abandoned = true
	s.mu.Unlock()
}

func (s *fakeSub) snapshot() ([]int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got), s.live
}

// feedRig is a store, a Writer feeding a feed, and its live room.
type feedRig struct {
	store  history.Store
	writer *history.Writer
	feed   *feed
	room   *fakeRoom
}

func newFeedRig(t testing.TB, dsn string, opts feedOptions) *feedRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := history.Open(ctx, dsn, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &feedRig{store: store, room: &fakeRoom{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = testlog.New(t, slog.LevelDebug)
	}
	r.feed, err = newFeed(ctx, store, opts, log, r.room.broadcast)
	if err != nil {
		t.Fatal(err)
	}
	r.writer = history.NewWriter(store, history.WriterOptions{})
	t.Cleanup(func() {
		_ = r.writer.Close(context.Background())
		r.feed.close()
		_ = store.Close()
	})
	return r
}

// send stores n messages through the Writer, handing each to the feed as
// the chat does, and returns once all are stored.
func (r *feedRig) send(t testing.TB, n int, pace time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range n {
		wg.Add(1)
		m := history.Message{Payload: fmt.Appendf(nil, `"m%d"`, i)}
		r.writer.Submit(m, func(res history.Result, err error) {
			defer wg.Done()
			if err != nil {
				failed.Add(1)
				return
			}
			r.feed.committed(history.Record{Offset: res.Offset, Time: res.Time, Message: m})
		})
		if pace > 0 {
			time.Sleep(pace)
		}
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d messages not stored", n)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkSeam checks that sub got every message from first to last once, in
// order, and went live.
func checkSeam(t *testing.T, sub *fakeSub, first, last int64) {
	t.Helper()
	got, live := sub.snapshot()
	if !live {
		t.Errorf("%s: not live", sub.name)
	}
	want := make([]int64, 0, max(last-first+1, 0))
	for o := first; o <= last; o++ {
		want = append(want, o)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %d messages %v…%v, want %d..%d exactly once in order (first difference at %d)",
			sub.name, len(got), head(got), tailOf(got), first, last, firstDiff(got, want))
	}
}

func head(s []int64) []int64   { return s[:min(len(s), 5)] }
func tailOf(s []int64) []int64 { return s[max(0, len(s)-5):] }

func firstDiff(a, b []int64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Subscribers joining while messages are stored and broadcast get every
// message after their offset exactly once, in order, catch-up first, over
// the three paths: from the tail at once, streamed from the database, and
// streamed then finished from the tail.
func TestFeedSeamUnderConcurrentJoins(t *testing.T) {
	t.Parallel()
	rig := newFeedRig(t, filepath.Join(t.TempDir(), "chat.db"), feedOptions{
		LastN:        50,
		TailCount:    64, // small: many catch-ups stream from the database
		QueuePackets: 400,
		Poll:         time.Hour, // only the commits and the gaps drive it
		Page:         37,
	})
	rig.send(t, 300, 0) // history before anyone joins
	const total, subs = 1500, 120
	done := make(chan struct{})
	go func() {
		defer close(done)
		rig.send(t, total-300, 200*time.Microsecond)
	}()
	type joined struct {
		sub       *fakeSub
		offset    int64
		hasOffset bool
	}
	var all []joined
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range subs {
		s := &fakeSub{room: rig.room, name: fmt.Sprintf("sub%d", i)}
		j := joined{sub: s}
		switch i % 3 {
		case 0: // no offset: the newest LastN
		case 1:
			j.offset, j.hasOffset = int64(rng.IntN(300)), true // far behind: streamed
		case 2:
			j.offset, j.hasOffset = max(rig.feed.published.Load()-int64(rng.IntN(40)), 0), true // close: from the tail
		}
		rig.feed.join(s, j.offset, j.hasOffset)
		all = append(all, j)
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
	}
	<-done
	waitFor(t, 20*time.Second, "the feed to broadcast every message", func() bool { return rig.feed.published.Load() == total })
	for _, j := range all {
		waitFor(t, 20*time.Second, j.sub.name+" to receive up to the last message", func() bool {
			got, live := j.sub.snapshot()
			return live && len(got) > 0 && got[len(got)-1] == total
		})
		got, _ := j.sub.snapshot()
		first := got[0]
		if j.hasOffset {
			first = j.offset + 1
		} else if first < 1 {
			t.Errorf("%s: first message %d", j.sub.name, first)
		}
		checkSeam(t, j.sub, first, total)
	}
	if b := rig.room.broadcasts(); !slices.Equal(b, seq(1, total)) {
		t.Errorf("broadcasts: %d, %v…%v; want 1..%d in order", len(b), head(b), tailOf(b), total)
	}
}

// A subscriber without an offset gets the newest LastN; one whose offset is
// older than MaxCatchup allows gets the newest MaxCatchup.
func TestFeedCatchupBounds(t *testing.T) {
	t.Parallel()
	rig := newFeedRig(t, filepath.Join(t.TempDir(), "chat.db"), feedOptions{LastN: 10, MaxCatchup: 100, Poll: time.Hour})
	rig.send(t, 250, 0)
	waitFor(t, 10*time.Second, "250 broadcasts", func() bool { return rig.feed.published.Load() == 250 })
	for _, c := range []struct {
		name      string
		offset    int64
		hasOffset bool
		first     int64
	}{
		{"none", 0, false, 241},
		{"zero", 0, true, 151},
		{"recent", 200, true, 201},
		{"current", 250, true, 251},
	} {
		s := &fakeSub{room: rig.room, name: c.name}
		rig.feed.join(s, c.offset, c.hasOffset)
		waitFor(t, 10*time.Second, c.name+" live", func() bool { _, live := s.snapshot(); return live })
		checkSeam(t, s, c.first, 250)
	}
}

// Messages stored by another node (another Store on the same history, whose
// commits this feed is not told about) reach the live room in order, by
// polling; a subscriber whose offset this node has not reached yet waits for
// it, and one whose offset the history never had joins after a read.
func TestFeedOtherNodeAndOffsetsAhead(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "chat.db")
	rig := newFeedRig(t, dsn, feedOptions{LastN: 5, Poll: 50 * time.Millisecond})
	other, err := history.Open(context.Background(), dsn, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rig.send(t, 10, 0) // 1..10, ours
	waitFor(t, 10*time.Second, "10 broadcasts", func() bool { return rig.feed.published.Load() == 10 })

	// The other node stores 11..40; a client that saw 30 there connects here.
	for i := range 30 {
		if _, err := other.Append(context.Background(), []history.Message{{Payload: fmt.Appendf(nil, `"o%d"`, i)}}); err != nil {
			t.Fatal(err)
		}
	}
	ahead := &fakeSub{room: rig.room, name: "ahead"}
	rig.feed.join(ahead, 30, true)
	bogus := &fakeSub{room: rig.room, name: "bogus"}
	before := rig.feed.published.Load() // the feed's poll may be reading 11..40 meanwhile
	rig.feed.join(bogus, 1_000_000, true)
	after := rig.feed.published.Load()
	rig.send(t, 5, 0) // 41..45: gaps from our own commits
	waitFor(t, 10*time.Second, "45 broadcasts", func() bool { return rig.feed.published.Load() == 45 })
	waitFor(t, 10*time.Second, "both live", func() bool {
		_, a := ahead.snapshot()
		_, b := bogus.snapshot()
		return a && b
	})
	checkSeam(t, ahead, 31, 45)
	// A made-up offset: what was broadcast since it joined, then the live
	// messages; "since it joined" is read at join, not when the feed's
	// goroutine gets to the request (by then it may have broadcast more).
	if got, _ := bogus.snapshot(); len(got) == 0 || got[0] <= before || got[0] > after+1 {
		t.Errorf("a client with a made-up offset got %v, want what came after the offset published when it joined (%d..%d)", got, before, after)
	} else {
		checkSeam(t, bogus, got[0], 45)
	}
	if b := rig.room.broadcasts(); !slices.Equal(b, seq(1, 45)) {
		t.Errorf("broadcast order %v, want 1..45", b)
	}
}

// After retention deleted messages nobody had read, the feed skips them
// instead of waiting for them.
func TestFeedSkipsWhatRetentionDeleted(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "chat.db")
	rig := newFeedRig(t, dsn, feedOptions{LastN: 5, Poll: 30 * time.Millisecond})
	other, err := history.Open(context.Background(), dsn, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// The other node stores and trims to 3 messages while this feed polls:
	// it misses most of them.
	for i := range 20 {
		if _, err := other.Append(context.Background(), []history.Message{{Payload: fmt.Appendf(nil, `"o%d"`, i)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Trim(context.Background(), history.Retention{MaxCount: 3}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "offset 20", func() bool { return rig.feed.published.Load() == 20 })
	b := rig.room.broadcasts()
	if !slices.IsSorted(b) || b[len(b)-1] != 20 {
		t.Errorf("broadcasts %v: want increasing, ending at 20", b)
	}
	s := &fakeSub{room: rig.room, name: "late"}
	rig.feed.join(s, 0, true)
	waitFor(t, 10*time.Second, "late live", func() bool { _, live := s.snapshot(); return live })
	if got, _ := s.snapshot(); !slices.IsSorted(got) || len(got) == 0 || got[len(got)-1] != 20 {
		t.Errorf("late joiner got %v", got)
	}
}

// A subscriber that leaves during its catch-up is abandoned, and the feed
// goes on.
func TestFeedSubscriberLeaves(t *testing.T) {
	t.Parallel()
	rig := newFeedRig(t, filepath.Join(t.TempDir(), "chat.db"), feedOptions{TailCount: 16, Page: 10, Poll: time.Hour})
	rig.send(t, 200, 0)
	waitFor(t, 10*time.Second, "200 broadcasts", func() bool { return rig.feed.published.Load() == 200 })
	s := &fakeSub{room: rig.room, name: "leaver"}
	s.left.Store(true)
	rig.feed.join(s, 0, true)
	waitFor(t, 10*time.Second, "abandon", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.abandoned })
	stay := &fakeSub{room: rig.room, name: "stay"}
	rig.feed.join(stay, 0, true)
	waitFor(t, 10*time.Second, "stay live", func() bool { _, live := stay.snapshot(); return live })
	checkSeam(t, stay, 1, 200)
}

func seq(from, to int64) []int64 {
	var out []int64
	for o := from; o <= to; o++ {
		out = append(out, o)
	}
	return out
}

func TestRecordTail(t *testing.T) {
	tl := recordTail{maxCount: 4, maxBytes: 1 << 20, complete: true}
	rec := func(o int64) history.Record {
		return history.Record{Offset: o, Message: history.Message{Payload: []byte(`"x"`)}}
	}
	if got, ok := tl.after(0, 0); !ok || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, ok)
	}
	for o := int64(1); o <= 3; o++ {
		tl.push(rec(o))
	}
	if got, ok := tl.after(0, 3); !ok || len(got) != 3 {
		t.Fatalf("after 0 of a complete tail: %d %v", len(got), ok)
	}
	for o := int64(4); o <= 10; o++ {
		tl.push(rec(o))
	}
	if tl.complete || tl.start(10) != 7 {
		t.Fatalf("after evictions: complete %v start %d", tl.complete, tl.start(10))
	}
	if _, ok := tl.after(5, 10); ok {
		t.Fatal("after 5: the tail starts at 7, it cannot cover 6")
	}
	if got, ok := tl.after(6, 10); !ok || len(got) != 4 || got[0].Offset != 7 {
		t.Fatalf("after 6: %v %v", got, ok)
	}
	if got, ok := tl.after(10, 10); !ok || len(got) != 0 {
		t.Fatalf("after 10: %v %v", got, ok)
	}
	for o := int64(11); o <= 500; o++ {
		tl.push(rec(o))
	}
	if tl.len() != 4 || tl.start(500) != 497 || len(tl.recs) > 200 {
		t.Fatalf("compaction: len %d start %d backing %d", tl.len(), tl.start(500), len(tl.recs))
	}
}

func TestServerOffsetAndClientOffset(t *testing.T) {
	for _, c := range []struct {
		auth string
		off  int64
		ok   bool
	}{
		{``, 0, false},
		{`{}`, 0, false},
		{`{"serverOffset":0}`, 0, true},
		{`{"serverOffset":42}`, 42, true},
		{`{"serverOffset":"42"}`, 42, true},
		{`{"serverOffset":4.0}`, 4, true},
		{`{"serverOffset":4.5}`, 0, false},
		{`{"serverOffset":-1}`, 0, false},
		{`{"serverOffset":null}`, 0, false},
		{`{"serverOffset":"x"}`, 0, false},
		{`{"serverOffset":{"a":1}}`, 0, false},
		{`[1]`, 0, false},
	} {
		off, ok := serverOffset([]byte(c.auth))
		if off != c.off || ok != c.ok {
			t.Errorf("serverOffset(%s) = %d, %v; want %d, %v", c.auth, off, ok, c.off, c.ok)
		}
	}
}

// BenchmarkFeedStoreAndBroadcast: a message stored through the Writer
// (SQLite, synchronous=FULL, group commit) and broadcast by the feed, with
// up to 1024 messages in flight; the room is a counter.
func BenchmarkFeedStoreAndBroadcast(b *testing.B) {
	b.ReportAllocs()
	rig := newFeedRig(b, filepath.Join(b.TempDir(), "chat.db"), feedOptions{Poll: time.Hour})
	inFlight := make(chan struct{}, 1024)
	var failed atomic.Int64
	b.ResetTimer()
	for i := range b.N {
		inFlight <- struct{}{}
		m := history.Message{Payload: fmt.Appendf(nil, `"m%d"`, i)}
		rig.writer.Submit(m, func(res history.Result, err error) {
			<-inFlight
			if err != nil {
				failed.Add(1)
				return
			}
			rig.feed.committed(history.Record{Offset: res.Offset, Time: res.Time, Message: m})
		})
	}
	for rig.feed.published.Load() < int64(b.N)-failed.Load() {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d messages not stored", n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
