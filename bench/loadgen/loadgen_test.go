package main

import (
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"
)

func TestTextRoundTrip(t *testing.T) {
	for _, size := range []int{0, 10, 64, 1024} {
		m := message{point: 3, sender: 9, seq: 12345, sentNs: 987654321012}
		text := appendText(nil, m, size)
		if len(text) < size {
			t.Errorf("size %d: text is %d bytes", size, len(text))
		}
		got, ok := parseText(text)
		if !ok || got != m {
			t.Errorf("size %d: parseText(%q) = %+v, %v; want %+v", size, text, got, ok, m)
		}
	}
	for _, bad := range []string{"", "1.2.3", "a.b.c.d", "1..2.3", "1.2.3.x"} {
		if _, ok := parseText([]byte(bad)); ok {
			t.Errorf("parseText(%q) accepted", bad)
		}
	}
}

func TestHistogramPercentiles(t *testing.T) {
	var l latencies
	for v := int64(1); v <= 100000; v++ { // uniform 1 µs … 100 ms
		l.add(int(v), v)
	}
	q := l.percentiles(0.5, 0.99, 1)
	for i, want := range []float64{50000, 99000, 100000} {
		if math.Abs(q[i]-want)/want > 0.035 {
			t.Errorf("quantile %d = %.0f, want %.0f ± 3.5%%", i, q[i], want)
		}
	}
	if l.max.Load() != 100000 {
		t.Errorf("max = %d", l.max.Load())
	}
	for i := 0; i < histBuckets-1; i++ {
		if histIndex(histUpper(i)) != i || histIndex(histUpper(i)+1) != i+1 {
			t.Fatalf("bucket %d: upper %d maps to %d", i, histUpper(i), histIndex(histUpper(i)))
		}
	}
}

func TestRecordCountsDupsAndReordering(t *testing.T) {
	ps := newPointStats(2, 1)
	rs := newRecvState(2)
	for _, d := range []struct {
		sender int
		seq    int64
	}{{0, 0}, {0, 1}, {1, 0}, {0, 3}, {0, 2}, {0, 2}, {1, 200}} {
		ps.record(rs, 0, d.sender, d.seq, 0, 1000)
	}
	if u, dup, re := ps.unique.Load(), ps.dups.Load(), ps.reordered.Load(); u != 6 || dup != 1 || re != 1 {
		t.Fatalf("unique %d dup %d reordered %d, want 6 1 1", u, dup, re)
	}
}

func TestParseSources(t *testing.T) {
	ips, err := parseSources("127.0.0.1-3,127.0.0.9")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ip := range ips {
		got = append(got, ip.String())
	}
	if want := "[127.0.0.1 127.0.0.2 127.0.0.3 127.0.0.9]"; fmtSlice(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	for _, bad := range []string{"x", "127.0.0.5-2", "127.0.0.1-300"} {
		if _, err := parseSources(bad); err == nil {
			t.Errorf("parseSources(%q) accepted", bad)
		}
	}
}

func fmtSlice(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out + "]"
}

func TestOrderCheck(t *testing.T) {
	type msg struct {
		sender int
		seq    int64
	}
	a := []msg{{0, 0}, {1, 0}, {0, 1}, {1, 1}}
	b := []msg{{1, 0}, {0, 0}, {0, 1}, {1, 1}} // same messages, another order
	for _, tc := range []struct {
		name                            string
		seqs                            [][]msg
		differs, groups, incompleteWant int
	}{
		{"all agree", [][]msg{a, a, a}, 0, 1, 0},
		{"one differs", [][]msg{a, b, a}, 1, 2, 0},
		{"majority is the reference", [][]msg{b, a, b, b}, 1, 2, 0},
		{"a receiver that missed a message is left out", [][]msg{a, a, a[:3]}, 0, 1, 1},
		{"every receiver its own order", [][]msg{a, b, {{0, 0}, {0, 1}, {1, 0}, {1, 1}}}, 2, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := newPointStats(2, len(tc.seqs))
			var idx []int
			for r, seq := range tc.seqs {
				rs := newRecvState(2)
				for _, m := range seq {
					ps.record(rs, r, m.sender, m.seq, 0, 1000)
				}
				ps.record(rs, r, seq[0].sender, seq[0].seq, 0, 1000) // a duplicate does not change the sequence
				idx = append(idx, r)
			}
			d, g, inc := ps.orderCheck(idx, int64(len(a)))
			if d != tc.differs || g != tc.groups || inc != tc.incompleteWant {
				t.Errorf("orderCheck = differs %d, groups %d, incomplete %d; want %d, %d, %d", d, g, inc, tc.differs, tc.groups, tc.incompleteWant)
			}
		})
	}
}

