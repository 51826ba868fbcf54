package main

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/chatio/socketio-chat/bench/internal/result"
)

// Row is one line of the comparison table.
type Row struct {
	Metric string   `json:"metric"`
	Unit   string   `json:"unit,omitempty"`
	Go     *float64 `json:"go,omitempty"`
	Node   *float64 `json:"node,omitempty"`
	Ratio  *float64 `json:"ratio,omitempty"` // Go / Node
	Target string   `json:"target,omitempty"`
	Met    *bool    `json:"met,omitempty"`
	Note   string   `json:"note,omitempty"`
}

// p99Limit is the latency bound of the throughput target.
const p99Limit = 100.0 // ms

func ptr[T any](v T) *T { return &v }

func find(res *Run, name, server string) *result.Scenario {
	for i := range res.Scenarios {
		if res.Scenarios[i].Name == name && res.Scenarios[i].Server == server {
			return &res.Scenarios[i]
		}
	}
	return nil
}

// pair builds a row from the Go and Node values (either may be missing).
// atLeast/atMost set the target ratio; 0 means informational.
func pair(metric, unit string, g, n *float64, atLeast, atMost float64) Row {
	r := Row{Metric: metric, Unit: unit, Go: g, Node: n}
	if g != nil && n != nil && *n != 0 {
		r.Ratio = ptr(*g / *n)
	}
	switch {
	case atLeast > 0:
		r.Target = fmt.Sprintf("≥ %g×", atLeast)
		if r.Ratio != nil {
			r.Met = ptr(*r.Ratio >= atLeast)
		}
	case atMost > 0:
		r.Target = fmt.Sprintf("≤ %g×", atMost)
		if r.Ratio != nil {
			r.Met = ptr(*r.Ratio <= atMost)
		}
	}
	return r
}

// sustained is the highest offered deliveries/s of a sweep point that
// delivered everything, in order, with p99 ≤ 100 ms; top reports whether it
// was the sweep's last point (the server may sustain more).
func sustained(s *result.Scenario) (v *float64, top bool) {
	if s == nil {
		return nil, false
	}
	best := 0.0
	for i, p := range s.Points {
		if p.Complete && p.P99Ms <= p99Limit && p.OfferedPerSec > best {
			best = p.OfferedPerSec
			top = i == len(s.Points)-1
		}
	}
	return ptr(best), top
}

func pointAt(s *result.Scenario, rate float64) *result.Point {
	if s == nil {
		return nil
	}
	for i := range s.Points {
		if s.Points[i].Rate == rate {
			return &s.Points[i]
		}
	}
	return nil
}

func field(p *result.Point, f func(*result.Point) float64) *float64 {
	if p == nil {
		return nil
	}
	return ptr(f(p))
}

