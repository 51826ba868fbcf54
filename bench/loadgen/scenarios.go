package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/bench/eio"
	"github.com/chatio/socketio-chat/bench/internal/result"
)

// runScenario runs cfg.scenario against the server and returns what it measured.
func runScenario(ctx context.Context, cfg *config, log io.Writer) (*result.Scenario, error) {
	start := time.Now()
	cpu0, _ := selfCPU()
	p, err := newPool(cfg, cfg.maxPoints())
	if err != nil {
		return nil, err
	}
	prof := newProfiler(cfg, log)
	s0, err := readProcs(cfg.pids)
	if err != nil {
		return nil, fmt.Errorf("server process: %w", err)
	}
	res := &result.Scenario{
		Name: cfg.scenario, Server: cfg.label, Transport: cfg.transport,
		Clients: cfg.maxClients(), MsgBytes: cfg.msgSize, Namespaces: cfg.namespaces,
		RSS0KB: s0.rssKB, Goroutines0: prof.goroutines(),
	}
	switch cfg.scenario {
	case "idle":
		err = runIdle(ctx, cfg, p, prof, res, log)
	default:
		err = runBroadcast(ctx, cfg, p, prof, res, log)
	}
	res.LoadgenGoroutines = max(res.LoadgenGoroutines, runtime.NumGoroutine())
	p.closeAll()
	res.Profiles = prof.saved()
	res.Errors = append(res.Errors, p.errors()...)
	if n := p.unknown.Load(); n > 0 {
		res.Errors = append(res.Errors, fmt.Sprintf("%d event packets were not benchmark messages", n))
	}
	cpu1, maxRSS := selfCPU()
	res.WallS = time.Since(start).Seconds()
	res.LoadgenCPUS = (cpu1 - cpu0).Seconds()
	res.LoadgenMaxRSSKB = maxRSS
	return res, err
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// measuredRamp opens clients [from, to) and measures the connect rate and
// what it cost the server and the load generator.
func measuredRamp(ctx context.Context, cfg *config, p *pool, from, to, slowFrom int, log io.Writer) (result.Ramp, error) {
	s0, _ := readProcs(cfg.pids)
	c0, _ := selfCPU()
	t0 := time.Now()
	fail, miss := p.ramp(ctx, from, to, slowFrom)
	el := time.Since(t0)
	s1, err := readProcs(cfg.pids)
	c1, _ := selfCPU()
	r := result.Ramp{
		From: from, To: to, Concurrency: min(cfg.rampConc, to-from),
		Seconds: el.Seconds(), PerSec: float64(to-from-miss) / el.Seconds(),
		Failures: fail, Missing: miss,
		ServerCPUS: (s1.cpu - s0.cpu).Seconds(), LoadgenCPUS: (c1 - c0).Seconds(),
	}
	fmt.Fprintf(log, "loadgen %s: ramp %d→%d in %.2fs (%.0f/s), %d failed attempts, %d missing\n",
		cfg.label, from, to, r.Seconds, r.PerSec, fail, miss)
	if err != nil {
		return r, fmt.Errorf("server process: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	return r, nil
}

// runIdle ramps to each step and samples the server's RSS once it settled.
func runIdle(ctx context.Context, cfg *config, p *pool, prof *profiler, res *result.Scenario, log io.Writer) error {
	prev := 0
	prevConns, prevRSS := 0, res.RSS0KB
	for _, n := range cfg.clients {
		r, err := measuredRamp(ctx, cfg, p, prev, n, n, log)
		res.Ramps = append(res.Ramps, r)
		if err != nil {
			return err
		}
		res.LoadgenGoroutines = max(res.LoadgenGoroutines, runtime.NumGoroutine())
		if err := sleepCtx(ctx, cfg.settle/2); err != nil {
			return err
		}
		a, _ := readProcs(cfg.pids)
		if err := sleepCtx(ctx, cfg.settle-cfg.settle/2); err != nil {
			return err
		}
		b, err := readProcs(cfg.pids)
		if err != nil {
			return fmt.Errorf("server process: %w", err)
		}
		conns := int(p.connected.Load())
		idle := result.Idle{Clients: conns, RSSKB: b.rssKB}
		if conns > 0 {
			idle.PerConnKB = float64(b.rssKB-res.RSS0KB) / float64(conns)
		}
		if conns > prevConns {
			idle.SlopeKB = float64(b.rssKB-prevRSS) / float64(conns-prevConns)
		}
		prevConns, prevRSS = conns, b.rssKB
		if wall := b.at.Sub(a.at).Seconds(); wall > 0 {
			idle.ServerCPUPercent = 100 * (b.cpu - a.cpu).Seconds() / wall
		}
		if g := prof.goroutines(); g > 0 && conns > 0 {
			idle.Goroutines = g
			idle.GoroutinesPerCon = float64(g-res.Goroutines0) / float64(conns)
		}
		prof.save(fmt.Sprintf("heap-idle-%d.pprof", n), "/debug/pprof/heap")
		res.Idle = append(res.Idle, idle)
		fmt.Fprintf(log, "loadgen %s: %d idle clients: RSS %d KB (%.1f KB/conn over %d KB at 0; %.1f KB per connection added since the last step)\n",
			cfg.label, conns, b.rssKB, idle.PerConnKB, res.RSS0KB, idle.SlopeKB)
		prev = n
	}
	d, err := measuredDisconnect(ctx, cfg, p, log)
	res.Disconnect = d
	return err
}

// How measuredDisconnect decides that the server is done: it samples the
// server's CPU every disconnectSample and stops once it has not risen for
// disconnectQuiet (a CPU tick is 10 ms: quiet means under 10 ms of CPU in
// that window), or after disconnectMax.
const (
	disconnectSample = 20 * time.Millisecond
	disconnectQuiet  = 300 * time.Millisecond
	disconnectMax    = 20 * time.Second
)

// untilQuiet samples the server every disconnectSample, from s0 taken at
// t0, until its CPU has not risen for disconnectQuiet or disconnectMax has
// passed since t0, and returns the last sample in which it had risen (s0
// if it never did).
func untilQuiet(ctx context.Context, s0 procSample, t0 time.Time, sample func() (procSample, error)) (procSample, error) {
	last := s0
	for {
		if err := sleepCtx(ctx, disconnectSample); err != nil {
			return last, err
		}
		s, err := sample()
		if err != nil {
			return last, err
		}
		if s.cpu > last.cpu {
			last = s
		}
		if s.at.Sub(last.at) >= disconnectQuiet || s.at.Sub(t0) >= disconnectMax {
			return last, nil
		}
	}
}

// measuredDisconnect closes every client at once, as a network outage or a
// restarting proxy would, and measures what the server spends on it: its
// CPU from the first close to its last CPU tick before it went quiet.
func measuredDisconnect(ctx context.Context, cfg *config, p *pool, log io.Writer) (*result.Disconnect, error) {
	n := int(p.connected.Load())
	if n == 0 || len(cfg.pids) == 0 {
		return nil, nil
	}
	s0, err := readProcs(cfg.pids)
	if err != nil {
		return nil, fmt.Errorf("server process: %w", err)
	}
	t0 := time.Now()
	p.closeAll()
	d := &result.Disconnect{Clients: n, CloseSeconds: time.Since(t0).Seconds()}
	last, err := untilQuiet(ctx, s0, t0, func() (procSample, error) { return readProcs(cfg.pids) })
	if err != nil {
		return d, fmt.Errorf("server process: %w", err)
	}
	d.BusySeconds = max(0, last.at.Sub(t0).Seconds())
	d.ServerCPUS = (last.cpu - s0.cpu).Seconds()
	fmt.Fprintf(log, "loadgen %s: %d clients left at once (closed in %.2fs): server CPU %.0f ms, %.1f µs per disconnect, busy for %.2fs\n",
		cfg.label, n, d.CloseSeconds, 1000*d.ServerCPUS, 1e6*d.ServerCPUS/float64(n), d.BusySeconds)
	return d, nil
}

// runBroadcast ramps, then runs one load point per rate.
func runBroadcast(ctx context.Context, cfg *config, p *pool, prof *profiler, res *result.Scenario, log io.Writer) error {
	n := cfg.clients[0]
	slowFrom := n - cfg.slow
	r, err := measuredRamp(ctx, cfg, p, 0, n, slowFrom, log)
	res.Ramps = append(res.Ramps, r)
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, cfg.settle); err != nil {
		return err
	}
	after, _ := readProcs(cfg.pids)
	idle := result.Idle{Clients: int(p.connected.Load()), RSSKB: after.rssKB}
	if g := prof.goroutines(); g > 0 && idle.Clients > 0 {
		idle.Goroutines = g
		idle.GoroutinesPerCon = float64(g-res.Goroutines0) / float64(idle.Clients)
	}
	res.Idle = append(res.Idle, idle)
	res.LoadgenGoroutines = max(res.LoadgenGoroutines, runtime.NumGoroutine())

	var senders, slow []*client
	for i, c := range p.clients[:n] {
		switch {
		case c == nil:
		case i < cfg.senders:
			senders = append(senders, c)
		case i >= slowFrom:
			slow = append(slow, c)
		}
	}
	if len(senders) == 0 {
		return fmt.Errorf("no sender connected")
	}
	var slowRes *result.Slow
	if cfg.slow > 0 {
		slowRes = &result.Slow{Clients: len(slow), ReadBufBytes: cfg.slowReadBuf, ServerRSSStartKB: after.rssKB}
		for _, c := range slow {
			p.pause(c)
		}
	}
	if cfg.search {
		if err := searchPoints(ctx, cfg, p, prof, res, senders, log); err != nil {
			return err
		}
	} else {
		for i, rate := range cfg.rates {
			pt, err := runPoint(ctx, cfg, p, prof, i, rate, senders)
			res.Points = append(res.Points, pt)
			logPoint(log, cfg, pt)
			if err != nil {
				return err
			}
			if cfg.stopP99 > 0 && i < len(cfg.rates)-1 && (pt.P99Ms > float64(cfg.stopP99.Milliseconds()) || pt.Lost > 0) {
				res.Errors = append(res.Errors, fmt.Sprintf("points after %g msg/s skipped: p99 %.0f ms, lost %d (-stop-p99 %v)", rate, pt.P99Ms, pt.Lost, cfg.stopP99))
				break
			}
		}
	}
	awaitLate(ctx, cfg, p, res)
	recheckOrder(p, res, log)
	if slowRes != nil {
		end, _ := readProcs(cfg.pids)
		slowRes.ServerRSSEndKB = end.rssKB
		checkSlow(p, slow, slowRes)
		res.Slow = slowRes
		fmt.Fprintf(log, "loadgen %s: slow clients: %d disconnected by the server, %d still connected; server RSS %d → %d KB\n",
			cfg.label, slowRes.Disconnected, slowRes.StillConnected, slowRes.ServerRSSStartKB, slowRes.ServerRSSEndKB)
	}
	return nil
}

// logPoint prints one load point's outcome.
func logPoint(log io.Writer, cfg *config, pt result.Point) {
	fmt.Fprintf(log, "loadgen %s: %g msg/s × %d clients: %d/%d delivered, lost %d, dup %d, reordered %d, order differs at %d of %d complete receivers, %d disconnected, p50 %.1f p99 %.1f max %.1f ms, server CPU %.0f%% (%.1f µs/delivery, %.0f%% of it in the kernel), loadgen CPU %.0f%%\n",
		cfg.label, pt.Rate, pt.Receivers, pt.Delivered, pt.Expected, pt.Lost, pt.Duplicated, pt.Reordered,
		pt.OrderDiffers, pt.Receivers-pt.OrderIncomplete, pt.Disconnected,
		pt.P50Ms, pt.P99Ms, pt.MaxMs, pt.ServerCPUPercent, pt.ServerCPUPerDeliveryUs, kernelShare(pt), pt.LoadgenCPUPercent)
}

// kernelShare is the part of a point's server CPU time spent in the kernel, in %.
func kernelShare(pt result.Point) float64 {
	if pt.ServerCPUS <= 0 {
		return 0
	}
	return 100 * pt.ServerSysS / pt.ServerCPUS
}

// passes is the -search criterion: every message delivered once and in
// order per sender, and p99 within the bound.
func passes(cfg *config, pt result.Point) bool {
	return pt.Complete && pt.P99Ms <= float64(cfg.searchP99.Microseconds())/1e3
}

// searchPoints runs the points a searcher picks (see -search). After a
// failing point it waits for the backlog to drain and the server to settle,
// so the next point starts from an idle server.
func searchPoints(ctx context.Context, cfg *config, p *pool, prof *profiler, res *result.Scenario, senders []*client, log io.Writer) error {
	res.SearchP99Ms = float64(cfg.searchP99.Microseconds()) / 1e3
	s := &searcher{ladder: cfg.rates, min: cfg.searchMin, refine: cfg.refine}
	for i := 0; i < cfg.maxPoints(); i++ {
		rate, ok := s.nextRate()
		if !ok {
			break
		}
		pt, err := runPoint(ctx, cfg, p, prof, i, rate, senders)
		res.Points = append(res.Points, pt)
		logPoint(log, cfg, pt)
		if err != nil {
			return err
		}
		ok = passes(cfg, pt)
		s.report(rate, ok)
		if !ok {
			quiesce(ctx, p, res, cfg.drain)
			if err := sleepCtx(ctx, cfg.settle); err != nil {
				return err
			}
		}
	}
	var msg string
	switch {
	case s.pass == 0:
		msg = fmt.Sprintf("search: no rate passed (every message delivered in order, p99 ≤ %v), down to %g msg/s", cfg.searchP99, s.fail)
		res.Errors = append(res.Errors, msg)
	case s.fail == 0:
		msg = fmt.Sprintf("search: every rate of the ladder passed, up to %g msg/s: the limit is higher", s.pass)
		res.Errors = append(res.Errors, msg)
	default:
		msg = fmt.Sprintf("search: sustained %g msg/s (every message delivered in order, p99 ≤ %v); %g msg/s failed", s.pass, cfg.searchP99, s.fail)
	}
	fmt.Fprintf(log, "loadgen %s: %s\n", cfg.label, msg)
	return nil
}

// quiesce waits up to d for every message of the points so far to arrive
// (an overloaded point leaves a backlog that would distort the next one).
func quiesce(ctx context.Context, p *pool, res *result.Scenario, d time.Duration) {
	deadline := time.Now().Add(d)
	for missing(p, res) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
}

// missing is how many deliveries of the points so far have not arrived.
func missing(p *pool, res *result.Scenario) int64 {
	var n int64
	for i, pt := range res.Points {
		n += pt.Expected - p.points[i].Load().unique.Load()
	}
	return n
}

// recheckOrder compares the receivers' sequences again at the end of the
// run, once late messages had their chance, for the points that were
// incomplete at the end of their drain window.
func recheckOrder(p *pool, res *result.Scenario, log io.Writer) {
	for i := range res.Points {
		pt := &res.Points[i]
		if pt.OrderIncomplete == 0 {
			continue
		}
		ps := p.points[i].Load()
		pt.OrderDiffers, pt.OrderGroups, pt.OrderIncomplete = ps.orderCheckNsp(clientIndexes(ps.measured))
		fmt.Fprintf(log, "loadgen %s: %g msg/s at the end of the run: order differs at %d receivers, %d distinct sequences, %d receivers still missing messages\n",
			res.Server, pt.Rate, pt.OrderDiffers, pt.OrderGroups, pt.OrderIncomplete)
	}
}

func clientIndexes(cs []*client) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.idx
	}
	return out
}

