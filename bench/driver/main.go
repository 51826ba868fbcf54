// Command driver runs the side-by-side benchmark (docs/BENCHMARKS.md): our
// Go server (built from the working tree) and the Node.js tutorial server
// (bench/node-tutorial/index.js), one after the other, through the same
// scenarios driven by bench/loadgen; the sweep also runs our server with
// -recovery, -redis and both. It prints a table with Go/Node ratios against
// the targets, writes every measurement as JSON, a Markdown table and a PNG
// plot of the broadcast sweep (p99 latency against deliveries/s).
//
// Run it from the repository root through bench/run.sh, which raises the
// open-file limit first:
//
//	bench/run.sh            # full run, about 15 minutes
//	bench/run.sh -quick     # development run, 3–4 minutes
//	bench/run.sh -scenarios idle,cpu
//	bench/run.sh -servers go -scenarios sweep,idle -profile bench/results/tmp/prof
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chatio/socketio-chat/bench/internal/result"
)

// scenario is one row of the benchmark: the loadgen arguments for it.
type scenario struct {
	name string
	args []string
	// timeout bounds one loadgen invocation.
	timeout time.Duration
	// variants: the scenario also runs the -sweep-variants servers.
	variants bool
	// cluster: the scenario runs the -cluster-setups (two nodes each)
	// instead of -servers.
	cluster bool
	// env is added to the servers' environment (NAMESPACES, read by ours
	// and by the Node tutorial server).
	env []string
	// dynamic, when set, adds arguments that depend on the earlier
	// scenarios of this run (the cpu scenario's rates); notes go to the
	// run's errors and notes.
	dynamic func(res *Run, args []string) (more []string, notes []string)
}

// sweepLadder is the sweep's ladder of total message rates (msg/s, to every
// client). With sweepSenders senders the top rate is 40 messages/s per
// sender, inside the server's default per-connection event limit (50/s,
// burst 100), so every server runs with its default flags.
const (
	sweepLadder  = "25,50,100,200,400,800,1600"
	sweepSenders = "40"
)

