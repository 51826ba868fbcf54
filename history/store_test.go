package history

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// storeTests is the table every backend runs (TestStore). Each case gets the
// DSN of a fresh, empty history.
var storeTests = []struct {
	name string
	run  func(t *testing.T, dsn string)
}{
	{"Order", testOrder},
	{"RoundTrip", testRoundTrip},
	{"Dedup", testDedup},
	{"Reads", testReads},
	{"LastOffset", testLastOffset},
	{"Retention", testRetention},
	{"TrimWhileAppending", testTrimWhileAppending},
	{"ConcurrentAppend", testConcurrentAppend},
	{"ConcurrentSubmitters", testConcurrentSubmitters},
	{"Reopen", testReopen},
	{"ConcurrentOpen", testConcurrentOpen},
	{"Closed", testClosed},
	{"CloseWhileWriting", testCloseWhileWriting},
	{"CrashDurability", testCrashDurability},
}

func TestStore(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range storeTests {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, b.newDSN(t))
				})
			}
		})
	}
}

// appendOK appends msgs and fails the test on error.
func appendOK(t *testing.T, s Store, msgs ...Message) []Result {
	t.Helper()
	res, err := s.Append(testCtx(t, 30*time.Second), msgs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(res) != len(msgs) {
		t.Fatalf("Append returned %d results for %d messages", len(res), len(msgs))
	}
	return res
}

// readAll returns every stored message.
func readAll(t *testing.T, s Store) []Record {
	t.Helper()
	recs, err := s.After(testCtx(t, 30*time.Second), 0, 1<<30)
	if err != nil {
		t.Fatalf("After: %v", err)
	}
	return recs
}

func offsets(recs []Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Offset
	}
	return out
}

func payloads(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Payload)
	}
	return out
}

func testOrder(t *testing.T, dsn string) {
	s := mustOpen(t, dsn, Options{})
	var want []string
	var last int64
	for batch := 1; batch <= 5; batch++ {
		var msgs []Message
		for i := 0; i < batch; i++ {
			p := fmt.Sprintf(`"b%d-m%d"`, batch, i)
			msgs = append(msgs, msg(p, ""))
			want = append(want, p)
		}
		for _, r := range appendOK(t, s, msgs...) {
			if r.Duplicate || r.Offset != last+1 || r.Time.IsZero() {
				t.Fatalf("result %+v after offset %d: want offset %d, not duplicate, with a time", r, last, last+1)
			}
			last = r.Offset
		}
	}
	recs := readAll(t, s)
	if got := strings.Join(payloads(recs), ","); got != strings.Join(want, ",") {
		t.Fatalf("payloads in offset order:\n got %s\nwant %s", got, strings.Join(want, ","))
	}
	for i, r := range recs {
		if r.Offset != int64(i+1) {
			t.Fatalf("record %d has offset %d, want %d (dense from 1)", i, r.Offset, i+1)
		}
		if i > 0 && r.Time.Before(recs[i-1].Time) {
			t.Fatalf("time goes back at offset %d: %v after %v", r.Offset, r.Time, recs[i-1].Time)
		}
	}
	if res, err := s.Append(testCtx(t, 10*time.Second), nil); err != nil || res != nil {
		t.Fatalf("Append(nil) = %v, %v; want nil, nil", res, err)
	}
}

