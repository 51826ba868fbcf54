package main

// One conversation order across the cluster (-cluster-order): with the
// Streams adapter, every node delivers every broadcast, its own included,
// from the stream, so every client of every node sees one sequence.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
)

// clusterOrderRun starts two Go nodes on a stream of their own
// (-redis-adapter streams, -cluster-order if ordered), connects 6 senders
// and 8 receivers spread over both nodes, has the senders send `each`
// messages at once, and returns what every client received (the round's
// messages, in order, without the end markers) after checking that each
// got every message exactly once and each sender's in the order sent.
func clusterOrderRun(t *testing.T, ordered bool, each int) (names []string, seqs map[string][]string) {
	t.Helper()
	const senders, receivers = 6, 8
	redisURL, prefix := clusterRedis(t), clusterPrefix(t)
	nodes := []*testServer{}
	for range 2 {
		nodes = append(nodes, clusterStartGo(t, redisURL, prefix, func(c *chat.Config) {
			c.RedisAdapter, c.ClusterOrder = "streams", ordered
			c.EventRate, c.EventBurst = 10000, 10000 // the senders send at once
			c.LogLevel = 0                           // info: a debug line per packet would dominate
		}))
	}
	var all, sending []clusterPeer
	for i := range receivers + senders {
		n := i % 2
		mode := []sioMode{sioWebSocket, sioPolling}[(i/2)%2]
		p := clusterDial(t, fmt.Sprintf("go%d", n+1), nodes[n].URL, mode, nil)
		if i < receivers {
			p.name = fmt.Sprintf("receiver%d-%s", i, p.name)
		} else {
			p.name = fmt.Sprintf("sender%d-%s", i-receivers, p.name)
			sending = append(sending, p)
		}
		all = append(all, p)
	}

	msg := func(s, k int) string { return fmt.Sprintf("%s/s%d#%04d", prefix, s, k) }
	var wg sync.WaitGroup
	start := make(chan struct{})
	for s, p := range sending {
		wg.Go(func() {
			<-start
			for k := range each {
				if err := p.c.Emit("user-message", msg(s, k)); err != nil {
					t.Errorf("%s: emit: %v", p.name, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()

	total := senders * each
	deadline := time.Now().Add(60 * time.Second)
	for _, p := range all {
		clusterWaitFor(t, p, time.Until(deadline), fmt.Sprintf("%d messages", total), func(got []string) bool {
			return len(clusterDistinct(got, prefix+"/s")) >= total
		})
	}
	// A duplicate would come before the end markers, one sent through each
	// node once everyone has everything: a node delivers in the order of
	// the stream (ordered) or of its subscription.
	for n := range 2 {
		if err := sending[n].c.Emit("user-message", fmt.Sprintf("%s/end/%d", prefix, n)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range all {
		clusterWaitFor(t, p, time.Until(deadline)+5*time.Second, "the end markers", func(got []string) bool {
			return len(clusterDistinct(got, prefix+"/end/")) == 2
		})
	}

	seqs = map[string][]string{}
	for _, p := range all {
		var got []string
		seen := map[string]int{}
		next := make([]int, senders)
		for _, m := range clusterTexts(p) {
			if !strings.HasPrefix(m, prefix+"/s") {
				continue
			}
			got = append(got, m)
			seen[m]++
			sender, seqText, _ := strings.Cut(strings.TrimPrefix(m, prefix+"/s"), "#")
			s, _ := strconv.Atoi(sender)
			k, _ := strconv.Atoi(seqText)
			if seen[m] == 1 {
				if k != next[s] {
					t.Errorf("%s: got %s, want sender %d's #%04d next (per-sender order)", p.name, m, s, next[s])
				}
				next[s] = k + 1
			}
		}
		for s := range senders {
			for k := range each {
				if n := seen[msg(s, k)]; n != 1 {
					t.Errorf("%s got %s %d times, want once", p.name, msg(s, k), n)
				}
			}
		}
		names = append(names, p.name)
		seqs[p.name] = got
	}
	return names, seqs
}

// clusterOrderDisagree lists the clients whose sequence differs from the
// first client's, and where.
func clusterOrderDisagree(names []string, seqs map[string][]string) []string {
	var differ []string
	ref := seqs[names[0]]
	for _, name := range names[1:] {
		got := seqs[name]
		if slices.Equal(got, ref) {
			continue
		}
		k := 0
		for k < len(got) && k < len(ref) && got[k] == ref[k] {
			k++
		}
		at := func(s []string) string {
			if k < len(s) {
				return s[k]
			}
			return "(end)"
		}
		differ = append(differ, fmt.Sprintf("%s differs from %s at message %d: %s where it has %s", name, names[0], k, at(got), at(ref)))
	}
	return differ
}

// TestClusterOrderStreams: two Go nodes with -redis-adapter streams
// -cluster-order, 6 senders and 8 receivers spread over both nodes (over
// WebSocket and polling), the senders sending at once: every client gets
// every message exactly once, and all 14 clients see the same sequence.
// A control run without -cluster-order is logged, not asserted: there each
// node delivers its own clients' messages at once and the others' when the
// stream brings them, so the nodes' sequences can differ.
func TestClusterOrderStreams(t *testing.T) {
	const each = 60
	names, seqs := clusterOrderRun(t, true, each)
	if differ := clusterOrderDisagree(names, seqs); len(differ) > 0 {
		t.Errorf("-cluster-order: %d of %d clients saw the %d messages in another order than %s:\n%s",
			len(differ), len(names)-1, 6*each, names[0], strings.Join(differ, "\n"))
	}
	if t.Failed() {
		return
	}
	t.Run("control without -cluster-order", func(t *testing.T) {
		names, seqs := clusterOrderRun(t, false, each)
		differ := clusterOrderDisagree(names, seqs)
		t.Logf("without -cluster-order: %d of %d clients disagree with %s", len(differ), len(names)-1, names[0])
		for _, d := range differ {
			t.Log(d)
		}
	})
}