// scenarios returns the benchmark's scenarios, full-size or quick. cpuAt
// lists the deliveries/s of the cpu scenario's points ("node": the highest
// rate Node sustained in this run's sweep).
func scenarios(quick bool, cpuAt []string) []scenario {
	if quick {
		return []scenario{
			{name: "idle", args: []string{"-scenario", "idle", "-clients", "1000,2000", "-settle", "2s"}, timeout: 2 * time.Minute},
			{name: "sweep", args: []string{"-search", "-clients", "300", "-senders", "10", "-rates", "25,100,400", "-refine", "1", "-duration", "2s", "-drain", "3s", "-settle", "1s"}, timeout: 2 * time.Minute, variants: true},
			{name: "cpu", args: []string{"-clients", "300", "-senders", "10", "-duration", "2s", "-drain", "3s", "-settle", "1s", "-stop-p99", "0"}, timeout: 2 * time.Minute, dynamic: cpuRates(cpuAt)},
			{name: "fanout", args: []string{"-clients", "2000", "-senders", "5", "-rates", "5", "-duration", "2s", "-drain", "3s", "-settle", "1s"}, timeout: 2 * time.Minute},
			{name: "polling", args: []string{"-transport", "polling", "-clients", "100", "-senders", "10", "-rates", "10", "-duration", "2s", "-drain", "3s", "-settle", "1s"}, timeout: 2 * time.Minute},
			{name: "slow", args: []string{"-clients", "200", "-senders", "10", "-slow", "5", "-rates", "100", "-msg-size", "4096", "-duration", "3s", "-drain", "3s", "-settle", "1s"}, timeout: 2 * time.Minute},
			{name: "namespaces", args: []string{"-search", "-clients", "300", "-senders", "40", "-namespaces", "4", "-rates", "100,400,1600", "-refine", "1", "-duration", "2s", "-drain", "3s", "-settle", "1s"}, timeout: 2 * time.Minute, env: namespacesEnv},
			{name: "cluster", args: []string{"-search", "-clients", "300", "-senders", "10", "-rates", "25,100,400", "-refine", "1", "-duration", "2s", "-drain", "3s", "-settle", "1s"}, timeout: 2 * time.Minute, cluster: true},
		}
	}
	return []scenario{
		// 18 000 is as many connections as one process can hold under a
		// 20 000 open-file limit, with room for the process's own files.
		{name: "idle", args: []string{"-scenario", "idle", "-clients", "5000,18000", "-settle", "5s"}, timeout: 5 * time.Minute},
		// Climb the ladder until a point loses a message or its p99 passes
		// 100 ms, then bisect three times between the last pass and the
		// first fail: the sustained rate is known within 1/8 of the bracket
		// (12.5 % of a doubling), fine enough for the variants' 20 %.
		{name: "sweep", args: []string{"-search", "-clients", "1000", "-senders", sweepSenders, "-rates", sweepLadder, "-refine", "3", "-search-p99", "100ms", "-duration", "8s", "-drain", "5s", "-settle", "2s"}, timeout: 6 * time.Minute, variants: true},
		{name: "cpu", args: []string{"-clients", "1000", "-senders", "10", "-duration", "10s", "-drain", "5s", "-settle", "2s", "-stop-p99", "0"}, timeout: 3 * time.Minute, dynamic: cpuRates(cpuAt)},
		{name: "fanout", args: []string{"-clients", "10000", "-senders", "5", "-rates", "1,5", "-duration", "10s", "-drain", "10s", "-settle", "3s"}, timeout: 5 * time.Minute},
		{name: "polling", args: []string{"-transport", "polling", "-clients", "500", "-senders", "10", "-rates", "10", "-duration", "10s", "-drain", "5s", "-settle", "2s"}, timeout: 5 * time.Minute},
		// 5 clients stop reading while 4 KB messages arrive at 100/s: 400 KB/s
		// piles up for each of them (Go's default send queue is 2 MB).
		{name: "slow", args: []string{"-clients", "200", "-senders", "10", "-slow", "5", "-rates", "100", "-msg-size", "4096", "-duration", "15s", "-drain", "5s", "-settle", "2s"}, timeout: 5 * time.Minute},
		// The sweep's 1 000 clients spread over 4 namespaces (250 each),
		// 40 senders in each (160: at most 40 messages/s each, as the
		// sweep's), so a broadcast reaches 250 clients and the ladder's
		// top, 6 400 msg/s, is 1 600 000 deliveries/s. Four namespaces'
		// broadcasts run in parallel (one order lock each).
		{name: "namespaces", args: []string{"-search", "-clients", "1000", "-senders", "160", "-namespaces", "4", "-rates", namespacesLadder, "-refine", "2", "-search-p99", "100ms", "-duration", "5s", "-drain", "5s", "-settle", "2s"}, timeout: 5 * time.Minute, env: namespacesEnv},
		// Two nodes on one Redis for each -cluster-setups entry (cluster.go):
		// the sweep's clients, senders, ladder and bound, split over both
		// nodes; two bisections and 5 s points keep the five setups within
		// about 10 minutes. Not in the default -scenarios.
		{name: "cluster", args: []string{"-search", "-clients", "1000", "-senders", sweepSenders, "-rates", sweepLadder, "-refine", "2", "-search-p99", "100ms", "-duration", "5s", "-drain", "5s", "-settle", "2s"}, timeout: 4 * time.Minute, cluster: true},
	}
}

// allScenarios is the default of -scenarios.
const allScenarios = "idle,sweep,cpu,fanout,polling,slow,namespaces"

// namespacesLadder is the namespaces scenario's ladder (msg/s in total,
// each to a quarter of the clients); namespacesEnv makes both servers
// serve the loadgen's -namespaces 4 (/n0 … /n3) as chat namespaces.
const namespacesLadder = "100,200,400,800,1600,3200,6400"