func testRoundTrip(t *testing.T, dsn string) {
	s := mustOpen(t, dsn, Options{})
	cases := []struct {
		name string
		m    Message
	}{
		{"plain", msg(`"hello"`, "")},
		{"empty payload", Message{}},
		{"unicode and escapes", msg(`{"text":"h\u00e9llo \"w\" ✓ 😀","n":1.50}`, "c-unicode")},
		{"whitespace kept", msg("  [ 1 ,\t2 ]\n", "")},
		{"not UTF-8", Message{Payload: []byte{'"', 0xff, 0xfe, 0x00, '"'}}},
		{"placeholder and attachments", Message{
			Payload:     []byte(`{"file":{"_placeholder":true,"num":0},"thumb":{"_placeholder":true,"num":1}}`),
			Attachments: [][]byte{{0, 1, 2, 255}, bytes.Repeat([]byte{7}, 70000)},
		}},
		{"one empty attachment", Message{Payload: []byte(`{"_placeholder":true,"num":0}`), Attachments: [][]byte{{}}}},
		{"nil attachment", Message{Payload: []byte(`{"_placeholder":true,"num":0}`), Attachments: [][]byte{nil, {9}}}},
		{"client offset with odd characters", msg(`"x"`, "ö'\"; DROP TABLE x; --")},
	}
	var msgs []Message
	for _, c := range cases {
		msgs = append(msgs, c.m)
	}
	res := appendOK(t, s, msgs...)
	recs := readAll(t, s)
	if len(recs) != len(cases) {
		t.Fatalf("read %d records, want %d", len(recs), len(cases))
	}
	for i, c := range cases {
		got := recs[i]
		if got.Offset != res[i].Offset || !got.Time.Equal(res[i].Time) {
			t.Errorf("%s: read offset %d time %v, append said %d %v", c.name, got.Offset, got.Time, res[i].Offset, res[i].Time)
		}
		if !bytes.Equal(got.Payload, c.m.Payload) || got.Payload == nil {
			t.Errorf("%s: payload %q, want %q (non-nil)", c.name, got.Payload, c.m.Payload)
		}
		if got.ClientOffset != c.m.ClientOffset {
			t.Errorf("%s: client offset %q, want %q", c.name, got.ClientOffset, c.m.ClientOffset)
		}
		if len(got.Attachments) != len(c.m.Attachments) {
			t.Errorf("%s: %d attachments, want %d", c.name, len(got.Attachments), len(c.m.Attachments))
			continue
		}
		for j := range got.Attachments {
			if !bytes.Equal(got.Attachments[j], c.m.Attachments[j]) {
				t.Errorf("%s: attachment %d differs (%d bytes, want %d)", c.name, j, len(got.Attachments[j]), len(c.m.Attachments[j]))
			}
		}
		if got.Time.Location() != time.UTC {
			t.Errorf("%s: time %v not in UTC", c.name, got.Time)
		}
	}
}

func testDedup(t *testing.T, dsn string) {
	type step struct {
		batch []Message
		want  []Result // Offset and Duplicate are compared
	}
	cases := []struct {
		name  string
		steps []step
		want  []string // payloads stored, in order
	}{
		{
			name: "within one batch",
			steps: []step{{
				batch: []Message{msg(`1`, "a"), msg(`2`, "b"), msg(`3`, "a"), msg(`4`, "a"), msg(`5`, "")},
				want:  []Result{{Offset: 1}, {Offset: 2}, {Offset: 1, Duplicate: true}, {Offset: 1, Duplicate: true}, {Offset: 3}},
			}},
			want: []string{"1", "2", "5"},
		},
		{
			name: "across batches",
			steps: []step{
				{batch: []Message{msg(`1`, "a"), msg(`2`, "b")}, want: []Result{{Offset: 1}, {Offset: 2}}},
				{batch: []Message{msg(`3`, "c"), msg(`1-again`, "a")}, want: []Result{{Offset: 3}, {Offset: 1, Duplicate: true}}},
				{batch: []Message{msg(`2-again`, "b")}, want: []Result{{Offset: 2, Duplicate: true}}},
				{batch: []Message{msg(`4`, "d")}, want: []Result{{Offset: 4}}},
			},
			want: []string{"1", "2", "3", "4"},
		},
		{
			name: "no client offset never deduplicates",
			steps: []step{
				{batch: []Message{msg(`1`, ""), msg(`1`, "")}, want: []Result{{Offset: 1}, {Offset: 2}}},
				{batch: []Message{msg(`1`, "")}, want: []Result{{Offset: 3}}},
			},
			want: []string{"1", "1", "1"},
		},
		{
			name: "only duplicates",
			steps: []step{
				{batch: []Message{msg(`1`, "a")}, want: []Result{{Offset: 1}}},
				{batch: []Message{msg(`x`, "a"), msg(`y`, "a")}, want: []Result{{Offset: 1, Duplicate: true}, {Offset: 1, Duplicate: true}}},
				{batch: []Message{msg(`2`, "b")}, want: []Result{{Offset: 2}}},
			},
			want: []string{"1", "2"},
		},
		{
			name: "client offsets are case and space sensitive",
			steps: []step{
				{batch: []Message{msg(`1`, "a"), msg(`2`, "A"), msg(`3`, "a ")}, want: []Result{{Offset: 1}, {Offset: 2}, {Offset: 3}}},
			},
			want: []string{"1", "2", "3"},
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sdsn := dsn
			if i > 0 {
				sdsn = dsnFor(t, dsn)
			}
			s := mustOpen(t, sdsn, Options{})
			first := map[int64]time.Time{}
			for si, st := range c.steps {
				res := appendOK(t, s, st.batch...)
				for j, r := range res {
					w := st.want[j]
					if r.Offset != w.Offset || r.Duplicate != w.Duplicate {
						t.Fatalf("step %d message %d: got offset %d duplicate %v, want %d %v", si, j, r.Offset, r.Duplicate, w.Offset, w.Duplicate)
					}
					if ft, ok := first[r.Offset]; ok && !r.Time.Equal(ft) {
						t.Fatalf("step %d message %d: duplicate time %v, first stored at %v", si, j, r.Time, ft)
					} else if !ok {
						first[r.Offset] = r.Time
					}
				}
			}
			if got := strings.Join(payloads(readAll(t, s)), ","); got != strings.Join(c.want, ",") {
				t.Fatalf("stored %s, want %s", got, strings.Join(c.want, ","))
			}
			last, err := s.LastOffset(testCtx(t, 10*time.Second))
			if err != nil || last != int64(len(c.want)) {
				t.Fatalf("LastOffset = %d, %v; want %d", last, err, len(c.want))
			}
		})
	}
}

