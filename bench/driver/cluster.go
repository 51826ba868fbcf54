package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/chatio/socketio-chat/bench/internal/result"
)

// The cluster scenario (issue 15, docs/CLUSTER.md): sustained broadcast
// deliveries/s on TWO nodes sharing one Redis, for each way of joining them:
// our server with -redis-adapter pubsub, sharded and streams, streams with
// -cluster-order, and two Node.js tutorial nodes on
// @socket.io/redis-streams-adapter (bench/node-tutorial/streams.js). The
// load generator spreads the clients over both nodes (client i on node
// i mod 2, senders included), so every message crosses Redis to half of its
// receivers; loss, duplicates, per-sender reordering and receivers whose
// sequence differs from the others' are counted as in the sweep. Server CPU
// and RSS are the two nodes' sums (Redis's are not counted).

// clusterSetups are the cluster scenario's configurations, by name, in the
// default order of -cluster-setups.
var clusterSetups = []string{"pubsub", "sharded", "streams", "streams-ordered", "node-streams"}

// clusterSetup is one configuration: two nodes and how they are started.
type clusterSetup struct {
	name  string
	label string   // the servers' label in the results
	node  bool     // Node.js nodes (bench/node-tutorial/streams.js)
	flags []string // our server's flags (node: its environment)
}

