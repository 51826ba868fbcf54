package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/chatio/socketio-chat/bench/internal/result"
)

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// writeMarkdown writes the run as Markdown tables for docs/BENCHMARKS.md.
func writeMarkdown(w io.Writer, res *Run) {
	m := res.Machine
	fmt.Fprintf(w, "Run of %s (%s, %.1f minutes): `%s`\n\n", res.Started.Format("2006-01-02 15:04 UTC"),
		map[bool]string{true: "quick", false: "full"}[res.Quick], res.Finished.Sub(res.Started).Minutes(), strings.TrimSpace(res.Command))
	fmt.Fprintf(w, "Machine: %d × %s, %s RAM, Linux %s, Go %s, Node.js %s, open-file limit %d, load average %s at the start and %s at the end.\n\n",
		m.NProc, m.CPUModel, m.MemTotal, m.Kernel, m.GoVersion, m.NodeVersion, m.OpenFiles, m.LoadAvgStart, m.LoadAvgEnd)

	fmt.Fprintln(w, "Servers:")
	fmt.Fprintln(w)
	for _, name := range sortedKeys(res.Servers) {
		fmt.Fprintf(w, "- `%s`: %s\n", name, res.Servers[name])
	}
	fmt.Fprintln(w)
	if len(res.SweepVariants) > 0 {
		fmt.Fprintf(w, "The sweep also ran %s: our server with other flags, compared with its default flags.\n\n", "`"+strings.Join(res.SweepVariants, "`, `")+"`")
	}
	fmt.Fprintf(w, "| metric | Go (`%s`) | Node | floor | Go/Node | target | met |\n", res.Compared)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|---|")
	for _, r := range res.Summary {
		metric := r.Metric
		if r.Unit != "" {
			metric += " (" + r.Unit + ")"
		}
		if r.Note != "" {
			metric += " — " + r.Note
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", metric, num(r.Go), num(r.Node), num(r.Floor), ratio(r.Ratio), r.Target, met(r.Met))
	}

	fmt.Fprintln(w, "\nEvery load point:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "(*order ≠*: receivers whose sequence of messages differs from the most common one; sweep points in rate order, the search ran them in another.)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | server | msg/s | clients | deliveries/s offered | achieved | delivered/expected | lost (late) | dup | reord | order ≠ | disc. | p50 ms | p99 ms | max ms | server CPU % | µs/delivery | server RSS MB | loadgen CPU % | send lag ms |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range res.Scenarios {
		pts := append([]result.Point(nil), s.Points...)
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].Rate < pts[j].Rate })
		for _, p := range pts {
			name := s.Name
			if s.Transport != "websocket" {
				name += " (" + s.Transport + ")"
			}
			fmt.Fprintf(w, "| %s | %s | %g | %d | %s | %s | %d/%d | %d (%d) | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				name, s.Server, p.Rate, p.Receivers, num(&p.OfferedPerSec), num(&p.AchievedPerSec),
				p.Delivered, p.Expected, p.Lost, p.Late, p.Duplicated, p.Reordered, p.OrderDiffers, p.Disconnected,
				num(&p.P50Ms), num(&p.P99Ms), num(&p.MaxMs), num(&p.ServerCPUPercent), num(&p.ServerCPUPerDeliveryUs),
				num(ptr(float64(p.ServerRSSKB)/1024)), num(&p.LoadgenCPUPercent), num(&p.SendLagMaxMs))
		}
	}

	fmt.Fprintln(w, "\nConnections and memory:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | server | clients | connect/s | failed attempts | server RSS at 0 MB | RSS MB | KB per connection | KB per connection added | goroutines per connection | idle server CPU % |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range res.Scenarios {
		for k, r := range s.Ramps {
			var rss, per, slope, gpc, cpu string = "-", "-", "-", "-", "-"
			if k < len(s.Idle) {
				id := s.Idle[k]
				rss = num(ptr(float64(id.RSSKB) / 1024))
				if s.Name == "idle" {
					per = num(&id.PerConnKB)
					slope = num(ptr(idleSlope(&s, k)))
					cpu = num(&id.ServerCPUPercent)
				}
				if id.GoroutinesPerCon != 0 {
					gpc = num(&id.GoroutinesPerCon)
				}
			}
			fmt.Fprintf(w, "| %s | %s | %d → %d | %s | %d | %s | %s | %s | %s | %s | %s |\n",
				s.Name, s.Server, r.From, r.To, num(&r.PerSec), r.Failures, num(ptr(float64(s.RSS0KB)/1024)), rss, per, slope, gpc, cpu)
		}
	}

	for _, s := range res.Scenarios {
		if s.Name != "idle" || len(s.Idle) < 2 {
			continue
		}
		k := len(s.Idle) - 1
		last, slope := s.Idle[k], idleSlope(&s, k)
		fmt.Fprintf(w, "\nIdle memory, %s: %.1f KB per connection added between %d and %d connections; at that slope 1 000 000 connections would take %.2f GB (RSS at %d, %.0f MB, + %.1f KB × %d).\n",
			s.Server, slope, s.Idle[k-1].Clients, last.Clients, projectRSS(last, slope, 1_000_000)/(1<<20),
			last.Clients, float64(last.RSSKB)/1024, slope, 1_000_000-last.Clients)
	}
	for _, s := range res.Scenarios {
		if d := s.Disconnect; d != nil && d.Clients > 0 {
			fmt.Fprintf(w, "\nMass disconnect, %s: %d clients closed at once (in %.2f s by the load generator); the server spent %.0f ms of CPU (%.1f µs per disconnect) and was busy for %.2f s after the first close.\n",
				s.Server, d.Clients, d.CloseSeconds, 1000*d.ServerCPUS, 1e6*d.ServerCPUS/float64(d.Clients), d.BusySeconds)
		}
	}

	var slow []string
	for _, s := range res.Scenarios {
		if s.Slow != nil {
			slow = append(slow, fmt.Sprintf("%s: %d of %d slow clients (receive buffer %d B) disconnected by the server, %d still connected; server RSS %.0f → %.0f MB",
				s.Server, s.Slow.Disconnected, s.Slow.Clients, s.Slow.ReadBufBytes, s.Slow.StillConnected,
				float64(s.Slow.ServerRSSStartKB)/1024, float64(s.Slow.ServerRSSEndKB)/1024))
		}
	}
	if len(slow) > 0 {
		fmt.Fprintln(w, "\nSlow consumers:")
		fmt.Fprintln(w)
		for _, l := range slow {
			fmt.Fprintf(w, "- %s\n", l)
		}
	}

	fmt.Fprintln(w, "\nLoad generator (per scenario run):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | server | wall s | loadgen CPU s | loadgen max RSS MB | loadgen goroutines |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|")
	for _, s := range res.Scenarios {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %d |\n", s.Name, s.Server, num(&s.WallS), num(&s.LoadgenCPUS),
			num(ptr(float64(s.LoadgenMaxRSSKB)/1024)), s.LoadgenGoroutines)
	}

	var errs []string
	errs = append(errs, res.Errors...)
	for _, s := range res.Scenarios {
		for _, e := range s.Errors {
			errs = append(errs, s.Name+"/"+s.Server+": "+e)
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(w, "\nNotes and errors reported by the run:")
		fmt.Fprintln(w)
		for _, e := range errs {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
	for _, p := range res.Profiles {
		fmt.Fprintf(w, "\nProfile %s (`%s`):\n\n```\n%s\n```\n", p.Title, p.Command, strings.TrimSpace(p.Top))
	}
}