// dsnFor returns a fresh history of the same backend as dsn.
func dsnFor(t *testing.T, dsn string) string {
	t.Helper()
	if isPostgres(dsn) {
		return newPostgresDSN(t)
	}
	return newSQLiteDSN(t)
}

func testReads(t *testing.T, dsn string) {
	s := mustOpen(t, dsn, Options{})
	ctx := testCtx(t, 30*time.Second)
	if recs, err := s.Last(ctx, 5); err != nil || len(recs) != 0 {
		t.Fatalf("Last on empty = %v, %v", recs, err)
	}
	var msgs []Message
	for i := 1; i <= 10; i++ {
		msgs = append(msgs, msg(fmt.Sprint(i), ""))
	}
	appendOK(t, s, msgs...)
	span := func(from, to int64) []int64 {
		var out []int64
		for i := from; i <= to; i++ {
			out = append(out, i)
		}
		return out
	}
	cases := []struct {
		name  string
		read  func() ([]Record, error)
		want  []int64
		isErr bool
	}{
		{"after 0 limit 3", func() ([]Record, error) { return s.After(ctx, 0, 3) }, span(1, 3), false},
		{"after 3 limit 3", func() ([]Record, error) { return s.After(ctx, 3, 3) }, span(4, 6), false},
		{"after 8 limit 5", func() ([]Record, error) { return s.After(ctx, 8, 5) }, span(9, 10), false},
		{"after last", func() ([]Record, error) { return s.After(ctx, 10, 5) }, nil, false},
		{"after beyond last", func() ([]Record, error) { return s.After(ctx, 1000, 5) }, nil, false},
		{"after negative", func() ([]Record, error) { return s.After(ctx, -5, 2) }, span(1, 2), false},
		{"after limit 0", func() ([]Record, error) { return s.After(ctx, 0, 0) }, nil, false},
		{"after negative limit", func() ([]Record, error) { return s.After(ctx, 0, -1) }, nil, true},
		{"last 3", func() ([]Record, error) { return s.Last(ctx, 3) }, span(8, 10), false},
		{"last 1", func() ([]Record, error) { return s.Last(ctx, 1) }, span(10, 10), false},
		{"last more than stored", func() ([]Record, error) { return s.Last(ctx, 50) }, span(1, 10), false},
		{"last 0", func() ([]Record, error) { return s.Last(ctx, 0) }, nil, false},
		{"last negative", func() ([]Record, error) { return s.Last(ctx, -1) }, nil, true},
	}
	for _, c := range cases {
		recs, err := c.read()
		if c.isErr {
			if err == nil {
				t.Errorf("%s: no error", c.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := fmt.Sprint(offsets(recs)); got != fmt.Sprint(c.want) && !(len(recs) == 0 && len(c.want) == 0) {
			t.Errorf("%s: offsets %v, want %v", c.name, got, c.want)
		}
		for _, r := range recs {
			if string(r.Payload) != fmt.Sprint(r.Offset) {
				t.Errorf("%s: offset %d has payload %q", c.name, r.Offset, r.Payload)
			}
		}
	}
}

func testLastOffset(t *testing.T, dsn string) {
	s := mustOpen(t, dsn, Options{})
	ctx := testCtx(t, 30*time.Second)
	lastIs := func(want int64) {
		t.Helper()
		got, err := s.LastOffset(ctx)
		if err != nil || got != want {
			t.Fatalf("LastOffset = %d, %v; want %d", got, err, want)
		}
	}
	lastIs(0)
	appendOK(t, s, msg(`1`, ""), msg(`2`, ""), msg(`3`, ""))
	lastIs(3)
	// Trimming everything does not lower it, and offsets are never reused.
	if n, err := s.Trim(ctx, Retention{MaxAge: time.Nanosecond}); err != nil || n != 3 {
		t.Fatalf("Trim all = %d, %v; want 3", n, err)
	}
	if recs := readAll(t, s); len(recs) != 0 {
		t.Fatalf("%d records after trimming all", len(recs))
	}
	lastIs(3)
	if r := appendOK(t, s, msg(`4`, "")); r[0].Offset != 4 {
		t.Fatalf("append after emptying got offset %d, want 4", r[0].Offset)
	}
	lastIs(4)
}

func testRetention(t *testing.T, dsn string) {
	cases := []struct {
		name        string
		stored      int
		chunk       int
		r           Retention
		wantDeleted int64
		wantFirst   int64 // oldest offset kept; 0 for none kept
	}{
		{"no bound", 20, 0, Retention{}, 0, 1},
		{"count under", 20, 0, Retention{MaxCount: 50}, 0, 1},
		{"count equal", 20, 0, Retention{MaxCount: 20}, 0, 1},
		{"count", 20, 0, Retention{MaxCount: 5}, 15, 16},
		{"count in chunks", 100, 7, Retention{MaxCount: 10}, 90, 91},
		{"count one chunk exactly", 14, 7, Retention{MaxCount: 7}, 7, 8},
		{"age keeps young", 20, 3, Retention{MaxAge: time.Hour}, 0, 1},
		{"age deletes old", 20, 3, Retention{MaxAge: time.Nanosecond}, 20, 0},
		{"count and age: count wins", 20, 3, Retention{MaxCount: 4, MaxAge: time.Hour}, 16, 17},
		{"count and age: age wins", 20, 3, Retention{MaxCount: 4, MaxAge: time.Nanosecond}, 20, 0},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sdsn := dsn
			if i > 0 {
				sdsn = dsnFor(t, dsn)
			}
			s := mustOpen(t, sdsn, Options{TrimChunk: c.chunk})
			var msgs []Message
			for j := 1; j <= c.stored; j++ {
				msgs = append(msgs, msg(fmt.Sprint(j), fmt.Sprint("c", j)))
			}
			appendOK(t, s, msgs...)
			n, err := s.Trim(testCtx(t, 30*time.Second), c.r)
			if err != nil || n != c.wantDeleted {
				t.Fatalf("Trim = %d, %v; want %d", n, err, c.wantDeleted)
			}
			recs := readAll(t, s)
			if int64(len(recs)) != int64(c.stored)-c.wantDeleted {
				t.Fatalf("%d records kept, want %d", len(recs), int64(c.stored)-c.wantDeleted)
			}
			if len(recs) > 0 && recs[0].Offset != c.wantFirst {
				t.Fatalf("oldest kept is %d, want %d", recs[0].Offset, c.wantFirst)
			}
			// Trimming again finds nothing more.
			if n, err := s.Trim(testCtx(t, 30*time.Second), c.r); err != nil || n != 0 {
				t.Fatalf("second Trim = %d, %v; want 0", n, err)
			}
		})
	}
}

// testTrimWhileAppending trims by count in small chunks while appends go on:
// no error on either side, and the newest messages are kept.
func testTrimWhileAppending(t *testing.T, dsn string) {
	s := mustOpen(t, dsn, Options{TrimChunk: 5})
	ctx := testCtx(t, 60*time.Second)
	const keep, writers, perWriter = 20, 3, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	stop := make(chan struct{})
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				if _, err := s.Append(ctx, []Message{msg(fmt.Sprint(g, "-", i), ""), msg(`x`, "")}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	trimmerDone := make(chan struct{})
	go func() {
		defer close(trimmerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Trim(ctx, Retention{MaxCount: keep}); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-trimmerDone
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := s.Trim(ctx, Retention{MaxCount: keep}); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, s)
	total := int64(writers * perWriter * 2)
	if len(recs) != keep || recs[0].Offset != total-keep+1 || recs[len(recs)-1].Offset != total {
		t.Fatalf("kept offsets %v, want the newest %d of %d", offsets(recs), keep, total)
	}
}

// testConcurrentAppend calls Append from several goroutines (and two Store
// instances on the same database): every offset is handed out once, they
// are dense, and each batch's offsets are consecutive.
func testConcurrentAppend(t *testing.T, dsn string) {
	stores := []Store{mustOpen(t, dsn, Options{}), mustOpen(t, dsn, Options{})}
	ctx := testCtx(t, 60*time.Second)
	const goroutines, batches = 6, 25
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%len(stores)]
			for b := 0; b < batches; b++ {
				n := 1 + (g+b)%4
				var msgs []Message
				for i := 0; i < n; i++ {
					msgs = append(msgs, msg(fmt.Sprintf(`"%d-%d-%d"`, g, b, i), fmt.Sprintf("%d-%d-%d", g, b, i)))
				}
				res, err := s.Append(ctx, msgs)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, r := range res {
					if r.Duplicate || r.Offset != res[0].Offset+int64(i) {
						t.Errorf("batch offsets not consecutive: %+v", res)
					}
					if prev, ok := seen[r.Offset]; ok {
						t.Errorf("offset %d given to %s and %s", r.Offset, prev, msgs[i].ClientOffset)
					}
					seen[r.Offset] = msgs[i].ClientOffset
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	recs := readAll(t, stores[0])
	if len(recs) != len(seen) {
		t.Fatalf("stored %d, acknowledged %d", len(recs), len(seen))
	}
	for i, r := range recs {
		if r.Offset != int64(i+1) || seen[r.Offset] != r.ClientOffset {
			t.Fatalf("record %d: offset %d client offset %q; acknowledged %q", i, r.Offset, r.ClientOffset, seen[r.Offset])
		}
	}
}

// testConcurrentSubmitters runs many submitters on one Writer: every
// callback is called exactly once, on one goroutine at a time, with new
// messages in strictly increasing offset order, and every acknowledged
// message is stored once. Some submissions repeat a client offset.
func testConcurrentSubmitters(t *testing.T, dsn string) {
	s := mustOpen(t, dsn, Options{})
	w := NewWriter(s, WriterOptions{MaxBatch: 16})
	const submitters, each = 8, 60
	var (
		mu       sync.Mutex // only to hand the data to the test goroutine; callbacks run on one goroutine
		calls    = map[string]int{}
		order    []int64
		byClient = map[string]int64{}
		inFlight int
		wg       sync.WaitGroup
	)
	wg.Add(submitters * each)
	for g := 0; g < submitters; g++ {
		go func() {
			for i := 0; i < each; i++ {
				co := fmt.Sprintf("%d-%d", g, i)
				if i%10 == 9 {
					co = fmt.Sprintf("%d-%d", g, i-1) // a retry of the previous message
				}
				id := fmt.Sprintf("%d-%d#%d", g, i, i)
				w.Submit(msg(`"`+co+`"`, co), func(r Result, err error) {
					defer wg.Done()
					mu.Lock()
					defer mu.Unlock()
					inFlight++
					if inFlight != 1 {
						t.Errorf("callbacks run concurrently")
					}
					defer func() { inFlight-- }()
					calls[id]++
					if err != nil {
						t.Errorf("callback for %s: %v", co, err)
						return
					}
					if prev, ok := byClient[co]; ok {
						if !r.Duplicate || r.Offset != prev {
							t.Errorf("resubmitted %s: %+v, first stored at %d", co, r, prev)
						}
						return
					}
					if r.Duplicate {
						// A retry is submitted after its first copy, by the
						// same goroutine, so it is committed no earlier.
						t.Errorf("first submission of %s reported duplicate", co)
						return
					}
					byClient[co] = r.Offset
					if len(order) > 0 && r.Offset <= order[len(order)-1] {
						t.Errorf("offset %d after %d in callback order", r.Offset, order[len(order)-1])
					}
					order = append(order, r.Offset)
				})
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("not every callback was called within 60s")
	}
	if err := w.Close(testCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range calls {
		if n != 1 {
			t.Errorf("callback %s called %d times", id, n)
		}
	}
	if len(calls) != submitters*each {
		t.Errorf("%d callbacks, want %d", len(calls), submitters*each)
	}
	recs := readAll(t, s)
	if len(recs) != len(byClient) {
		t.Fatalf("stored %d messages, acknowledged %d distinct", len(recs), len(byClient))
	}
	for _, r := range recs {
		if byClient[r.ClientOffset] != r.Offset {
			t.Fatalf("stored %s at %d, acknowledged at %d", r.ClientOffset, r.Offset, byClient[r.ClientOffset])
		}
	}
	st := w.Stats()
	t.Logf("%d messages in %d batches", st.Messages, st.Batches)
	if st.Messages != submitters*each {
		t.Errorf("Stats().Messages = %d, want %d", st.Messages, submitters*each)
	}
}

func testReopen(t *testing.T, dsn string) {
	s, err := Open(testCtx(t, 30*time.Second), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendOK(t, s, msg(`1`, "a"), msg(`2`, "b"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dsn, Options{}) // the migration finds nothing to do
	if got := payloads(readAll(t, s)); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("after reopen: %v", got)
	}
	res := appendOK(t, s, msg(`1`, "a"), msg(`3`, "c"))
	if !res[0].Duplicate || res[0].Offset != 1 || res[1].Offset != 3 {
		t.Fatalf("after reopen: %+v", res)
	}
}

// testConcurrentOpen opens one new history from several goroutines at once:
// the migrations serialize and every Open succeeds.
func testConcurrentOpen(t *testing.T, dsn string) {
	const n = 4
	stores := make([]Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(testCtx(t, 30*time.Second), dsn, Options{})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	for i, s := range stores {
		appendOK(t, s, msg(fmt.Sprint(i), ""))
	}
	if recs := readAll(t, stores[0]); len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
}

func testClosed(t *testing.T, dsn string) {
	s, err := Open(testCtx(t, 30*time.Second), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendOK(t, s, msg(`1`, ""))
	w := NewWriter(s, WriterOptions{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := testCtx(t, 10*time.Second)
	ops := map[string]func() error{
		"Append":     func() error { _, err := s.Append(ctx, []Message{msg(`2`, "")}); return err },
		"After":      func() error { _, err := s.After(ctx, 0, 10); return err },
		"Last":       func() error { _, err := s.Last(ctx, 10); return err },
		"LastOffset": func() error { _, err := s.LastOffset(ctx); return err },
		"Trim":       func() error { _, err := s.Trim(ctx, Retention{MaxCount: 1}); return err },
		"Writer": func() error {
			_, err := submitWait(t, w, msg(`3`, ""))
			return err
		},
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := submitWait(t, w, msg(`4`, "")); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Writer.Close: %v, want ErrClosed", err)
	}
}

// testCloseWhileWriting closes the store under a busy Writer: every callback
// is called once, with a result or an error, and nothing panics; whatever was
// acknowledged is stored.
func testCloseWhileWriting(t *testing.T, dsn string) {
	s, err := Open(testCtx(t, 30*time.Second), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(s, WriterOptions{MaxBatch: 8})
	const n = 400
	var (
		mu    sync.Mutex
		acked = map[string]int64{}
		calls int
		wg    sync.WaitGroup
	)
	wg.Add(n)
	for i := 0; i < n; i++ {
		co := fmt.Sprint("c", i)
		w.Submit(msg(`1`, co), func(r Result, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			calls++
			if err == nil {
				acked[co] = r.Offset
			}
		})
		if i == n/4 {
			go s.Close()
		}
	}
	wg.Wait()
	if err := w.Close(testCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if calls != n {
		t.Fatalf("%d callbacks, want %d", calls, n)
	}
	s.Close()
	s = mustOpen(t, dsn, Options{})
	recs := readAll(t, s)
	stored := map[string]int64{}
	for _, r := range recs {
		stored[r.ClientOffset] = r.Offset
	}
	for co, off := range acked {
		if stored[co] != off {
			t.Fatalf("acknowledged %s at %d, stored at %d", co, off, stored[co])
		}
	}
	t.Logf("%d of %d acknowledged before the store closed; %d stored", len(acked), n, len(recs))
}

// TestTrimAlgorithm checks the retention loop against a fake store with
// times that are not monotonic in offset: age trimming stops at the first
// young message.
func TestTrimAlgorithm(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	minutes := func(ms ...int) []stamped {
		var out []stamped
		for i, m := range ms {
			out = append(out, stamped{offset: int64(i + 1), time: base.Add(time.Duration(m) * time.Minute)})
		}
		return out
	}
	now := base.Add(100 * time.Minute)
	cases := []struct {
		name  string
		rows  []stamped
		r     Retention
		chunk int
		want  int64 // deleted
	}{
		{"age prefix", minutes(0, 10, 20, 95, 96), Retention{MaxAge: 30 * time.Minute}, 2, 3},
		{"age stops at a young one", minutes(0, 90, 10, 20), Retention{MaxAge: 30 * time.Minute}, 10, 1},
		{"count beats young", minutes(0, 90, 10, 95), Retention{MaxCount: 1, MaxAge: 30 * time.Minute}, 10, 3},
		{"age after count", minutes(0, 90, 10, 20), Retention{MaxCount: 1, MaxAge: 30 * time.Minute}, 10, 4},
		{"nothing", minutes(99, 99), Retention{MaxAge: 30 * time.Minute}, 1, 0},
		{"empty", nil, Retention{MaxCount: 1, MaxAge: time.Minute}, 3, 0},
		{"count exact chunks", minutes(1, 2, 3, 4, 5, 6, 7), Retention{MaxCount: 1}, 3, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeTrimmer{rows: append([]stamped(nil), c.rows...)}
			got, err := trim(context.Background(), f, c.r, c.chunk, now)
			if err != nil || got != c.want {
				t.Fatalf("trim = %d, %v; want %d", got, err, c.want)
			}
			if f.maxDeleted > int64(c.chunk) {
				t.Fatalf("deleted %d in one transaction, chunk is %d", f.maxDeleted, c.chunk)
			}
		})
	}
}

type fakeTrimmer struct {
	rows       []stamped
	maxDeleted int64
}

func (f *fakeTrimmer) nthNewest(_ context.Context, n int64) (int64, bool, error) {
	if int64(len(f.rows)) < n {
		return 0, false, nil
	}
	return f.rows[int64(len(f.rows))-n].offset, true, nil
}

func (f *fakeTrimmer) oldest(_ context.Context, n int) ([]stamped, error) {
	return f.rows[:min(n, len(f.rows))], nil
}

func (f *fakeTrimmer) deleteThrough(_ context.Context, off int64) (int64, error) {
	var n int64
	for len(f.rows) > 0 && f.rows[0].offset <= off {
		f.rows = f.rows[1:]
		n++
	}
	f.maxDeleted = max(f.maxDeleted, n)
	return n, nil
}

func TestAttachmentsCodec(t *testing.T) {
	cases := [][][]byte{nil, {{}}, {{1}}, {{1, 2}, {}, bytes.Repeat([]byte{3}, 300)}}
	for _, atts := range cases {
		got, err := decodeAttachments(encodeAttachments(atts))
		if err != nil || len(got) != len(atts) {
			t.Fatalf("round trip of %d attachments: %d, %v", len(atts), len(got), err)
		}
		for i := range atts {
			if !bytes.Equal(got[i], atts[i]) {
				t.Fatalf("attachment %d differs", i)
			}
		}
	}
	for _, bad := range [][]byte{{}, {5, 1}, {0x80}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}} {
		if _, err := decodeAttachments(bad); err == nil {
			t.Errorf("decodeAttachments(%x) accepted a corrupt value", bad)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDB := dir + "/notdb.db"
	if err := os.WriteFile(notDB, bytes.Repeat([]byte("this is not a database "), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, dsn, want string
	}{
		{"missing directory", dir + "/missing/chat.db", "open history " + dir + "/missing/chat.db: "},
		{"not a database", notDB, "open history " + notDB + ": "},
		{"empty name", "", "open history: "},
		{"postgres unreachable", "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2", "open history postgres://u:xxxxx@127.0.0.1:1/db?connect_timeout=2: "},
		{"postgres bad url", "postgres://u:secret@[::1/x", "open history postgres://…: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(testCtx(t, 30*time.Second), c.dsn, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %q does not start with %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error %q shows the password", err)
			}
			t.Log(err)
		})
	}
}
