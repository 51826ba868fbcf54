// Command loadgen is the benchmark's load generator: it speaks Engine.IO v4 /
// Socket.IO v5 directly over WebSocket or HTTP long-polling to a chat server
// (ours or the Node.js tutorial), opens many clients, has some of them send
// user-message at a fixed total rate, measures every delivery of the
// server's io.emit('message') and prints one JSON result (bench/internal/result)
// on stdout. Progress goes to stderr.
//
// Scenarios:
//
//	idle       ramp to each -clients step, let the server settle, sample its RSS
//	broadcast  ramp to -clients, then one load point per -rates value: -senders
//	           clients send rate messages/s in total for -duration, all clients
//	           receive; with -slow K the last K clients stop reading meanwhile.
//	           With -search, -rates is a ladder climbed until a point fails
//	           (not every message delivered, or p99 over -search-p99), then
//	           -refine points bisect between the last pass and the first fail.
//
// Every point counts lost, duplicated and reordered (per sender) deliveries,
// and checks that every receiver saw the same global sequence of messages
// (one order per node): receivers whose sequence differs are counted.
//
// The server's CPU and RSS come from /proc/-pid; the load generator's own CPU
// from getrusage, so a run shows whether the generator was the bottleneck.
//
//	loadgen -url http://127.0.0.1:9000/socket.io/ -pid 1234 -scenario broadcast -clients 1000 -rates 25,50,100
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	url         string   // the first of urls
	urls        []string // the nodes' endpoints; client i dials urls[i mod len]
	pids        []int    // the servers' processes (several: a cluster's nodes, summed)
	label       string
	scenario    string
	transport   string
	clients     []int
	senders     int
	rates       []float64
	duration    time.Duration
	msgSize     int
	drain       time.Duration
	settle      time.Duration
	rampConc    int
	src         string
	stopP99     time.Duration
	slow        int
	slowReadBuf int
	pprofURL    string
	profileDir  string
	selfProfile string
	reader      string
	pollers     int
	search      bool
	searchP99   time.Duration
	refine      int
	searchMin   float64
	namespaces  int // clients spread over /n0 … /n(namespaces-1); ≤ 1: all in "/"
}

// maxPoints bounds the load points of one run (the statistics are allocated
// up front, one slot per point).
func (c *config) maxPoints() int {
	if !c.search {
		return len(c.rates)
	}
	down := 1
	for r := c.rates[0] / 2; r >= c.searchMin; r /= 2 {
		down++
	}
	return len(c.rates) + down + c.refine
}