// summarize computes the comparison rows from the scenarios that ran.
func summarize(res *Run) []Row {
	var rows []Row

	goName := res.Compared
	if goName == "" {
		goName = "go"
	}
	gs, ns := find(res, "sweep", goName), find(res, "sweep", "node")
	if gs != nil || ns != nil {
		clients := 0
		if s := firstNonNil(gs, ns); s != nil {
			clients = s.Clients
		}
		g, gtop := sustained(gs)
		n, _ := sustained(ns)
		senders := 0
		if s := firstNonNil(gs, ns); s != nil && len(s.Points) > 0 {
			senders = s.Points[0].Senders
		}
		r := pair(fmt.Sprintf("sustained deliveries/s, all delivered, p99 ≤ 100 ms (%d clients, %d senders)", clients, senders), "/s", g, n, 3, 0)
		switch {
		case gtop:
			r.Note = "Go passed the sweep's top point: its limit is higher"
		case n != nil && *n == 0:
			r.Ratio, r.Met = nil, nil
			r.Note = "Node met p99 ≤ 100 ms at none of the points: no ratio"
		}
		rows = append(rows, r)
		for _, rate := range rates(gs, ns) {
			gp, np := pointAt(gs, rate), pointAt(ns, rate)
			r := pair(fmt.Sprintf("sweep %g msg/s: p99 latency", rate), "ms",
				field(gp, func(p *result.Point) float64 { return p.P99Ms }),
				field(np, func(p *result.Point) float64 { return p.P99Ms }), 0, 0)
			r.Note = completeness(gp, np)
			rows = append(rows, r)
			rows = append(rows, pair(fmt.Sprintf("sweep %g msg/s: server CPU per delivery", rate), "µs",
				field(gp, func(p *result.Point) float64 { return p.ServerCPUPerDeliveryUs }),
				field(np, func(p *result.Point) float64 { return p.ServerCPUPerDeliveryUs }), 0, 0))
		}
	}

	gi, ni := find(res, "idle", goName), find(res, "idle", "node")
	if gi != nil || ni != nil {
		for k := range max(lenIdle(gi), lenIdle(ni)) {
			var g, n *float64
			var clients int
			if gi != nil && k < len(gi.Idle) {
				g, clients = ptr(gi.Idle[k].PerConnKB), gi.Idle[k].Clients
			}
			if ni != nil && k < len(ni.Idle) {
				n, clients = ptr(ni.Idle[k].PerConnKB), max(clients, ni.Idle[k].Clients)
			}
			rows = append(rows, pair(fmt.Sprintf("RSS per idle WebSocket connection at %d", roundClients(clients)), "KB", g, n, 0, 0.5))
		}
		var g, n *float64
		if gi != nil && len(gi.Ramps) > 0 {
			g = ptr(gi.Ramps[0].PerSec)
		}
		if ni != nil && len(ni.Ramps) > 0 {
			n = ptr(ni.Ramps[0].PerSec)
		}
		to := 0
		if s := firstNonNil(gi, ni); s != nil && len(s.Ramps) > 0 {
			to = s.Ramps[0].To
		}
		rows = append(rows, pair(fmt.Sprintf("connection setup rate (0 → %d, 64 in flight)", to), "/s", g, n, 2, 0))
	}

	gf, nf := find(res, "fanout", goName), find(res, "fanout", "node")
	for _, rate := range rates(gf, nf) {
		gp, np := pointAt(gf, rate), pointAt(nf, rate)
		clients := 0
		if s := firstNonNil(gf, nf); s != nil {
			clients = s.Clients
		}
		r := pair(fmt.Sprintf("fan-out %d clients, %g msg/s: p99 latency", clients, rate), "ms",
			field(gp, func(p *result.Point) float64 { return p.P99Ms }),
			field(np, func(p *result.Point) float64 { return p.P99Ms }), 0, 0)
		r.Note = completeness(gp, np)
		rows = append(rows, r)
		rows = append(rows, pair(fmt.Sprintf("fan-out %d clients, %g msg/s: server CPU per delivery", clients, rate), "µs",
			field(gp, func(p *result.Point) float64 { return p.ServerCPUPerDeliveryUs }),
			field(np, func(p *result.Point) float64 { return p.ServerCPUPerDeliveryUs }), 0, 0))
	}

	gp, np := firstPoint(find(res, "polling", goName)), firstPoint(find(res, "polling", "node"))
	if gp != nil || np != nil {
		// Throughput at the offered load: the share of expected deliveries
		// that arrived, times the offered rate (equal when both deliver all).
		thr := func(p *result.Point) float64 {
			if p.Expected == 0 {
				return 0
			}
			return p.OfferedPerSec * float64(p.Delivered) / float64(p.Expected)
		}
		r := pair("polling clients: deliveries/s", "/s", field(gp, thr), field(np, thr), 1, 0)
		r.Note = completeness(gp, np)
		rows = append(rows, r)
		rows = append(rows, pair("polling clients: server CPU", "% of a core",
			field(gp, func(p *result.Point) float64 { return p.ServerCPUPercent }),
			field(np, func(p *result.Point) float64 { return p.ServerCPUPercent }), 0, 1))
		rows = append(rows, pair("polling clients: p99 latency", "ms",
			field(gp, func(p *result.Point) float64 { return p.P99Ms }),
			field(np, func(p *result.Point) float64 { return p.P99Ms }), 0, 0))
	}

	gss, nss := find(res, "slow", goName), find(res, "slow", "node")
	if gss != nil || nss != nil {
		gp, np := firstPoint(gss), firstPoint(nss)
		r := pair("slow consumers: p99 latency of the others", "ms",
			field(gp, func(p *result.Point) float64 { return p.P99Ms }),
			field(np, func(p *result.Point) float64 { return p.P99Ms }), 0, 0)
		r.Note = completeness(gp, np)
		rows = append(rows, r)
		slowVal := func(s *result.Scenario, f func(*result.Slow) float64) *float64 {
			if s == nil || s.Slow == nil {
				return nil
			}
			return ptr(f(s.Slow))
		}
		rows = append(rows, pair("slow consumers: server RSS growth during the point", "MB",
			slowVal(gss, func(s *result.Slow) float64 { return float64(s.ServerRSSEndKB-s.ServerRSSStartKB) / 1024 }),
			slowVal(nss, func(s *result.Slow) float64 { return float64(s.ServerRSSEndKB-s.ServerRSSStartKB) / 1024 }), 0, 0))
		rows = append(rows, pair("slow consumers: disconnected by the server", "clients",
			slowVal(gss, func(s *result.Slow) float64 { return float64(s.Disconnected) }),
			slowVal(nss, func(s *result.Slow) float64 { return float64(s.Disconnected) }), 0, 0))
	}

	// Integrity over every load point, WebSocket and polling.
	integrity := func(server string) *float64 {
		var bad float64
		seen := false
		for _, s := range res.Scenarios {
			if s.Server != server {
				continue
			}
			for _, p := range s.Points {
				seen = true
				bad += float64(p.Lost + p.Duplicated + p.Reordered)
			}
		}
		if !seen {
			return nil
		}
		return ptr(bad)
	}
	ig, in := integrity(goName), integrity("node")
	r := Row{Metric: "lost (not delivered within the drain window) + duplicated + reordered, every point", Unit: "messages", Go: ig, Node: in, Target: "0 (Go)"}
	if ig != nil {
		r.Met = ptr(*ig == 0)
	}
	rows = append(rows, r)

	lg := func(server string) *float64 {
		var m float64
		seen := false
		for _, s := range res.Scenarios {
			if s.Server != server {
				continue
			}
			for _, p := range s.Points {
				seen = true
				m = math.Max(m, p.LoadgenCPUPercent)
			}
		}
		if !seen {
			return nil
		}
		return ptr(m)
	}
	rows = append(rows, Row{Metric: "load generator CPU, busiest point", Unit: "% of a core", Go: lg(goName), Node: lg("node")})
	return rows
}

