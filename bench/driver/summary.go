package main

import (
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"

	"github.com/chatio/socketio-chat/bench/internal/result"
)

// Row is one line of the comparison table.
type Row struct {
	Metric string   `json:"metric"`
	Unit   string   `json:"unit,omitempty"`
	Go     *float64 `json:"go,omitempty"`
	Node   *float64 `json:"node,omitempty"`
	// Floor is the floor broadcaster's value (bench/floor), in the rows
	// of CPU per delivery.
	Floor *float64 `json:"floor,omitempty"`
	Ratio *float64 `json:"ratio,omitempty"` // Go / Node, or Go / RatioOf
	// RatioOf, when set, is the server the ratio compares with instead of
	// Node (a variant against our default flags).
	RatioOf string `json:"ratioOf,omitempty"`
	Target  string `json:"target,omitempty"`
	Met     *bool  `json:"met,omitempty"`
	Note    string `json:"note,omitempty"`
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

// p99Bound is the latency bound of a scenario's sustained rate: the bound
// its search used, or the targets' 100 ms.
func p99Bound(s *result.Scenario) float64 {
	if s != nil && s.SearchP99Ms > 0 {
		return s.SearchP99Ms
	}
	return p99Limit
}

// bestPoint is the point with the highest offered deliveries/s that
// delivered everything, in order, with p99 within p99Bound, or nil.
func bestPoint(s *result.Scenario) *result.Point {
	if s == nil {
		return nil
	}
	var best *result.Point
	for i := range s.Points {
		p := &s.Points[i]
		if p.Complete && p.P99Ms <= p99Bound(s) && (best == nil || p.OfferedPerSec > best.OfferedPerSec) {
			best = p
		}
	}
	return best
}

// sustained is the highest offered deliveries/s of a sweep point that
// delivered everything, in order, with p99 ≤ 100 ms (0 when none did); top
// reports that no faster point failed (the server may sustain more).
func sustained(s *result.Scenario) (v *float64, top bool) {
	if s == nil {
		return nil, false
	}
	best := bestPoint(s)
	if best == nil {
		return ptr(0.0), false
	}
	for _, p := range s.Points {
		if p.Rate > best.Rate {
			return ptr(best.OfferedPerSec), false
		}
	}
	return ptr(best.OfferedPerSec), true
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
		bound := p99Bound(firstNonNil(gs, ns))
		r := pair(fmt.Sprintf("sustained deliveries/s, all delivered, p99 ≤ %g ms (%d clients, %d senders)", bound, clients, senders), "/s", g, n, 10, 0)
		switch {
		case gtop:
			r.Note = "Go passed the sweep's top point: its limit is higher"
		case n != nil && *n == 0:
			r.Ratio, r.Met = nil, nil
			r.Note = fmt.Sprintf("Node met p99 ≤ %g ms at none of the points: no ratio", bound)
		}
		rows = append(rows, r)
		// Every variant against our default flags (same binary, same run).
		for _, v := range res.SweepVariants {
			vs := find(res, "sweep", v)
			if vs == nil {
				continue
			}
			val, top := sustained(vs)
			r := Row{Metric: fmt.Sprintf("sustained deliveries/s with %s (%d clients)", variantFlags(res, v), clients), Unit: "/s", Go: val,
				Target: "≥ 0.8× " + goName, RatioOf: goName}
			if g != nil && *g > 0 {
				r.Ratio = ptr(*val / *g)
				r.Met = ptr(*r.Ratio >= 0.8)
			}
			r.Note = fmt.Sprintf("`%s`; ratio to `%s` (default flags)", v, goName)
			if top {
				r.Note += "; passed the sweep's top point"
			}
			rows = append(rows, r)
		}
		// CPU per delivery with each variant against our default flags, at
		// the highest rate both sustained: the same load on both.
		for _, v := range res.SweepVariants {
			gp, vp := commonBest(gs, find(res, "sweep", v))
			if gp == nil {
				continue
			}
			r := Row{Metric: fmt.Sprintf("server CPU per delivery with %s at %g msg/s (the highest rate both sustained)", variantFlags(res, v), gp.Rate),
				Unit: "µs", Go: ptr(vp.ServerCPUPerDeliveryUs), RatioOf: goName,
				Note: fmt.Sprintf("`%s`; ratio to `%s` (%.2f µs)", v, goName, gp.ServerCPUPerDeliveryUs)}
			if gp.ServerCPUPerDeliveryUs > 0 {
				r.Ratio = ptr(vp.ServerCPUPerDeliveryUs / gp.ServerCPUPerDeliveryUs)
			}
			rows = append(rows, r)
		}
		// p99 side by side at the rates both servers ran (the ladder).
		for _, rate := range rates(gs, ns) {
			gp, np := pointAt(gs, rate), pointAt(ns, rate)
			if gp == nil || np == nil {
				continue
			}
			r := pair(fmt.Sprintf("sweep %g msg/s: p99 latency", rate), "ms",
				field(gp, func(p *result.Point) float64 { return p.P99Ms }),
				field(np, func(p *result.Point) float64 { return p.P99Ms }), 0, 0)
			r.Note = completeness(gp, np)
			rows = append(rows, r)
		}
	}

	gc, nc, fc := find(res, "cpu", goName), find(res, "cpu", "node"), find(res, "cpu", floorServer)
	if gc != nil || nc != nil {
		labels, notes := map[float64]string{}, map[float64]string{}
		for _, c := range res.CPURates {
			labels[c.Rate], notes[c.Rate] = c.Label, c.Note
		}
		for _, rate := range rates(gc, nc) {
			gp, np := pointAt(gc, rate), pointAt(nc, rate)
			label := labels[rate]
			if label == "" {
				label = fmt.Sprintf("%g msg/s", rate)
			}
			clients := 0
			if p := firstPointOf(gp, np); p != nil {
				clients = p.Receivers
			}
			r := pair(fmt.Sprintf("server CPU per delivery at %s (%g msg/s × %d clients)", label, rate, clients), "µs",
				field(gp, func(p *result.Point) float64 { return p.ServerCPUPerDeliveryUs }),
				field(np, func(p *result.Point) float64 { return p.ServerCPUPerDeliveryUs }), 0, 0.5)
			r.Note = completeness(gp, np)
			if n := notes[rate]; n != "" {
				r.Note += "; " + n
			}
			fp := pointAt(fc, rate)
			r.Floor = field(fp, func(p *result.Point) float64 { return p.ServerCPUPerDeliveryUs })
			rows = append(rows, r)
			if fr, ok := floorRow(fmt.Sprintf("server CPU per delivery at %s, against the floor", label), gp, np, fp); ok {
				rows = append(rows, fr)
			}
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
			rows = append(rows, pair(fmt.Sprintf("RSS per idle WebSocket connection at %d ((RSS − RSS at 0) / N)", roundClients(clients)), "KB", g, n, 0, 0.25))
		}
		if k := max(lenIdle(gi), lenIdle(ni)) - 1; k >= 1 {
			from, to := 0, 0
			slope := func(s *result.Scenario) *float64 {
				if s == nil || len(s.Idle) <= k {
					return nil
				}
				from, to = max(from, roundClients(s.Idle[k-1].Clients)), max(to, roundClients(s.Idle[k].Clients))
				return ptr(idleSlope(s, k))
			}
			g, n := slope(gi), slope(ni)
			rows = append(rows, pair(fmt.Sprintf("RSS per idle WebSocket connection added, %d → %d (slope)", from, to), "KB", g, n, 0, 0))
			proj := func(s *result.Scenario) *float64 {
				if s == nil || len(s.Idle) <= k {
					return nil
				}
				return ptr(projectRSS(s.Idle[k], idleSlope(s, k), 1_000_000) / (1 << 20))
			}
			r := pair(fmt.Sprintf("projected RSS at 1 000 000 idle connections (RSS at %d + slope × the rest)", to), "GB", proj(gi), proj(ni), 0, 0)
			r.Note = "a projection from the measured per-connection budget, not a measurement"
			if r.Go != nil {
				r.Target = fmt.Sprintf("≤ %g GB", maxProjectedGB)
				r.Met = ptr(*r.Go <= maxProjectedGB)
			}
			rows = append(rows, r)
		}
		ramp := func(s *result.Scenario, k int) *float64 {
			if s == nil || len(s.Ramps) <= k {
				return nil
			}
			return ptr(s.Ramps[k].PerSec)
		}
		for k := range max(lenRamps(gi), lenRamps(ni)) {
			var from, to int
			if s := firstNonNil(gi, ni); s != nil && k < len(s.Ramps) {
				from, to = s.Ramps[k].From, s.Ramps[k].To
			}
			atLeast := 3.0 // the target on every ramp: new connections per second
			rows = append(rows, pair(fmt.Sprintf("new connections per second (%d → %d, %d in flight)", from, to, rampConcurrency(gi, ni, k)), "/s", ramp(gi, k), ramp(ni, k), atLeast, 0))
			r := pair(fmt.Sprintf("server CPU per connect (%d → %d)", from, to), "µs", connectCPU(gi, k), connectCPU(ni, k), 0, 0)
			r.Note = "server CPU over the ramp / connects; the load generator's own is in the connections table"
			rows = append(rows, r)
		}
		if g, n := disconnectCPU(gi), disconnectCPU(ni); g != nil || n != nil {
			clients := 0
			for _, s := range []*result.Scenario{gi, ni} {
				if s != nil && s.Disconnect != nil {
					clients = max(clients, s.Disconnect.Clients)
				}
			}
			r := pair(fmt.Sprintf("server CPU per disconnect, %d clients leaving at once", roundClients(clients)), "µs", g, n, 0, 0)
			r.Note = "from the first close until the server's CPU has been quiet for 300 ms"
			rows = append(rows, r)
		}
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
		fp := pointAt(find(res, "fanout", floorServer), rate)
		r = pair(fmt.Sprintf("fan-out %d clients, %g msg/s: server CPU per delivery", clients, rate), "µs",
			field(gp, func(p *result.Point) float64 { return p.ServerCPUPerDeliveryUs }),
			field(np, func(p *result.Point) float64 { return p.ServerCPUPerDeliveryUs }), 0, 0)
		r.Floor = field(fp, func(p *result.Point) float64 { return p.ServerCPUPerDeliveryUs })
		rows = append(rows, r)
		if fr, ok := floorRow(fmt.Sprintf("fan-out %d clients, %g msg/s: server CPU per delivery, against the floor", clients, rate), gp, np, fp); ok {
			rows = append(rows, fr)
		}
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
		clients := 0
		if p := firstPointOf(gp, np); p != nil {
			clients = p.Receivers
		}
		r := pair(fmt.Sprintf("polling clients (%d): deliveries/s", clients), "/s", field(gp, thr), field(np, thr), 1, 0)
		r.Note = completeness(gp, np)
		rows = append(rows, r)
		r = pair("polling clients: server CPU at equal throughput", "% of a core",
			field(gp, func(p *result.Point) float64 { return p.ServerCPUPercent }),
			field(np, func(p *result.Point) float64 { return p.ServerCPUPercent }), 0, 0.5)
		if gp != nil && np != nil && (!gp.Complete || !np.Complete) {
			r.Note = "throughput not equal: a server did not deliver everything"
		}
		rows = append(rows, r)
		rows = append(rows, pair("polling clients: p99 latency", "ms",
			field(gp, func(p *result.Point) float64 { return p.P99Ms }),
			field(np, func(p *result.Point) float64 { return p.P99Ms }), 0, 1))
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

	rows = append(rows, namespacesRows(res, goName, gs)...)
	rows = append(rows, clusterRows(res)...)

	// Integrity over every load point of every scenario, WebSocket and
	// polling; the Go column covers the compared server and its variants.
	ours := func(server string) bool { return server == goName || strings.HasPrefix(server, goName+"+") }
	theirs := func(server string) bool { return server == "node" }
	sum := func(match func(string) bool, f func(*result.Point) (int64, bool)) *float64 {
		var total float64
		seen := false
		for _, s := range res.Scenarios {
			if !match(s.Server) {
				continue
			}
			for i := range s.Points {
				if v, ok := f(&s.Points[i]); ok {
					seen = true
					total += float64(v)
				}
			}
		}
		if !seen {
			return nil
		}
		return ptr(total)
	}
	bad := func(p *result.Point) (int64, bool) { return p.Lost + p.Duplicated + p.Reordered, true }
	ig, in := sum(ours, bad), sum(theirs, bad)
	variantsNote := ""
	if len(res.SweepVariants) > 0 {
		variantsNote = fmt.Sprintf("Go: `%s` and its variants", goName)
	}
	r := Row{Metric: "lost (not delivered within the drain window) + duplicated + reordered, every point", Unit: "messages", Go: ig, Node: in, Target: "0 (Go)", Note: variantsNote}
	if ig != nil {
		r.Met = ptr(*ig == 0)
	}
	rows = append(rows, r)
	// Results written before the order check have neither groups nor
	// incomplete receivers: not measured, rather than zero.
	order := func(p *result.Point) (int64, bool) {
		return int64(p.OrderDiffers), p.OrderGroups > 0 || p.OrderIncomplete > 0
	}
	og, on := sum(ours, order), sum(theirs, order)
	r = Row{Metric: "receivers whose sequence differs from the other receivers', every point (one order per node)", Unit: "receivers", Go: og, Node: on, Target: "0 (Go)", Note: variantsNote}
	if og != nil {
		r.Met = ptr(*og == 0)
	}
	if inc := sum(ours, func(p *result.Point) (int64, bool) { return int64(p.OrderIncomplete), true }); inc != nil && *inc > 0 {
		r.Note = strings.TrimPrefix(variantsNote+"; ", "; ") + fmt.Sprintf("Go: %.0f receiver×point pairs missed messages and were not compared", *inc)
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

// maxProjectedGB is the target of the projection of our RSS to one
// million idle connections.
const maxProjectedGB = 2.5

// floorTarget is the target of our CPU per delivery against the floor's.
const floorTarget = 1.5

// floorRow compares our CPU per delivery at a load point (g) with the
// floor broadcaster's at the same point (f): Ratio is ours / the floor's,
// the note gives Node's (n) too. ok is false when either did not run.
func floorRow(metric string, g, n, f *result.Point) (Row, bool) {
	if g == nil || f == nil || f.ServerCPUPerDeliveryUs <= 0 {
		return Row{}, false
	}
	r := Row{Metric: metric, Unit: "µs", Go: ptr(g.ServerCPUPerDeliveryUs), Floor: ptr(f.ServerCPUPerDeliveryUs), RatioOf: floorServer,
		Ratio: ptr(g.ServerCPUPerDeliveryUs / f.ServerCPUPerDeliveryUs), Target: fmt.Sprintf("≤ %g× floor", floorTarget)}
	r.Met = ptr(*r.Ratio <= floorTarget)
	r.Note = fmt.Sprintf("ratio to `floor` (bench/floor, %.2f µs)", f.ServerCPUPerDeliveryUs)
	if n != nil {
		r.Node = ptr(n.ServerCPUPerDeliveryUs)
		r.Note += fmt.Sprintf("; Node/floor %.2f×", n.ServerCPUPerDeliveryUs/f.ServerCPUPerDeliveryUs)
	}
	if !f.Complete {
		r.Note += fmt.Sprintf("; floor: %d/%d delivered", f.Delivered, f.Expected)
	}
	return r, true
}

// commonBest returns the points of a and b at the highest rate at which
// both passed (every message delivered in order, p99 within the bound), or
// nils.
func commonBest(a, b *result.Scenario) (*result.Point, *result.Point) {
	if a == nil || b == nil {
		return nil, nil
	}
	var pa, pb *result.Point
	for i := range a.Points {
		p := &a.Points[i]
		q := pointAt(b, p.Rate)
		if q == nil || !p.Complete || !q.Complete || p.P99Ms > p99Bound(a) || q.P99Ms > p99Bound(b) {
			continue
		}
		if pa == nil || p.Rate > pa.Rate {
			pa, pb = p, q
		}
	}
	return pa, pb
}

// projectRSS extrapolates an idle step's RSS to n connections (KB) along
// slope (KB per connection, measured between the last two steps): the
// marginal cost of a connection, without the fixed cost of the process
// averaged in.
func projectRSS(id result.Idle, slope float64, n int) float64 {
	return float64(id.RSSKB) + slope*float64(n-id.Clients)
}

// idleSlope is the RSS added per connection between idle steps k-1 and k
// (computed from the steps when the results predate SlopeKB).
func idleSlope(s *result.Scenario, k int) float64 {
	id := s.Idle[k]
	if id.SlopeKB != 0 || k == 0 {
		return id.SlopeKB
	}
	prev := s.Idle[k-1]
	if id.Clients == prev.Clients {
		return 0
	}
	return float64(id.RSSKB-prev.RSSKB) / float64(id.Clients-prev.Clients)
}

// variantFlags names the flags of a variant label by the first flag of each
// variant and its value, e.g. "`-recovery 2m` and `-redis redis://…/12`" (the
// run's server list has them all).
func variantFlags(res *Run, label string) string {
	l, err := parseLabel(label)
	if err != nil {
		return label
	}
	var parts []string
	for _, v := range l.variants {
		f := strings.Fields(res.Variants[v])
		if len(f) == 0 {
			parts = append(parts, "+"+v)
			continue
		}
		f = f[:min(2, len(f))]
		if len(f) == 2 {
			if u, err := url.Parse(f[1]); err == nil && u.Scheme != "" && u.Host != "" {
				f[1] = u.Scheme + "://…" + u.Path
			}
		}
		parts = append(parts, "`"+strings.Join(f, " ")+"`")
	}
	return strings.Join(parts, " and ")
}

func firstPointOf(a, b *result.Point) *result.Point {
	if a != nil {
		return a
	}
	return b
}

// connectCPU is the server's CPU per connect over ramp k, in µs.
func connectCPU(s *result.Scenario, k int) *float64 {
	if s == nil || len(s.Ramps) <= k {
		return nil
	}
	r := s.Ramps[k]
	if n := r.To - r.From - r.Missing; n > 0 {
		return ptr(1e6 * r.ServerCPUS / float64(n))
	}
	return nil
}

// disconnectCPU is the server's CPU per client of the idle scenario's
// mass disconnect, in µs.
func disconnectCPU(s *result.Scenario) *float64 {
	if s == nil || s.Disconnect == nil || s.Disconnect.Clients == 0 {
		return nil
	}
	return ptr(1e6 * s.Disconnect.ServerCPUS / float64(s.Disconnect.Clients))
}

func lenRamps(s *result.Scenario) int {
	if s == nil {
		return 0
	}
	return len(s.Ramps)
}

func rampConcurrency(a, b *result.Scenario, k int) int {
	if s := firstNonNil(a, b); s != nil && k < len(s.Ramps) {
		return s.Ramps[k].Concurrency
	}
	return 0
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
	fmt.Fprintf(w, "\n%-*s %12s %12s %8s %8s %8s %4s\n", width, "metric", goName, "node", "floor", "go/node", "target", "met")
	for _, r := range res.Summary {
		fmt.Fprintf(w, "%-*s %12s %12s %8s %8s %8s %4s\n", width, metric(r), num(r.Go), num(r.Node), num(r.Floor), ratio(r.Ratio), r.Target, met(r.Met))
		if r.Note != "" && r.Note != "all delivered in order" {
			fmt.Fprintf(w, "    %s\n", r.Note)
		}
	}
	for _, e := range res.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

// namespacesRows compares the servers with their clients spread over 4
// namespaces (the namespaces scenario): the sustained rate side by side,
// ours against its own sweep (one namespace, each broadcast to every
// client), and CPU per delivery at the highest rate both sustained.
func namespacesRows(res *Run, goName string, sweep *result.Scenario) []Row {
	gn, nn := find(res, "namespaces", goName), find(res, "namespaces", "node")
	s := firstNonNil(gn, nn)
	if s == nil {
		return nil
	}
	senders := 0
	if len(s.Points) > 0 {
		senders = s.Points[0].Senders
	}
	what := fmt.Sprintf("%d namespaces (%d clients, %d senders)", s.Namespaces, s.Clients, senders)
	var rows []Row
	g, gtop := sustained(gn)
	n, _ := sustained(nn)
	r := pair(fmt.Sprintf("%s: sustained deliveries/s, all delivered, p99 ≤ %g ms", what, p99Bound(s)), "/s", g, n, 0, 0)
	switch {
	case gtop:
		r.Note = "Go passed the top point: its limit is higher"
	case n != nil && *n == 0:
		r.Ratio = nil
		r.Note = "Node met the bound at none of the points: no ratio"
	}
	rows = append(rows, r)
	if sw, _ := sustained(sweep); g != nil && sw != nil && *sw > 0 {
		rows = append(rows, Row{Metric: fmt.Sprintf("%s: sustained deliveries/s against one namespace (the sweep)", what), Unit: "/s",
			Go: g, Ratio: ptr(*g / *sw), RatioOf: goName,
			Note: fmt.Sprintf("ratio to `%s`'s sweep (%.0f/s; 1 namespace, each broadcast to every client)", goName, *sw)})
	}
	if gp, np := commonBest(gn, nn); gp != nil {
		r := pair(fmt.Sprintf("%s: server CPU per delivery at %g msg/s (the highest rate both sustained)", what, gp.Rate), "µs",
			ptr(gp.ServerCPUPerDeliveryUs), ptr(np.ServerCPUPerDeliveryUs), 0, 0)
		rows = append(rows, r)
	}
	return rows
}