func TestSearcher(t *testing.T) {
	// run drives a searcher against a server that sustains every rate up to limit.
	run := func(ladder []float64, refine int, limit float64) (tried []float64, best float64) {
		s := &searcher{ladder: ladder, min: 2, refine: refine}
		for {
			r, ok := s.nextRate()
			if !ok {
				return tried, s.pass
			}
			if len(tried) > 20 {
				t.Fatalf("search does not end: %v", tried)
			}
			tried = append(tried, r)
			s.report(r, r <= limit)
		}
	}
	ladder := []float64{25, 50, 100, 200, 400}
	for _, tc := range []struct {
		limit  float64
		refine int
		tried  []float64
		best   float64
	}{
		{130, 3, []float64{25, 50, 100, 200, 150, 125, 138}, 125},
		{1000, 3, []float64{25, 50, 100, 200, 400}, 400},
		{30, 2, []float64{25, 50, 37.5, 31.3}, 25},
		{15, 2, []float64{25, 12.5, 18.8, 15.7}, 12.5},
		{1, 2, []float64{25, 12.5, 6.25, 3.13}, 0}, // nothing passes down to -search-min
		{130, 0, []float64{25, 50, 100, 200}, 100},
	} {
		tried, best := run(ladder, tc.refine, tc.limit)
		if fmt.Sprint(tried) != fmt.Sprint(tc.tried) || best != tc.best {
			t.Errorf("limit %g refine %d: tried %v, best %g; want %v, %g", tc.limit, tc.refine, tried, best, tc.tried, tc.best)
		}
	}
}

func TestMaxPointsCoversTheSearch(t *testing.T) {
	cfg := &config{search: true, rates: []float64{25, 50, 100, 200, 400}, refine: 3, searchMin: 2}
	s := &searcher{ladder: cfg.rates, min: cfg.searchMin, refine: cfg.refine}
	n := 0
	for {
		r, ok := s.nextRate()
		if !ok {
			break
		}
		n++
		s.report(r, false) // the worst case: every point fails, halving to the floor
	}
	if n > cfg.maxPoints() {
		t.Fatalf("%d points, maxPoints %d", n, cfg.maxPoints())
	}
}

// TestOrderCheckNamespaces: with -namespaces, receivers are compared with
// the others of their namespace only, against what that namespace's
// senders sent.
func TestOrderCheckNamespaces(t *testing.T) {
	cfg := &config{namespaces: 2}
	// Senders 0 and 1 (clients 0 and 1) in namespaces 0 and 1; receivers
	// 0, 2 in namespace 0 and 1, 3 in namespace 1.
	ps := newPointStats(2, 4)
	ps.nspIndex = cfg.nspIndex
	ps.senderNsp = []int{0, 1}
	ps.sentBy = []int64{2, 3}
	seqs := map[int][][2]int64{
		0: {{0, 0}, {0, 1}},
		2: {{0, 0}, {0, 1}},
		1: {{1, 0}, {1, 1}, {1, 2}},
		3: {{1, 1}, {1, 0}, {1, 2}}, // another order than receiver 1's
	}
	for r, seq := range seqs {
		rs := newRecvState(2)
		for _, m := range seq {
			ps.record(rs, r, int(m[0]), m[1], 0, 1000)
		}
	}
	d, g, inc := ps.orderCheckNsp([]int{0, 1, 2, 3})
	if d != 1 || g != 3 || inc != 0 {
		t.Errorf("orderCheckNsp = differs %d, groups %d, incomplete %d; want 1, 3, 0", d, g, inc)
	}
	if got := []string{cfg.nspOf(0), cfg.nspOf(3), (&config{}).nspOf(3)}; fmt.Sprint(got) != "[/n0 /n1 /]" {
		t.Errorf("nspOf = %q", got)
	}
}

// TestUntilQuiet: the mass disconnect's measurement ends disconnectQuiet
// after the server's CPU last rose, and reports that sample; a server that
// never goes quiet is given up on after disconnectMax.
func TestUntilQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		busy := 500 * time.Millisecond
		cpuAt := func(el time.Duration) time.Duration { // one tick every 10 ms while busy
			return min(el, busy) / (10 * time.Millisecond) * (10 * time.Millisecond)
		}
		sample := sampler(t0, cpuAt)
		s0, _ := sample()
		last, err := untilQuiet(t.Context(), s0, t0, sample)
		if err != nil {
			t.Fatal(err)
		}
		if got := last.at.Sub(t0); got != busy {
			t.Errorf("last busy sample at %v, want %v", got, busy)
		}
		if last.cpu != busy {
			t.Errorf("CPU %v, want %v", last.cpu, busy)
		}
		if got := time.Since(t0); got != busy+disconnectQuiet {
			t.Errorf("returned after %v, want %v", got, busy+disconnectQuiet)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		sample := sampler(t0, func(el time.Duration) time.Duration { return el }) // never quiet
		s0, _ := sample()
		last, err := untilQuiet(t.Context(), s0, t0, sample)
		if err != nil {
			t.Fatal(err)
		}
		if got := last.at.Sub(t0); got != disconnectMax {
			t.Errorf("gave up at %v, want %v", got, disconnectMax)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s0 := procSample{at: t0, cpu: time.Second}
		idle := func(time.Duration) time.Duration { return time.Second } // idle throughout
		last, err := untilQuiet(t.Context(), s0, t0, sampler(t0, idle))
		if err != nil || last != s0 {
			t.Errorf("idle server: %+v, %v; want s0", last, err)
		}
		if got := time.Since(t0); got != disconnectQuiet {
			t.Errorf("returned after %v, want %v", got, disconnectQuiet)
		}
	})
}

// sampler samples a server whose CPU, el after t0, is cpu(el).
func sampler(t0 time.Time, cpu func(el time.Duration) time.Duration) func() (procSample, error) {
	return func() (procSample, error) {
		now := time.Now()
		return procSample{at: now, cpu: cpu(now.Sub(t0))}, nil
	}
}