// clusterSetupsFor builds the setups named in list on the Redis at redisURL,
// each on key prefix / stream name prefix-NAME.
func clusterSetupsFor(list []string, redisURL, prefix string) ([]clusterSetup, error) {
	var out []clusterSetup
	for _, name := range list {
		p := prefix + "-" + name
		goFlags := func(adapter string, more ...string) []string {
			return append([]string{"-redis", redisURL, "-redis-prefix", p, "-redis-adapter", adapter}, more...)
		}
		var s clusterSetup
		switch name {
		case "pubsub", "sharded", "streams":
			s = clusterSetup{name: name, label: "2×go+" + name, flags: goFlags(name)}
		case "streams-ordered":
			s = clusterSetup{name: name, label: "2×go+streams+cluster-order", flags: goFlags("streams", "-cluster-order")}
		case "node-streams":
			s = clusterSetup{name: name, label: "2×node+streams", node: true, flags: []string{"REDIS_URL=" + redisURL, "REDIS_PREFIX=" + p}}
		default:
			return nil, fmt.Errorf("-cluster-setups: unknown setup %q (have %s)", name, strings.Join(clusterSetups, ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

// describe is the setup's line in the run's server list.
func (s clusterSetup) describe(ctx context.Context, root string) string {
	if s.node {
		return "two nodes of bench/node-tutorial/streams.js, socket.io " + nodeModuleVersion(root, "socket.io") +
			", @socket.io/redis-streams-adapter " + nodeModuleVersion(root, "@socket.io/redis-streams-adapter") +
			", environment " + strings.Join(s.flags, " ")
	}
	return "two nodes of the " + revision(ctx, root, "go") + ", flags " + strings.Join(s.flags, " ")
}

// startNodeStreams starts one Node.js node of the node-streams setup.
func startNodeStreams(ctx context.Context, root string, env []string, log io.Writer) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{name: "node-streams", port: port, exited: make(chan error, 1)}
	s.cmd = exec.Command("node", "bench/node-tutorial/streams.js", "--quiet")
	s.cmd.Dir = root
	s.cmd.Env = append(append(os.Environ(), env...), fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1")
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node-streams: %w", err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	if err := s.waitListening(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// runCluster starts the two nodes of setup cs, runs scenario sc against
// both with the load generator and stops them. Redis is flushed before and
// after.
func runCluster(ctx context.Context, o runOpts, cs clusterSetup, sc scenario) (*result.Scenario, error) {
	log := o.log
	fmt.Fprintf(log, "driver: == %s on %s\n", sc.name, cs.label)
	if err := redisFlush(o.redisURL); err != nil {
		return nil, err
	}
	defer func() {
		if err := redisFlush(o.redisURL); err != nil {
			fmt.Fprintf(log, "driver: %v\n", err)
		}
	}()
	var nodes []*server
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	for range 2 {
		var n *server
		var err error
		if cs.node {
			n, err = startNodeStreams(ctx, o.root, cs.flags, log)
		} else {
			n, err = startServer(ctx, "go", o.root, o.bins, append(append([]string(nil), o.serverArgs...), cs.flags...), false, log)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cs.label, err)
		}
		nodes = append(nodes, n)
	}
	var urls, pids []string
	for _, n := range nodes {
		urls = append(urls, n.url())
		pids = append(pids, fmt.Sprint(n.pid()))
	}
	args := append([]string{"-url", strings.Join(urls, ","), "-pid", strings.Join(pids, ","), "-label", cs.label}, sc.args...)
	r, err := runLoadgen(ctx, o, sc, args)
	if r == nil {
		return nil, err
	}
	for _, n := range nodes {
		select {
		case e := <-n.exited:
			n.exited <- e
			r.Errors = append(r.Errors, fmt.Sprintf("a node exited during the run: %v", e))
		default:
		}
	}
	return r, err
}

// clusterRows are the summary rows of the cluster scenario: each setup's
// sustained deliveries/s (the Go ones as ratios to pubsub: streams ≥ 0.8×),
// our streams pair against the Node pair (≥ 5×), and loss and order over
// every point of each setup.
func clusterRows(res *Run) []Row {
	var rows []Row
	label := map[string]string{}
	for _, s := range res.Scenarios {
		if s.Name == "cluster" {
			label[s.Server] = s.Server
		}
	}
	if len(label) == 0 {
		return nil
	}
	get := func(l string) *result.Scenario { return find(res, "cluster", l) }
	pubsub := get("2×go+pubsub")
	ps, _ := sustained(pubsub)
	clients, senders := 0, 0
	for _, s := range res.Scenarios {
		if s.Name == "cluster" && len(s.Points) > 0 {
			clients, senders = s.Clients, s.Points[0].Senders
			break
		}
	}
	for _, l := range []string{"2×go+pubsub", "2×go+sharded", "2×go+streams", "2×go+streams+cluster-order", "2×node+streams"} {
		s := get(l)
		if s == nil {
			continue
		}
		v, top := sustained(s)
		r := Row{Metric: fmt.Sprintf("two nodes, %s: sustained deliveries/s, all delivered, p99 ≤ %g ms (%d clients over both, %d senders)", l, p99Bound(s), clients, senders), Unit: "/s"}
		if strings.HasPrefix(l, "2×node") {
			r.Node = v
		} else {
			r.Go = v
		}
		if l != "2×go+pubsub" && !strings.HasPrefix(l, "2×node") && ps != nil && *ps > 0 {
			r.Ratio, r.RatioOf = ptr(*v / *ps), "2×go+pubsub"
			if l == "2×go+streams" {
				r.Target = "≥ 0.8× pubsub"
				r.Met = ptr(*r.Ratio >= 0.8)
			}
		}
		var notes []string
		if r.RatioOf != "" {
			notes = append(notes, "ratio to 2×go+pubsub")
		}
		if top {
			notes = append(notes, "passed the ladder's top point")
		}
		r.Note = strings.Join(notes, "; ")
		rows = append(rows, r)
	}
	if g, n := get("2×go+streams"), get("2×node+streams"); g != nil && n != nil {
		gv, _ := sustained(g)
		nv, _ := sustained(n)
		r := pair("two nodes on the Streams adapter: sustained deliveries/s, Go pair against Node pair", "/s", gv, nv, 5, 0)
		if nv != nil && *nv == 0 {
			r.Ratio, r.Met = nil, nil
			r.Note = "the Node pair passed none of the points: no ratio"
		}
		rows = append(rows, r)
	}
	// CPU per delivery at equal load: steadier than the sustained rate,
	// which one latency spike decides on a busy machine.
	goSetups := []string{"2×go+pubsub", "2×go+sharded", "2×go+streams", "2×go+streams+cluster-order"}
	for _, set := range [][]string{append(goSetups[:len(goSetups):len(goSetups)], "2×node+streams"), goSetups} {
		rate, ok := commonPassingRate(res, set)
		if !ok {
			continue
		}
		var base *float64
		if p := pointAt(get("2×go+pubsub"), rate); p != nil && p.ServerCPUPerDeliveryUs > 0 {
			base = ptr(p.ServerCPUPerDeliveryUs)
		}
		for _, l := range set {
			p := pointAt(get(l), rate)
			if p == nil {
				continue
			}
			r := Row{Metric: fmt.Sprintf("two nodes, %s: server CPU per delivery at %g msg/s (the highest rate %d setups all sustained; both nodes' CPU)", l, rate, len(set)), Unit: "µs"}
			v := ptr(p.ServerCPUPerDeliveryUs)
			if strings.HasPrefix(l, "2×node") {
				r.Node = v
				if gp := pointAt(get("2×go+streams"), rate); gp != nil && *v > 0 {
					r.Go, r.Ratio = ptr(gp.ServerCPUPerDeliveryUs), ptr(gp.ServerCPUPerDeliveryUs / *v)
					r.Note = "Go column: 2×go+streams at the same rate"
				}
			} else {
				r.Go = v
				if base != nil && l != "2×go+pubsub" {
					r.Ratio, r.RatioOf, r.Note = ptr(*v / *base), "2×go+pubsub", "ratio to 2×go+pubsub"
				}
			}
			rows = append(rows, r)
		}
	}
	for _, l := range []string{"2×go+pubsub", "2×go+sharded", "2×go+streams", "2×go+streams+cluster-order", "2×node+streams"} {
		s := get(l)
		if s == nil {
			continue
		}
		var bad, differ, groups int64
		for _, p := range s.Points {
			bad += p.Lost + p.Duplicated + p.Reordered
			differ += int64(p.OrderDiffers)
			groups += int64(p.OrderGroups)
		}
		node := strings.HasPrefix(l, "2×node")
		r := Row{Metric: fmt.Sprintf("two nodes, %s: lost + duplicated + reordered, every point", l), Unit: "messages", Target: "0"}
		d := Row{Metric: fmt.Sprintf("two nodes, %s: receivers whose sequence differs from the others', summed over the points", l), Unit: "receivers"}
		if node {
			r.Node, d.Node = ptr(float64(bad)), ptr(float64(differ))
			r.Target = ""
		} else {
			r.Go, d.Go = ptr(float64(bad)), ptr(float64(differ))
			r.Met = ptr(bad == 0)
		}
		if l == "2×go+streams+cluster-order" {
			d.Target, d.Met = "0", ptr(differ == 0)
		}
		rows = append(rows, r, d)
	}
	return rows
}

// commonPassingRate is the highest rate at which every cluster setup of
// labels has a passing point (all delivered in order, p99 within its bound).
func commonPassingRate(res *Run, labels []string) (float64, bool) {
	var best float64
	found := false
	first := find(res, "cluster", labels[0])
	if first == nil {
		return 0, false
	}
	for _, p := range first.Points {
		ok := true
		for _, l := range labels {
			s := find(res, "cluster", l)
			q := pointAt(s, p.Rate)
			if s == nil || q == nil || !q.Complete || q.P99Ms > p99Bound(s) {
				ok = false
				break
			}
		}
		if ok && p.Rate > best {
			best, found = p.Rate, true
		}
	}
	return best, found
}

// waitListening waits until s accepts connections, then a second more
// (Node compiles lazily), as startServer.
func (s *server) waitListening(ctx context.Context) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := dialLoopback(s.port); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-s.exited:
			return fmt.Errorf("%s server exited at start: %v", s.name, err)
		case <-ctx.Done():
			s.stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("%s server did not listen within 20s", s.name)
		}
	}
	time.Sleep(time.Second)
	return nil
}