func (c *config) maxClients() int {
	m := 0
	for _, n := range c.clients {
		m = max(m, n)
	}
	return m
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err == flag.ErrHelp {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	limit, hard := raiseNoFile()
	perClient := 1
	if cfg.transport == "polling" {
		perClient = 2 // a long-poll GET and a POST
	}
	if need := uint64(cfg.maxClients()*perClient + 64); limit < need {
		fmt.Fprintf(stderr, "loadgen: open-file limit %d (hard limit %d) is below the %d that %d %s clients need; raise the hard limit (ulimit -Hn, limits.conf) or run fewer clients\n",
			limit, hard, need, cfg.maxClients(), cfg.transport)
		return 1
	}
	if cfg.selfProfile != "" {
		f, err := os.Create(cfg.selfProfile)
		if err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	res, err := runScenario(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, out io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(out)
	var clients, rates string
	fs.StringVar(&cfg.url, "url", "http://127.0.0.1:9000/socket.io/", "Engine.IO endpoint of the server; a comma-separated list spreads the clients over several nodes of a cluster (client i on the (i mod n)-th: the senders too)")
	var pids string
	fs.StringVar(&pids, "pid", "0", "server process id, for CPU and RSS from /proc (0: not measured); a comma-separated list (the nodes of a cluster) sums them")
	fs.StringVar(&cfg.label, "label", "", "server name to put in the result")
	fs.StringVar(&cfg.scenario, "scenario", "broadcast", "idle or broadcast")
	fs.IntVar(&cfg.namespaces, "namespaces", 0, "spread the clients (senders included) over this many namespaces, /n0 … /nN-1 (client i in /n(i mod N)); each sender's messages go to its namespace's clients (the server must serve them: -namespaces / NAMESPACES); 0 or 1: all in /")
	fs.StringVar(&cfg.transport, "transport", "websocket", "websocket or polling (no upgrade)")
	fs.StringVar(&clients, "clients", "1000", "clients; for idle a comma list of steps, e.g. 5000,10000")
	fs.IntVar(&cfg.senders, "senders", 10, "clients that send (they receive too)")
	fs.StringVar(&rates, "rates", "25,50,100,200,400", "total messages per second, one load point each")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "sending time of each load point")
	fs.IntVar(&cfg.msgSize, "msg-size", 64, "length of each chat message string, bytes (at least the header)")
	fs.DurationVar(&cfg.drain, "drain", 10*time.Second, "how long to wait after a point for every delivery")
	fs.DurationVar(&cfg.settle, "settle", 3*time.Second, "pause after a ramp before measuring")
	fs.IntVar(&cfg.rampConc, "ramp-concurrency", 64, "connection attempts in flight during a ramp")
	fs.StringVar(&cfg.src, "src", "127.0.0.1-8", "source addresses for client sockets (range of the last octet or a list); empty: kernel's choice")
	fs.DurationVar(&cfg.stopP99, "stop-p99", 2*time.Second, "skip the remaining points once a point's p99 exceeds this or it lost messages (0: never)")
	fs.IntVar(&cfg.slow, "slow", 0, "broadcast: the last N clients stop reading during the points (slow consumers)")
	fs.IntVar(&cfg.slowReadBuf, "slow-rcvbuf", 4096, "socket receive buffer of slow clients, bytes")
	fs.StringVar(&cfg.pprofURL, "pprof", "", "base URL of the server's net/http/pprof (profiling builds only), e.g. http://127.0.0.1:6060")
	fs.StringVar(&cfg.profileDir, "profile-dir", "", "where to save pprof profiles (with -pprof)")
	fs.StringVar(&cfg.reader, "reader", "epoll", "how WebSocket clients are read: epoll (a few poller threads) or goroutine (one per client, gorilla/websocket)")
	fs.IntVar(&cfg.pollers, "pollers", 2, "poller threads with -reader epoll")
	fs.StringVar(&cfg.selfProfile, "cpuprofile", "", "write the load generator's own CPU profile to this file")
	fs.BoolVar(&cfg.search, "search", false, "broadcast: find the highest sustained rate: climb -rates until a point fails, then bisect")
	fs.DurationVar(&cfg.searchP99, "search-p99", 100*time.Millisecond, "with -search: a point passes when every message arrived in order and p99 ≤ this")
	fs.IntVar(&cfg.refine, "refine", 3, "with -search: bisection points between the last passing and the first failing rate")
	fs.Float64Var(&cfg.searchMin, "search-min", 2, "with -search: when the first rate fails, halve it down to this many messages/s")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, s := range splitComma(clients) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-clients %q: want positive integers", clients)
		}
		cfg.clients = append(cfg.clients, n)
	}
	for _, s := range splitComma(rates) {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("-rates %q: want positive numbers", rates)
		}
		cfg.rates = append(cfg.rates, r)
	}
	switch {
	case len(cfg.clients) == 0:
		return nil, fmt.Errorf("-clients: none given")
	case cfg.scenario != "idle" && cfg.scenario != "broadcast":
		return nil, fmt.Errorf("-scenario %q: want idle or broadcast", cfg.scenario)
	case cfg.transport != "websocket" && cfg.transport != "polling":
		return nil, fmt.Errorf("-transport %q: want websocket or polling", cfg.transport)
	case cfg.scenario == "broadcast" && len(cfg.clients) != 1:
		return nil, fmt.Errorf("-clients: broadcast takes one number")
	case cfg.scenario == "broadcast" && len(cfg.rates) == 0:
		return nil, fmt.Errorf("-rates: none given")
	case cfg.scenario == "broadcast" && (cfg.senders <= 0 || cfg.senders+cfg.slow > cfg.clients[0]):
		return nil, fmt.Errorf("-senders %d, -slow %d: need 1 ≤ senders and senders+slow ≤ clients", cfg.senders, cfg.slow)
	case cfg.reader != "epoll" && cfg.reader != "goroutine":
		return nil, fmt.Errorf("-reader %q: want epoll or goroutine", cfg.reader)
	case cfg.namespaces < 0:
		return nil, fmt.Errorf("-namespaces %d: must not be negative", cfg.namespaces)
	case cfg.scenario == "broadcast" && cfg.namespaces > cfg.senders:
		return nil, fmt.Errorf("-namespaces %d: more than the %d senders (a namespace would have none)", cfg.namespaces, cfg.senders)
	case cfg.rampConc <= 0:
		return nil, fmt.Errorf("-ramp-concurrency: must be positive")
	case cfg.search && (cfg.refine < 0 || cfg.searchMin <= 0 || cfg.searchP99 <= 0):
		return nil, fmt.Errorf("-search: need -refine ≥ 0, -search-min > 0, -search-p99 > 0")
	case cfg.search && !slices.IsSorted(cfg.rates):
		return nil, fmt.Errorf("-search: -rates %q must be ascending", rates)
	}
	for _, u := range splitComma(cfg.url) {
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		cfg.urls = append(cfg.urls, u)
	}
	if len(cfg.urls) == 0 {
		return nil, fmt.Errorf("-url: none given")
	}
	cfg.url = cfg.urls[0]
	for _, p := range splitComma(pids) {
		pid, err := strconv.Atoi(p)
		if err != nil || pid < 0 {
			return nil, fmt.Errorf("-pid %q: want process ids", pids)
		}
		if pid > 0 {
			cfg.pids = append(cfg.pids, pid)
		}
	}
	return cfg, nil
}

// urlOf is the endpoint client i dials: the clients, and so the senders,
// alternate over the nodes.
func (c *config) urlOf(i int) string { return c.urls[i%len(c.urls)] }

// nspIndex is the namespace of client i (an index into -namespaces; 0
// without); nspOf its name. The senders are clients 0 … senders-1, so they
// are spread over the namespaces too.
func (c *config) nspIndex(i int) int {
	if c.namespaces <= 1 {
		return 0
	}
	return i % c.namespaces
}

func (c *config) nspOf(i int) string {
	if c.namespaces <= 1 {
		return "/"
	}
	return "/n" + strconv.Itoa(c.nspIndex(i))
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