func firstNonNil(a, b *result.Scenario) *result.Scenario {
	if a != nil {
		return a
	}
	return b
}

func firstPoint(s *result.Scenario) *result.Point {
	if s == nil || len(s.Points) == 0 {
		return nil
	}
	return &s.Points[0]
}

func lenIdle(s *result.Scenario) int {
	if s == nil {
		return 0
	}
	return len(s.Idle)
}

// roundClients turns a measured client count (e.g. 4998) into the step asked for.
func roundClients(n int) int {
	if n >= 1000 {
		return (n + 500) / 1000 * 1000
	}
	return n
}

// rates lists the load points present in either scenario, in order.
func rates(a, b *result.Scenario) []float64 {
	var out []float64
	seen := map[float64]bool{}
	for _, s := range []*result.Scenario{a, b} {
		if s == nil {
			continue
		}
		for _, p := range s.Points {
			if !seen[p.Rate] {
				seen[p.Rate] = true
				out = append(out, p.Rate)
			}
		}
	}
	return out
}

// completeness notes which server lost, duplicated or reordered messages.
func completeness(g, n *result.Point) string {
	var notes []string
	for _, x := range []struct {
		name string
		p    *result.Point
	}{{"Go", g}, {"Node", n}} {
		if x.p == nil {
			continue
		}
		if !x.p.Complete {
			note := fmt.Sprintf("%s: %d/%d delivered within %.0f s of the last send", x.name, x.p.Delivered, x.p.Expected, x.p.DrainS)
			if x.p.Late > 0 {
				note += fmt.Sprintf(" (%d more later)", x.p.Late)
			}
			if x.p.Duplicated+x.p.Reordered > 0 {
				note += fmt.Sprintf(", %d dup, %d reordered", x.p.Duplicated, x.p.Reordered)
			}
			if x.p.Disconnected > 0 {
				note += fmt.Sprintf(", %d clients disconnected", x.p.Disconnected)
			}
			notes = append(notes, note)
		}
	}
	if len(notes) == 0 && (g != nil || n != nil) {
		return "all delivered in order"
	}
	return strings.Join(notes, "; ")
}

// num formats a measurement with a sensible precision.
func num(v *float64) string {
	if v == nil {
		return "-"
	}
	x := *v
	switch a := math.Abs(x); {
	case a >= 1000:
		return groupThousands(fmt.Sprintf("%.0f", x))
	case a >= 100:
		return fmt.Sprintf("%.0f", x)
	case a >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ratio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f×", *v)
}

func met(v *bool) string {
	switch {
	case v == nil:
		return ""
	case *v:
		return "yes"
	default:
		return "NO"
	}
}

// printTable writes the comparison table for a terminal.
func printTable(w io.Writer, res *Run) {
	metric := func(r Row) string {
		if r.Unit != "" {
			return r.Metric + " (" + r.Unit + ")"
		}
		return r.Metric
	}
	width := 10
	for _, r := range res.Summary {
		width = max(width, len([]rune(metric(r))))
	}
	goName := res.Compared
	if goName == "" {
		goName = "go"
	}
	fmt.Fprintf(w, "\n%-*s %12s %12s %8s %8s %4s\n", width, "metric", goName, "node", "go/node", "target", "met")
	for _, r := range res.Summary {
		fmt.Fprintf(w, "%-*s %12s %12s %8s %8s %4s\n", width, metric(r), num(r.Go), num(r.Node), ratio(r.Ratio), r.Target, met(r.Met))
		if r.Note != "" && r.Note != "all delivered in order" {
			fmt.Fprintf(w, "    %s\n", r.Note)
		}
	}
	for _, e := range res.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}
