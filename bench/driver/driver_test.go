package main

import (
	"bytes"
	"image/png"
	"math"
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
	withOrder := func(p result.Point, differs int) result.Point { p.OrderDiffers, p.OrderGroups = differs, 2; return p }
	return &Run{Compared: "go", SweepVariants: []string{"go+recovery", "go+redis"},
		Variants: map[string]string{"recovery": "-recovery 2m", "redis": "-redis redis://127.0.0.1:6379/12"},
		CPURates: []CPURate{{Rate: 25, DeliveriesPerSec: 25000, Label: "25 000 deliveries/s"}, {Rate: 31.3, DeliveriesPerSec: 31300, Label: "Node's highest sustained rate, 31 300 deliveries/s"}},
		Scenarios: []result.Scenario{
			{Name: "sweep", Server: "go", Clients: 1000, Points: []result.Point{pt(25, 5, true, 10), pt(50, 8, true, 9), pt(100, 40, true, 8), pt(200, 300, true, 8), pt(150, 90, true, 8)}},
			{Name: "sweep", Server: "node", Clients: 1000, Points: []result.Point{pt(25, 6, true, 16), pt(50, 120, false, 16), withOrder(pt(37.5, 90, true, 17), 3)}},
			{Name: "sweep", Server: "go+recovery", Clients: 1000, Points: []result.Point{pt(25, 5, true, 10), pt(50, 8, true, 9), pt(100, 40, true, 8), pt(200, 300, true, 8), pt(150, 200, true, 8), pt(125, 50, true, 8)}},
			{Name: "sweep", Server: "go+redis", Clients: 1000, Points: []result.Point{pt(25, 5, true, 10), pt(50, 8, true, 9), withOrder(pt(100, 40, true, 8), 2)}},
			{Name: "cpu", Server: "go", Clients: 1000, Points: []result.Point{pt(25, 5, true, 6), pt(31.3, 5, true, 5)}},
			{Name: "cpu", Server: "node", Clients: 1000, Points: []result.Point{pt(25, 5, true, 16), pt(31.3, 50, true, 15)}},
			{Name: "cpu", Server: "floor", Clients: 1000, Points: []result.Point{pt(25, 5, true, 5), pt(31.3, 5, true, 2.5)}},
			{Name: "fanout", Server: "go", Clients: 10000, Points: []result.Point{pt(5, 20, true, 3)}},
			{Name: "fanout", Server: "node", Clients: 10000, Points: []result.Point{pt(5, 200, true, 9)}},
			{Name: "fanout", Server: "floor", Clients: 10000, Points: []result.Point{pt(5, 10, true, 2.4)}},
			{Name: "idle", Server: "go", RSS0KB: 10000, Ramps: []result.Ramp{{To: 5000, PerSec: 6000, ServerCPUS: 0.3}, {From: 5000, To: 18000, PerSec: 7000, ServerCPUS: 0.91}},
				Idle:       []result.Idle{{Clients: 5000, PerConnKB: 8, RSSKB: 50000, SlopeKB: 8}, {Clients: 18000, PerConnKB: 7, RSSKB: 50000 + 13000*6, SlopeKB: 6}},
				Disconnect: &result.Disconnect{Clients: 18000, ServerCPUS: 0.72}},
			{Name: "idle", Server: "node", RSS0KB: 50000, Ramps: []result.Ramp{{To: 5000, PerSec: 3000, ServerCPUS: 1.5, Missing: 2}, {From: 5000, To: 18000, PerSec: 3500, ServerCPUS: 3.24975, Missing: 1}},
				Idle:       []result.Idle{{Clients: 4998, PerConnKB: 17, RSSKB: 135000, SlopeKB: 17}, {Clients: 17999, PerConnKB: 15, RSSKB: 330000, SlopeKB: 15}},
				Disconnect: &result.Disconnect{Clients: 17999, ServerCPUS: 1.79990}},
			{Name: "polling", Server: "go", Transport: "polling", Points: []result.Point{pt(10, 60, true, 100)}},
			{Name: "polling", Server: "node", Transport: "polling", Points: []result.Point{pt(10, 50, true, 80)}},
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
	r := get("sustained deliveries/s, all")
	if *r.Go != 150000 || *r.Node != 37500 || *r.Ratio != 4 || *r.Met || r.Target != "≥ 10×" || r.Note != "" {
		t.Errorf("sustained row %+v (go %v node %v)", r, *r.Go, *r.Node)
	}
	r = get("sustained deliveries/s with `-recovery 2m`")
	if *r.Go != 125000 || r.Node != nil || *r.Ratio < 0.83 || *r.Ratio > 0.84 || !*r.Met || r.RatioOf != "go" {
		t.Errorf("recovery row %+v (go %v)", r, *r.Go)
	}
	r = get("sustained deliveries/s with `-redis")
	if *r.Go != 100000 || *r.Met || !strings.Contains(r.Note, "passed the sweep's top point") {
		t.Errorf("redis row %+v (go %v)", r, *r.Go)
	}
	r = get("sweep 50 msg/s: p99")
	if *r.Go != 8 || *r.Node != 120 {
		t.Errorf("sweep p99 row %+v", r)
	}
	for _, r := range rows {
		if strings.HasPrefix(r.Metric, "sweep 37.5") || strings.HasPrefix(r.Metric, "sweep 150") {
			t.Errorf("row for a rate only one server ran: %q", r.Metric)
		}
	}
	r = get("server CPU per delivery at 25 000 deliveries/s")
	if *r.Go != 6 || *r.Node != 16 || !*r.Met || r.Target != "≤ 0.5×" {
		t.Errorf("cpu row %+v", r)
	}
	r = get("server CPU per delivery at Node's highest")
	if *r.Ratio != 5.0/15 || !*r.Met {
		t.Errorf("cpu row at Node's rate %+v", r)
	}
	if r.Floor == nil || *r.Floor != 2.5 {
		t.Errorf("cpu row at Node's rate: floor %v, want 2.5", r.Floor)
	}
	// Ours against the floor: a row of its own, with the target.
	r = get("server CPU per delivery at 25 000 deliveries/s, against the floor")
	if *r.Go != 6 || *r.Floor != 5 || *r.Ratio != 1.2 || !*r.Met || r.RatioOf != "floor" || r.Target != "≤ 1.5× floor" || !strings.Contains(r.Note, "Node/floor 3.20×") {
		t.Errorf("cpu floor row %+v", r)
	}
	r = get("server CPU per delivery at Node's highest sustained rate, 31 300 deliveries/s, against the floor")
	if *r.Ratio != 2 || *r.Met {
		t.Errorf("cpu floor row at Node's rate %+v", r)
	}
	r = get("fan-out 10000 clients, 5 msg/s: server CPU per delivery, against the floor")
	if *r.Ratio != 1.25 || !*r.Met || *r.Node != 9 {
		t.Errorf("fan-out floor row %+v", r)
	}
	r = get("RSS per idle WebSocket connection at 5000")
	if *r.Ratio > 0.48 || *r.Ratio < 0.46 || *r.Met || r.Target != "≤ 0.25×" {
		t.Errorf("RSS row ratio %v met %v", *r.Ratio, *r.Met)
	}
	r = get("RSS per idle WebSocket connection at 18000")
	if *r.Go != 7 || *r.Node != 15 {
		t.Errorf("RSS row at 18000 %+v", r)
	}
	r = get("RSS per idle WebSocket connection added, 5000 → 18000")
	if *r.Go != 6 || *r.Node != 15 {
		t.Errorf("slope row %+v", r)
	}
	r = get("projected RSS at 1 000 000")
	if want := (128000 + 6*982000.0) / (1 << 20); math.Abs(*r.Go-want) > 1e-9 {
		t.Errorf("projection %v GB, want %v", *r.Go, want)
	}
	if r.Target != "≤ 2.5 GB" || r.Met == nil || *r.Met {
		t.Errorf("projection row %+v: want the 2.5 GB target, missed", r)
	}
	r = get("new connections per second (0 → 5000")
	if *r.Ratio != 2 || *r.Met || r.Target != "≥ 3×" {
		t.Errorf("connect row ratio %v", *r.Ratio)
	}
	// CPU per connect: the ramp's server CPU over the clients it connected.
	r = get("server CPU per connect (5000 → 18000)")
	if math.Abs(*r.Go-70) > 1e-9 || math.Abs(*r.Node-250) > 1e-9 || r.Target != "" || r.Met != nil {
		t.Errorf("CPU per connect row %+v (go %v node %v)", r, *r.Go, *r.Node)
	}
	r = get("server CPU per connect (0 → 5000)")
	if math.Abs(*r.Go-60) > 1e-9 || math.Abs(*r.Node-1.5e6/4998) > 1e-9 {
		t.Errorf("CPU per connect row, first ramp: go %v node %v", *r.Go, *r.Node)
	}
	r = get("server CPU per disconnect, 18000 clients leaving at once")
	if math.Abs(*r.Go-40) > 1e-9 || math.Abs(*r.Node-100) > 1e-9 || math.Abs(*r.Ratio-0.4) > 1e-9 || r.Met != nil {
		t.Errorf("CPU per disconnect row %+v (go %v node %v)", r, *r.Go, *r.Node)
	}
	r = get("polling clients: server CPU")
	if r.Target != "≤ 0.5×" {
		t.Errorf("polling CPU row %+v", r)
	}
	r = get("polling clients: p99")
	if r.Target != "≤ 1×" || *r.Met {
		t.Errorf("polling p99 row %+v", r)
	}
	r = get("lost (not delivered")
	if *r.Go != 0 || *r.Node != 10 || !*r.Met {
		t.Errorf("integrity row go %v node %v", *r.Go, *r.Node)
	}
	r = get("receivers whose sequence differs")
	if *r.Go != 2 || *r.Node != 3 || *r.Met {
		t.Errorf("order row go %v node %v (the variants count for Go)", *r.Go, *r.Node)
	}
	var buf bytes.Buffer
	printTable(&buf, &Run{Summary: rows})
	writeMarkdown(&buf, testRun())
	for _, want := range []string{"4.00×", "order ≠", "1 000 000 connections would take", "| floor |", "≤ 1.5× floor"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
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

func TestLabels(t *testing.T) {
	vs := defaultVariants("redis://127.0.0.1:6379/12")
	if err := vs.set("gc400=-gogc 400"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		label, flags    string
		redis, goServer bool
	}{
		{"go", "", false, true},
		{"node", "", false, false},
		{"floor", "", false, false},
		{"go+recovery", "-recovery 2m", false, true},
		{"go@HEAD+recovery+redis", "-recovery 2m -redis redis://127.0.0.1:6379/12 -redis-prefix", true, true},
		{"go+gc400", "-gogc 400", false, true},
	} {
		l, err := parseLabel(tc.label)
		if err != nil {
			t.Fatalf("%s: %v", tc.label, err)
		}
		f, err := vs.flags(l)
		if err != nil {
			t.Fatalf("%s: %v", tc.label, err)
		}
		if got := strings.Join(f, " "); !strings.HasPrefix(got, tc.flags) || (tc.flags == "") != (got == "") {
			t.Errorf("%s: flags %q, want %q", tc.label, got, tc.flags)
		}
		if vs.usesRedis(l) != tc.redis || isGo(tc.label) != tc.goServer {
			t.Errorf("%s: redis %v, go %v", tc.label, vs.usesRedis(l), isGo(tc.label))
		}
	}
	for _, bad := range []string{"node+redis", "floor+recovery", "python", "go+", "go@"} {
		if _, err := parseLabel(bad); err == nil {
			t.Errorf("parseLabel(%q) accepted", bad)
		}
	}
	l, _ := parseLabel("go+nosuch")
	if _, err := vs.flags(l); err == nil {
		t.Error("an unknown variant has flags")
	}
	if err := vs.set("a+b=-x"); err == nil {
		t.Error("a variant name with + accepted")
	}
}

func TestFDNeed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"-scenario", "idle", "-clients", "5000,18000"}, 18000 + fdMargin},
		{[]string{"-transport", "polling", "-clients", "500"}, 1000 + fdMargin},
		{[]string{"-clients", "18000", "-clients=100"}, 100 + fdMargin}, // the last one wins, as in flag parsing
		{nil, 1000 + fdMargin},
	} {
		if got := fdNeed(tc.args); got != tc.want {
			t.Errorf("fdNeed(%q) = %d, want %d", tc.args, got, tc.want)
		}
	}
}

func TestCPURates(t *testing.T) {
	res := testRun()
	more, notes := cpuRates([]string{"25000", "node"})(res, []string{"-clients", "1000"})
	if got := strings.Join(more, " "); got != "-rates 25,37.5" || len(notes) != 0 {
		t.Fatalf("args %q, notes %q", got, notes)
	}
	if len(res.CPURates) != 2 || res.CPURates[1].Label != "Node's highest sustained rate, 37 500 deliveries/s" {
		t.Errorf("CPU rates %+v", res.CPURates)
	}
	// Without a Node sweep: 25 000/s only, and a note saying why.
	res = &Run{}
	more, notes = cpuRates([]string{"25000", "node"})(res, []string{"-clients", "300"})
	if got := strings.Join(more, " "); got != "-rates 83.333" || len(notes) != 1 {
		t.Fatalf("args %q, notes %q", got, notes)
	}
}
