// Command driver runs the side-by-side benchmark of issue 4: our Go server
// (built from the working tree) and the Node.js tutorial server
// (bench/node-tutorial/index.js), one after the other, through the same
// scenarios driven by bench/loadgen. It prints a table with Go/Node ratios
// against the targets, writes every measurement as JSON, a Markdown table and
// a PNG plot of the broadcast sweep (p99 latency against deliveries/s).
//
// Run it from the repository root through bench/run.sh, which raises the
// open-file limit first:
//
//	bench/run.sh            # full run, about 10 minutes
//	bench/run.sh -quick     # development run, under 2 minutes
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
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
}

// scenarios returns the benchmark's scenarios, full-size or quick.
func scenarios(quick bool) []scenario {
	if quick {
		return []scenario{
			{"idle", []string{"-scenario", "idle", "-clients", "1000,2000", "-settle", "2s"}, 2 * time.Minute},
			{"sweep", []string{"-clients", "300", "-senders", "10", "-rates", "25,100,400", "-duration", "2s", "-drain", "3s", "-settle", "1s"}, 2 * time.Minute},
			{"fanout", []string{"-clients", "2000", "-senders", "5", "-rates", "5", "-duration", "2s", "-drain", "3s", "-settle", "1s"}, 2 * time.Minute},
			{"polling", []string{"-transport", "polling", "-clients", "100", "-senders", "10", "-rates", "10", "-duration", "2s", "-drain", "3s", "-settle", "1s"}, 2 * time.Minute},
			{"slow", []string{"-clients", "200", "-senders", "10", "-slow", "5", "-rates", "100", "-msg-size", "4096", "-duration", "3s", "-drain", "3s", "-settle", "1s"}, 2 * time.Minute},
		}
	}
	return []scenario{
		{"idle", []string{"-scenario", "idle", "-clients", "5000,10000", "-settle", "5s"}, 5 * time.Minute},
		{"sweep", []string{"-clients", "1000", "-senders", "10", "-rates", "25,50,100,200,400", "-duration", "10s", "-drain", "10s", "-settle", "2s"}, 8 * time.Minute},
		{"fanout", []string{"-clients", "10000", "-senders", "5", "-rates", "1,5", "-duration", "10s", "-drain", "10s", "-settle", "3s"}, 5 * time.Minute},
		{"polling", []string{"-transport", "polling", "-clients", "500", "-senders", "10", "-rates", "10", "-duration", "10s", "-drain", "5s", "-settle", "2s"}, 5 * time.Minute},
		// 5 clients stop reading while 4 KB messages arrive at 100/s: 400 KB/s
		// piles up for each of them (Go's default send queue is 2 MB).
		{"slow", []string{"-clients", "200", "-senders", "10", "-slow", "5", "-rates", "100", "-msg-size", "4096", "-duration", "15s", "-drain", "5s", "-settle", "2s"}, 5 * time.Minute},
	}
}

