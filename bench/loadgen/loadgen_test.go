package main

import (
	"math"
	"testing"
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
	ps := &pointStats{senders: 2}
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