var namespacesEnv = []string{"NAMESPACES=/n0,/n1,/n2,/n3"}

// CPURate is one point of the cpu scenario: Rate messages/s to every client,
// chosen so that the server makes DeliveriesPerSec deliveries per second.
type CPURate struct {
	Rate             float64 `json:"rate"`
	DeliveriesPerSec float64 `json:"deliveriesPerSec"`
	Label            string  `json:"label"`
	Note             string  `json:"note,omitempty"`
}

// cpuRates returns the cpu scenario's dynamic arguments: -rates for each
// deliveries/s in at, where "node" is the highest rate Node sustained in
// this run's sweep (all delivered, p99 ≤ 100 ms).
func cpuRates(at []string) func(res *Run, args []string) ([]string, []string) {
	return func(res *Run, args []string) ([]string, []string) {
		clients := lastClients(args)
		if clients == 0 {
			return nil, []string{"cpu: no -clients"}
		}
		var notes []string
		res.CPURates = nil
		for _, a := range at {
			var d float64
			var label, note string
			if a == "node" {
				ns := find(res, "sweep", "node")
				p := bestPoint(ns)
				if p == nil {
					notes = append(notes, "cpu: no point at Node's highest sustained rate: the sweep did not run on node in this run, or Node sustained no rate (use -cpu-at to give deliveries/s)")
					continue
				}
				d = p.OfferedPerSec
				label = "Node's highest sustained rate"
				if _, top := sustained(ns); top {
					note = "Node passed the sweep's top point: its highest sustained rate is higher"
				}
			} else {
				v, err := strconv.ParseFloat(a, 64)
				if err != nil || v <= 0 {
					notes = append(notes, fmt.Sprintf("cpu: -cpu-at %q: not a rate", a))
					continue
				}
				d = v
			}
			rate := math.Round(d/float64(clients)*1000) / 1000
			if label == "" {
				label = fmt.Sprintf("%s deliveries/s", num(&d))
			} else {
				label = fmt.Sprintf("%s, %s deliveries/s", label, num(&d))
			}
			dup := false
			for i := range res.CPURates {
				if res.CPURates[i].Rate == rate {
					res.CPURates[i].Label += "; " + label
					dup = true
				}
			}
			if !dup {
				res.CPURates = append(res.CPURates, CPURate{Rate: rate, DeliveriesPerSec: d, Label: label, Note: note})
			}
		}
		if len(res.CPURates) == 0 {
			return nil, append(notes, "cpu: no rate to measure")
		}
		var rates []string
		for _, r := range res.CPURates {
			rates = append(rates, strconv.FormatFloat(r.Rate, 'g', -1, 64))
		}
		return []string{"-rates", strings.Join(rates, ",")}, notes
	}
}