// Run is the JSON file the driver writes.
type Run struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Command  string            `json:"command"`
	Quick    bool              `json:"quick"`
	Servers  map[string]string `json:"servers"` // label → what it was built from
	// Compared is the Go server the summary compares with Node: the first
	// Go server of -servers.
	Compared  string            `json:"compared"`
	Machine   Machine           `json:"machine"`
	Scenarios []result.Scenario `json:"scenarios"`
	Summary   []Row             `json:"summary"`
	Profiles  []Profile         `json:"profiles,omitempty"`
	Errors    []string          `json:"errors,omitempty"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("driver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "small, short scenarios for development (under 2 minutes)")
	servers := fs.String("servers", "go,node", "servers to run, in order: go (this working tree), node (the tutorial), go@REV (a git revision, e.g. go@HEAD)")
	only := fs.String("scenarios", "idle,sweep,fanout,polling,slow", "scenarios to run")
	root := fs.String("root", ".", "repository root")
	out := fs.String("out", "", "results JSON (default bench/results/latest.json; -quick: bench/results/tmp/quick.json)")
	plot := fs.String("plot", "", "broadcast sweep PNG (default docs/img/broadcast-sweep.png; -quick: bench/results/tmp/broadcast-sweep.png)")
	profile := fs.String("profile", "", "directory for pprof profiles of our server (builds a profiling variant with a pprof listener)")
	extra := fs.String("loadgen-args", "", "extra loadgen flags for every scenario, e.g. \"-reader goroutine\"")
	goArgs := fs.String("go-args", "", "extra flags for our server, e.g. \"-event-rate 1000\" (default: its defaults, as users run it)")
	from := fs.String("from", "", "do not run anything: re-render the table, Markdown and plot of an earlier results JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *out == "" {
		*out = "bench/results/latest.json"
		if *quick {
			*out = "bench/results/tmp/quick.json"
		}
	}
	if *plot == "" {
		*plot = "docs/img/broadcast-sweep.png"
		if *quick {
			*plot = "bench/results/tmp/broadcast-sweep.png"
		}
	}
	if *from != "" {
		return rerender(*from, *out, *plot, stdout, stderr)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		want[strings.TrimSpace(s)] = true
	}

	var names []string
	for _, n := range strings.Split(*servers, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	res := &Run{Started: time.Now().UTC(), Quick: *quick, Command: "bench/run.sh " + strings.Join(args, " "), Servers: map[string]string{}}
	for _, n := range names {
		res.Servers[n] = revision(ctx, *root, n)
		if res.Compared == "" && isGo(n) {
			res.Compared = n
		}
	}
	limit := raiseNoFile()
	res.Machine = machine(ctx, limit)
	fmt.Fprintf(stderr, "driver: %s, %d CPUs, Go %s, Node %s, open files %d, load %s\n",
		res.Machine.CPUModel, res.Machine.NProc, res.Machine.GoVersion, res.Machine.NodeVersion, limit, res.Machine.LoadAvgStart)
	if limit < 12000 && !*quick {
		fmt.Fprintf(stderr, "driver: warning: open-file limit %d; 10 000 clients need more than 10 000 per process\n", limit)
	}

	tmp, err := os.MkdirTemp("", "bench-")
	if err != nil {
		fmt.Fprintf(stderr, "driver: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bins, loadgen, err := build(ctx, *root, tmp, names, *profile != "", stderr)
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

	for _, sc := range scenarios(*quick) {
		if !want[sc.name] {
			continue
		}
		for _, name := range names {
			r, err := runOne(ctx, *root, bins, strings.Fields(*goArgs), loadgen, name, sc, *profile, strings.Fields(*extra), stderr)
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

// runOne starts server name, runs one scenario against it with the load
// generator and stops the server.
func runOne(ctx context.Context, root string, bins map[string]string, goArgs []string, loadgen, name string, sc scenario, profileDir string, extra []string, log io.Writer) (*result.Scenario, error) {
	fmt.Fprintf(log, "driver: == %s on %s\n", sc.name, name)
	profiling := profileDir != "" && isGo(name)
	srv, err := startServer(ctx, name, root, bins, goArgs, profiling, log)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	args := append([]string{"-url", srv.url(), "-pid", fmt.Sprint(srv.pid()), "-label", name}, sc.args...)
	if profiling {
		dir := filepath.Join(profileDir, sanitize(name), sc.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		args = append(args, "-pprof", srv.pprofURL, "-profile-dir", dir)
	}
	args = append(args, extra...)
	lctx, cancel := context.WithTimeout(ctx, sc.timeout)
	defer cancel()
	cmd := exec.CommandContext(lctx, loadgen, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, log
	runErr := cmd.Run()
	var r result.Scenario
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("loadgen: %w", runErr)
		}
		return nil, fmt.Errorf("loadgen output: %w", err)
	}
	r.Name = sc.name
	select {
	case err := <-srv.exited:
		srv.exited <- err
		r.Errors = append(r.Errors, fmt.Sprintf("server exited during the run: %v", err))
	default:
	}
	if runErr != nil {
		return &r, fmt.Errorf("loadgen: %w", runErr)
	}
	return &r, nil
}

// raiseNoFile lifts the open-file soft limit to the hard limit; calling
// Setrlimit explicitly also makes the servers started from here inherit it.
func raiseNoFile() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
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
