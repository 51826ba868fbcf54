package main

import (
	"bytes"
	"image/png"
	"strings"
	"testing"

	"github.com/chatio/socketio-chat/bench/internal/result"
)

func testRun() *Run {
	pt := func(rate float64, p99 float64, complete bool, cpu float64) result.Point {
		p := result.Point{Rate: rate, Senders: 10, Receivers: 1000, OfferedPerSec: rate * 1000, P99Ms: p99,
			Complete: complete, Expected: 100, Delivered: 100, ServerCPUPerDeliveryUs: cpu}
		if !complete {
			p.Delivered, p.Lost = 90, 10
		}
		return p
	}
	return &Run{Scenarios: []result.Scenario{
		{Name: "sweep", Server: "go", Clients: 1000, Points: []result.Point{pt(25, 5, true, 10), pt(50, 8, true, 9), pt(100, 40, true, 8)}},
		{Name: "sweep", Server: "node", Clients: 1000, Points: []result.Point{pt(25, 6, true, 16), pt(50, 120, true, 16), pt(100, 3000, false, 17)}},
		{Name: "idle", Server: "go", RSS0KB: 10000, Ramps: []result.Ramp{{To: 5000, PerSec: 6000}}, Idle: []result.Idle{{Clients: 5000, PerConnKB: 8}}},
		{Name: "idle", Server: "node", RSS0KB: 50000, Ramps: []result.Ramp{{To: 5000, PerSec: 3000}}, Idle: []result.Idle{{Clients: 4998, PerConnKB: 17}}},
	}}
}

func TestSummarize(t *testing.T) {
	rows := summarize(testRun())
	get := func(prefix string) Row {
		for _, r := range rows {
			if strings.HasPrefix(r.Metric, prefix) {
				return r
			}
		}
		t.Fatalf("no row %q", prefix)
		return Row{}
	}
	r := get("sustained deliveries/s")
	if *r.Go != 100000 || *r.Node != 25000 || *r.Ratio != 4 || !*r.Met || r.Note == "" {
		t.Errorf("sustained row %+v (go %v node %v)", r, *r.Go, *r.Node)
	}
	r = get("RSS per idle WebSocket connection at 5000")
	if *r.Ratio > 0.48 || *r.Ratio < 0.46 || !*r.Met {
		t.Errorf("RSS row ratio %v met %v", *r.Ratio, *r.Met)
	}
	r = get("connection setup rate")
	if *r.Ratio != 2 || !*r.Met {
		t.Errorf("connect row ratio %v", *r.Ratio)
	}
	r = get("lost (not delivered")
	if *r.Go != 0 || *r.Node != 10 || !*r.Met {
		t.Errorf("integrity row go %v node %v", *r.Go, *r.Node)
	}
	var buf bytes.Buffer
	printTable(&buf, &Run{Summary: rows})
	writeMarkdown(&buf, testRun())
	if !strings.Contains(buf.String(), "4.00×") {
		t.Errorf("table lacks the ratio:\n%s", buf.String())
	}
}

func TestSweepPlot(t *testing.T) {
	for _, run := range []*Run{testRun(), {}} {
		b, err := sweepPlot(run)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if s := img.Bounds().Size(); s.X != 960 || s.Y != 680 {
			t.Fatalf("plot is %v", s)
		}
	}
}

func TestNumbers(t *testing.T) {
	for v, want := range map[float64]string{250000: "250K", 1.5e6: "1.5M", 100: "100", 0.1: "0.1", 0: "0"} {
		if got := shortNumber(v); got != want {
			t.Errorf("shortNumber(%v) = %q, want %q", v, got, want)
		}
	}
	for raw, want := range map[float64]float64{3: 5, 21000: 50000, 100: 100, 0.7: 1} {
		if got := niceStep(raw); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", raw, got, want)
		}
	}
	if got := num(ptr(1234567.0)); got != "1 234 567" {
		t.Errorf("num = %q", got)
	}
}