// Run is the JSON file the driver writes.
type Run struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Command  string            `json:"command"`
	Quick    bool              `json:"quick"`
	Servers  map[string]string `json:"servers"` // label → what it was built from, with which flags
	// Compared is the Go server the summary compares with Node: the first
	// Go server of -servers.
	Compared string `json:"compared"`
	// SweepVariants are the servers that ran the sweep only: Compared with
	// each -sweep-variants suffix.
	SweepVariants []string          `json:"sweepVariants,omitempty"`
	Variants      map[string]string `json:"variants,omitempty"` // variant name → its server flags
	CPURates      []CPURate         `json:"cpuRates,omitempty"`
	Machine       Machine           `json:"machine"`
	Scenarios     []result.Scenario `json:"scenarios"`
	Summary       []Row             `json:"summary"`
	Profiles      []Profile         `json:"profiles,omitempty"`
	Errors        []string          `json:"errors,omitempty"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("driver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "small, short scenarios for development (3–4 minutes)")
	servers := fs.String("servers", "go,node,floor", "servers to run in every scenario, in order: go (this working tree), node (the tutorial), floor (bench/floor, the least a broadcaster can do per delivery; cpu and fanout only), go@REV (a git revision, e.g. go@HEAD), each Go one with optional +VARIANT suffixes (go+recovery)")
	only := fs.String("scenarios", allScenarios, "scenarios to run")
	sweepVariants := fs.String("sweep-variants", "recovery,redis,recovery+redis,history,history-pg", "variants of the compared Go server (the first Go of -servers) that also run the sweep: recovery is -recovery 2m, redis is -redis <-redis-url>, history is -history <-history-file>, history-pg is -history <-history-pg>, others come from -variant; empty: none")
	var variantDefs listFlag
	fs.Var(&variantDefs, "variant", "define a server variant NAME=FLAGS (repeatable), e.g. -variant 'gc400=-gogc 400', then -servers go,go+gc400,node")
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379/12", "Redis of the redis variant; its database is flushed before and after each server that uses it")
	historyFile := fs.String("history-file", filepath.Join(os.TempDir(), fmt.Sprintf("bench-history-%d.db", os.Getpid())), "SQLite file of the history variant; deleted before and after each server that uses it")
	historyPG := fs.String("history-pg", "postgres://postgres@127.0.0.1:5432/bench_history?sslmode=disable", "PostgreSQL database of the history-pg variant; dropped and created before each server that uses it, dropped after")
	cpuAt := fs.String("cpu-at", "25000,node", "deliveries/s of the cpu scenario's points; node: the highest rate Node sustained in this run's sweep")
	root := fs.String("root", ".", "repository root")
	out := fs.String("out", "", "results JSON (default bench/results/latest.json; -quick: bench/results/tmp/quick.json)")
	plot := fs.String("plot", "", "broadcast sweep PNG (default docs/img/broadcast-sweep.png with the default -out, else next to -out)")
	profile := fs.String("profile", "", "directory for pprof profiles of our server (builds a profiling variant with a pprof listener)")
	extra := fs.String("loadgen-args", "", "extra loadgen flags for every scenario (they override the scenario's own), e.g. \"-reader goroutine\"")
	goArgs := fs.String("go-args", "", "extra flags for every Go server, e.g. \"-event-rate 1000\" (default: its defaults, as users run it)")
	setups := fs.String("cluster-setups", strings.Join(clusterSetups, ","), "the cluster scenario's setups, two nodes on -redis-url each: pubsub, sharded, streams, streams-ordered (-cluster-order) with our server, node-streams (two Node.js nodes on @socket.io/redis-streams-adapter)")
	from := fs.String("from", "", "do not run anything: re-render the table, Markdown and plot of an earlier results JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "driver: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *plot == "" {
		switch {
		case *out == "" && !*quick:
			*plot = "docs/img/broadcast-sweep.png"
		case *out == "":
			*plot = "bench/results/tmp/broadcast-sweep.png"
		default:
			*plot = strings.TrimSuffix(*out, ".json") + "-sweep.png"
		}
	}
	if *out == "" {
		*out = "bench/results/latest.json"
		if *quick {
			*out = "bench/results/tmp/quick.json"
		}
	}
	if *from != "" {
		return rerender(*from, *out, *plot, stdout, stderr)
	}
	want := map[string]bool{}
	known := map[string]bool{}
	for _, sc := range scenarios(*quick, nil) {
		known[sc.name] = true
	}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !known[s] {
			fmt.Fprintf(stderr, "driver: unknown scenario %q (have %s,cluster)\n", s, allScenarios)
			return 2
		}
		want[s] = true
	}

	variants := defaultVariants(*redisURL)
	addHistoryVariants(variants, *historyFile, *historyPG)
	for _, d := range variantDefs {
		if err := variants.set(d); err != nil {
			fmt.Fprintf(stderr, "driver: %v\n", err)
			return 2
		}
	}
	var names []string
	for _, n := range strings.Split(*servers, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	res := &Run{Started: time.Now().UTC(), Quick: *quick, Command: "bench/run.sh " + strings.Join(args, " "), Servers: map[string]string{}}
	for _, n := range names {
		if res.Compared == "" && isGo(n) {
			res.Compared = n
		}
	}
	if res.Compared != "" && want["sweep"] {
		for _, v := range strings.Split(*sweepVariants, ",") {
			if v = strings.Trim(strings.TrimSpace(v), "+"); v != "" {
				res.SweepVariants = append(res.SweepVariants, res.Compared+"+"+v)
			}
		}
	}
	serverArgs := map[string][]string{}
	for _, n := range append(append([]string(nil), names...), res.SweepVariants...) {
		l, err := parseLabel(n)
		if err == nil {
			serverArgs[n], err = variants.flags(l)
		}
		if err != nil {
			fmt.Fprintf(stderr, "driver: %v\n", err)
			return 2
		}
		if isGo(n) {
			serverArgs[n] = append(strings.Fields(*goArgs), serverArgs[n]...)
		}
		res.Servers[n] = revision(ctx, *root, baseOf(n))
		if len(serverArgs[n]) > 0 {
			res.Servers[n] += ", flags " + strings.Join(serverArgs[n], " ")
		}
		if len(l.variants) > 0 && res.Variants == nil {
			res.Variants = variants.describe()
		}
		if dsn := variants.historyOf(l); dsn != "" {
			if err := historyReset(dsn); err != nil {
				fmt.Fprintf(stderr, "driver: %s needs its history store: %v (start PostgreSQL on 127.0.0.1:5432, point -history-pg at one, or leave the history variants out, e.g. -sweep-variants recovery,history)\n", n, err)
				return 1
			}
		}
		if variants.usesRedis(l) {
			if err := redisFlush(*redisURL); err != nil {
				fmt.Fprintf(stderr, "driver: %s needs Redis: %v (start one on 127.0.0.1:6379, point -redis-url at one, or leave the Redis variants out, e.g. -sweep-variants recovery)\n", n, err)
				return 1
			}
		}
	}

	var clusterRuns []clusterSetup
	if want["cluster"] {
		var err error
		clusterRuns, err = clusterSetupsFor(splitList(*setups), *redisURL, fmt.Sprintf("bench-%d", os.Getpid()))
		if err != nil {
			fmt.Fprintf(stderr, "driver: %v\n", err)
			return 2
		}
		if err := redisFlush(*redisURL); err != nil {
			fmt.Fprintf(stderr, "driver: the cluster scenario needs Redis: %v (start one on 127.0.0.1:6379 or point -redis-url at one)\n", err)
			return 1
		}
		for _, cs := range clusterRuns {
			res.Servers[cs.label] = cs.describe(ctx, *root)
		}
	}

	// Every connection is a file in the server and in the load generator:
	// check the limit against the largest scenario before building anything.
	limit, hard := raiseNoFile()
	res.Machine = machine(ctx, limit)
	fmt.Fprintf(stderr, "driver: %s, %d CPUs, Go %s, Node %s, open files %d (hard limit %d), load %s\n",
		res.Machine.CPUModel, res.Machine.NProc, res.Machine.GoVersion, res.Machine.NodeVersion, limit, hard, res.Machine.LoadAvgStart)
	extraArgs := strings.Fields(*extra)
	list := scenarios(*quick, splitList(*cpuAt))
	for _, sc := range list {
		if !want[sc.name] {
			continue
		}
		if need := fdNeed(append(append([]string(nil), sc.args...), extraArgs...)); uint64(need) > limit {
			fmt.Fprintf(stderr, "driver: the %s scenario needs %d open files per process (server and load generator), the limit is %d (hard limit %d): raise the hard limit (ulimit -Hn as root, or limits.conf), or leave the scenario out with -scenarios\n",
				sc.name, need, limit, hard)
			return 1
		}
	}

	tmp, err := os.MkdirTemp("", "bench-")
	if err != nil {
		fmt.Fprintf(stderr, "driver: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	var bases []string
	for _, n := range append(append([]string(nil), names...), res.SweepVariants...) {
		if b := baseOf(n); !slices.Contains(bases, b) {
			bases = append(bases, b)
		}
	}
	if len(clusterRuns) > 0 && !slices.Contains(bases, "go") {
		bases = append(bases, "go")
	}
	bins, loadgen, err := build(ctx, *root, tmp, bases, *profile != "", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "driver: %v\n", err)
		return 1
	}
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			fmt.Fprintf(stderr, "driver: %v\n", err)
			return 1
		}
	}

	for _, sc := range list {
		if !want[sc.name] {
			continue
		}
		scArgs := append([]string(nil), sc.args...)
		if sc.dynamic != nil {
			more, notes := sc.dynamic(res, append(append([]string(nil), sc.args...), extraArgs...))
			for _, n := range notes {
				fmt.Fprintf(stderr, "driver: %s\n", n)
				res.Errors = append(res.Errors, n)
			}
			if more == nil {
				continue
			}
			scArgs = append(scArgs, more...)
		}
		sc.args = append(scArgs, extraArgs...)
		if sc.cluster {
			for _, cs := range clusterRuns {
				o := runOpts{root: *root, bins: bins, serverArgs: strings.Fields(*goArgs), loadgen: loadgen, redisURL: *redisURL, log: stderr}
				r, err := runCluster(ctx, o, cs, sc)
				if r != nil {
					res.Scenarios = append(res.Scenarios, *r)
				}
				if err != nil {
					msg := fmt.Sprintf("%s/%s: %v", sc.name, cs.label, err)
					fmt.Fprintf(stderr, "driver: %s\n", msg)
					res.Errors = append(res.Errors, msg)
				}
				if ctx.Err() != nil {
					return 1
				}
			}
			continue
		}
		run := names
		if sc.variants {
			run = append(append([]string(nil), names...), res.SweepVariants...)
		}
		for _, name := range run {
			if name == floorServer && !floorScenarios[sc.name] {
				continue
			}
			l, _ := parseLabel(name)
			o := runOpts{root: *root, bins: bins, serverArgs: serverArgs[name], loadgen: loadgen, profileDir: *profile, log: stderr}
			if variants.usesRedis(l) {
				o.redisURL = *redisURL
			}
			o.historyDSN = variants.historyOf(l)
			r, err := runOne(ctx, o, name, sc)
			if r != nil {
				res.Scenarios = append(res.Scenarios, *r)
			}
			if err != nil {
				msg := fmt.Sprintf("%s/%s: %v", sc.name, name, err)
				fmt.Fprintf(stderr, "driver: %s\n", msg)
				res.Errors = append(res.Errors, msg)
			}
			if ctx.Err() != nil {
				return 1
			}
		}
	}
	res.Machine.LoadAvgEnd = loadAvg()
	res.Finished = time.Now().UTC()
	res.Summary = summarize(res)
	if *profile != "" {
		res.Profiles = summarizeProfiles(ctx, *root, res, stderr)
	}

	printTable(stdout, res)
	if err := writeOutputs(res, *out, *plot); err != nil {
		fmt.Fprintf(stderr, "driver: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nwrote %s, %s, %s (%.1f minutes)\n", *out, strings.TrimSuffix(*out, ".json")+".md", *plot,
		res.Finished.Sub(res.Started).Minutes())
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// rerender recomputes the summary of a results file and writes the outputs
// again (after a change to the report, without a new run).
func rerender(from, out, plot string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(from)
	if err != nil {
		fmt.Fprintf(stderr, "driver: %v\n", err)
		return 1
	}
	var res Run
	if err := json.Unmarshal(b, &res); err != nil {
		fmt.Fprintf(stderr, "driver: %s: %v\n", from, err)
		return 1
	}
	res.Summary = summarize(&res)
	printTable(stdout, &res)
	if err := writeOutputs(&res, out, plot); err != nil {
		fmt.Fprintf(stderr, "driver: %v\n", err)
		return 1
	}
	return 0
}

// runOpts is what runOne needs besides the server and the scenario.
type runOpts struct {
	root       string
	bins       map[string]string // by base label (go, go@REV)
	serverArgs []string          // extra flags of this server
	loadgen    string
	profileDir string
	redisURL   string // flushed before the server starts and after it stops
	historyDSN string // emptied before the server starts, removed after it stops
	log        io.Writer
}

// runOne starts server name, runs one scenario against it with the load
// generator and stops the server.
func runOne(ctx context.Context, o runOpts, name string, sc scenario) (*result.Scenario, error) {
	log := o.log
	fmt.Fprintf(log, "driver: == %s on %s\n", sc.name, name)
	if o.redisURL != "" {
		if err := redisFlush(o.redisURL); err != nil {
			return nil, err
		}
		defer func() {
			if err := redisFlush(o.redisURL); err != nil {
				fmt.Fprintf(log, "driver: %v\n", err)
			}
		}()
	}
	if o.historyDSN != "" {
		if err := historyReset(o.historyDSN); err != nil {
			return nil, err
		}
		defer func() {
			if err := historyDrop(o.historyDSN); err != nil {
				fmt.Fprintf(log, "driver: %v\n", err)
			}
		}()
	}
	profiling := o.profileDir != "" && isGo(name)
	srv, err := startServer(ctx, name, o.root, o.bins, o.serverArgs, profiling, log, sc.env...)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	need := fdNeed(sc.args)
	if got, err := procNoFile(srv.pid()); err != nil {
		return nil, err
	} else if got < uint64(need) {
		return nil, fmt.Errorf("the %s server runs with an open-file limit of %d, the scenario needs %d", name, got, need)
	}
	args := append([]string{"-url", srv.url(), "-pid", fmt.Sprint(srv.pid()), "-label", name}, sc.args...)
	if profiling {
		dir := filepath.Join(o.profileDir, sanitize(name), sc.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		args = append(args, "-pprof", srv.pprofURL, "-profile-dir", dir)
	}
	r, err := runLoadgen(ctx, o, sc, args)
	if r == nil {
		return nil, err
	}
	select {
	case err := <-srv.exited:
		srv.exited <- err
		r.Errors = append(r.Errors, fmt.Sprintf("server exited during the run: %v", err))
	default:
	}
	return r, err
}

// runLoadgen runs the load generator with args for scenario sc, within the
// scenario's time bound, and returns its result (with an error too when it
// failed after writing one).
func runLoadgen(ctx context.Context, o runOpts, sc scenario, args []string) (*result.Scenario, error) {
	lctx, cancel := context.WithTimeout(ctx, sc.timeout)
	defer cancel()
	cmd := exec.CommandContext(lctx, o.loadgen, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, o.log
	runErr := cmd.Run()
	if lctx.Err() == context.DeadlineExceeded {
		runErr = fmt.Errorf("stopped after %v (the scenario's time bound): %w", sc.timeout, runErr)
	}
	var r result.Scenario
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("loadgen: %w", runErr)
		}
		return nil, fmt.Errorf("loadgen output: %w", err)
	}
	r.Name = sc.name
	if runErr != nil {
		return &r, fmt.Errorf("loadgen: %w", runErr)
	}
	return &r, nil
}

// writeOutputs writes the JSON, the Markdown table next to it, and the plot.
func writeOutputs(res *Run, out, plotPath string) error {
	for _, p := range []string{out, plotPath} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(js, '\n'), 0o644); err != nil {
		return err
	}
	var md bytes.Buffer
	writeMarkdown(&md, res)
	if err := os.WriteFile(strings.TrimSuffix(out, ".json")+".md", md.Bytes(), 0o644); err != nil {
		return err
	}
	png, err := sweepPlot(res)
	if err != nil {
		return err
	}
	return os.WriteFile(plotPath, png, 0o644)
}