// awaitLate gives messages missing at the end of their point's drain window
// one more window to arrive, then records how many did (late, not lost).
func awaitLate(ctx context.Context, cfg *config, p *pool, res *result.Scenario) {
	if missing(p, res) == 0 {
		return
	}
	quiesce(ctx, p, res, cfg.drain)
	for i := range res.Points {
		pt := &res.Points[i]
		pt.Late = p.points[i].Load().unique.Load() - pt.Delivered
	}
}

// checkSlow lets the slow clients read again and sees, within a few seconds,
// which of them the server had disconnected (their reads end at once after
// the few KB their sockets buffered) and which are still being fed.
func checkSlow(p *pool, slow []*client, res *result.Slow) {
	for _, c := range slow {
		p.resume(c)
	}
	deadline := time.After(3 * time.Second)
	for _, c := range slow {
		select {
		case err := <-c.done:
			c.done <- err
			res.Disconnected++
		case <-deadline:
			res.StillConnected++
			deadline = closedTimeChan
		}
	}
}

var closedTimeChan = func() <-chan time.Time {
	ch := make(chan time.Time)
	close(ch)
	return ch
}()

// runPoint has the senders emit rate messages per second in total for
// cfg.duration, each on its own schedule (sender k starts k/rate seconds in),
// then waits up to cfg.drain for every delivery.
func runPoint(ctx context.Context, cfg *config, p *pool, prof *profiler, idx int, rate float64, senders []*client) (result.Point, error) {
	ps := newPointStats(len(senders), len(p.clients))
	for _, c := range p.clients {
		if c != nil && !c.slow && c.alive.Load() {
			ps.measured = append(ps.measured, c)
		}
	}
	measured := ps.measured
	// Each sender's messages reach the receivers of its namespace.
	inNsp := map[int]int64{}
	for _, c := range measured {
		inNsp[cfg.nspIndex(c.idx)]++
	}
	ps.senderNsp = make([]int, len(senders))
	for si, c := range senders {
		ps.senderNsp[si] = cfg.nspIndex(c.idx)
	}
	ps.nspIndex = cfg.nspIndex
	p.points[idx].Store(ps)
	receivers := len(measured)
	tag := fmt.Sprintf("%s-%s-%g", cfg.label, cfg.transport, rate)
	waitProf := prof.cpu("cpu-"+tag+".pprof", cfg.duration)
	prof.save("allocs-"+tag+"-before.pprof", "/debug/pprof/allocs")

	s0, _ := readProcs(cfg.pids)
	c0, _ := selfCPU()
	t0 := time.Now()
	t0Ns := t0.Sub(p.base).Nanoseconds()
	interval := time.Duration(float64(len(senders)) / rate * float64(time.Second))
	sent := make([]int64, len(senders))
	var sendErrs atomic.Int64
	var maxLag atomic.Int64
	var wg sync.WaitGroup
	for si, c := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := t0.Add(time.Duration(si) * interval / time.Duration(len(senders)))
			var text, pkt []byte
			for k := int64(0); ; k++ {
				at := first.Add(time.Duration(k) * interval)
				if at.Sub(t0) >= cfg.duration || ctx.Err() != nil {
					return
				}
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				} else if lag := int64(-d); lag > maxLag.Load() {
					maxLag.Store(lag)
				}
				m := message{point: idx, sender: si, seq: k, sentNs: time.Since(p.base).Nanoseconds()}
				text = appendText(text[:0], m, cfg.msgSize)
				pkt = eio.AppendUserMessageIn(pkt[:0], cfg.nspOf(c.idx), text)
				if err := p.emit(ctx, c, pkt); err != nil {
					sendErrs.Add(1)
					p.noteErr(fmt.Errorf("send: %w", err))
					return
				}
				sent[si]++
			}
		}()
	}
	wg.Wait()
	sendEnd := time.Now()
	var total, expected int64
	var perMsg float64 // receivers per message, on average over the senders
	for si, n := range sent {
		total += n
		expected += n * inNsp[ps.senderNsp[si]]
		perMsg += float64(inNsp[ps.senderNsp[si]]) / float64(len(senders))
	}
	ps.sentBy = sent
	drainEnd := sendEnd.Add(cfg.drain)
	for ps.unique.Load() < expected && time.Now().Before(drainEnd) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	drain := time.Since(sendEnd)
	s1, err := readProcs(cfg.pids)
	c1, _ := selfCPU()
	wall := time.Since(t0).Seconds()
	waitProf()
	prof.save("allocs-"+tag+"-after.pprof", "/debug/pprof/allocs")

	q := ps.lat.percentiles(0.50, 0.90, 0.99, 0.999)
	delivered := ps.unique.Load()
	pt := result.Point{
		Rate:          rate,
		Senders:       len(senders),
		Receivers:     receivers,
		DurationS:     cfg.duration.Seconds(),
		Sent:          total,
		Expected:      expected,
		Delivered:     delivered,
		Lost:          expected - delivered,
		Duplicated:    ps.dups.Load(),
		Reordered:     ps.reordered.Load(),
		DrainS:        drain.Seconds(),
		SendErrors:    int(sendErrs.Load()),
		SendLagMaxMs:  float64(maxLag.Load()) / 1e6,
		P50Ms:         q[0] / 1e3,
		P90Ms:         q[1] / 1e3,
		P99Ms:         q[2] / 1e3,
		P999Ms:        q[3] / 1e3,
		MaxMs:         float64(ps.lat.max.Load()) / 1e3,
		OfferedPerSec: rate * perMsg,
		ServerCPUS:    (s1.cpu - s0.cpu).Seconds(),
		ServerSysS:    (s1.sys - s0.sys).Seconds(),
		ServerRSSKB:   s1.rssKB,
		LoadgenCPUS:   (c1 - c0).Seconds(),
	}
	for _, c := range measured {
		if !c.alive.Load() {
			pt.Disconnected++
		}
	}
	pt.Complete = pt.Lost == 0 && pt.Duplicated == 0 && pt.Reordered == 0 && pt.SendErrors == 0
	pt.OrderDiffers, pt.OrderGroups, pt.OrderIncomplete = ps.orderCheckNsp(clientIndexes(measured))
	if last := ps.lastRecv.Load(); last > t0Ns {
		pt.AchievedPerSec = float64(delivered) / (float64(last-t0Ns) / 1e9)
	}
	if wall > 0 {
		pt.ServerCPUPercent = 100 * pt.ServerCPUS / wall
		pt.LoadgenCPUPercent = 100 * pt.LoadgenCPUS / wall
	}
	if delivered > 0 {
		pt.ServerCPUPerDeliveryUs = pt.ServerCPUS * 1e6 / float64(delivered)
	}
	if err != nil {
		return pt, fmt.Errorf("server process: %w", err)
	}
	return pt, ctx.Err()
}
