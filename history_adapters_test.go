package main

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
)

// TestHistoryClusterAdapters: a PostgreSQL -history shared by two nodes
// works with every -redis-adapter (TestHistoryCluster covers pubsub and a
// Redis outage): clients of both nodes, over WebSocket and polling, get
// every message of both nodes once, at the same offset everywhere, in
// offset order; a client that connects later with its serverOffset gets
// the rest. The history's feed broadcasts Local(), so the adapter carries
// none of the chat's messages; -cluster-order changes nothing here.
func TestHistoryClusterAdapters(t *testing.T) {
	redisURL := clusterRedis(t)
	for _, tc := range []struct {
		name    string
		adapter string
		ordered bool
	}{
		{"sharded", "sharded", false},
		{"streams", "streams", false},
		{"streams with -cluster-order", "streams", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := historyPostgresDSN(t)
			prefix := clusterPrefix(t)
			node := func() *testServer {
				return historyStart(t, dsn, func(c *chat.Config) {
					c.Redis, c.RedisPrefix = redisURL, prefix
					c.RedisAdapter, c.ClusterOrder = tc.adapter, tc.ordered
					c.HistoryPoll = 300 * time.Millisecond
				})
			}
			a, b := node(), node()
			clients := []*rawChat{
				rawChatDial(t, a, rawChatWS, "a-ws", rawChatOptions{}),
				rawChatDial(t, a, rawChatPolling, "a-polling", rawChatOptions{}),
				rawChatDial(t, b, rawChatWS, "b-ws", rawChatOptions{}),
				rawChatDial(t, b, rawChatPolling, "b-polling", rawChatOptions{}),
			}
			const each = 30
			var wg sync.WaitGroup
			for _, s := range []*rawChat{clients[0], clients[2]} {
				wg.Go(func() {
					for i := range each {
						histSend(t, s, -1, strconv.Quote(fmt.Sprintf("%s#%d", s.name, i)), "")
					}
				})
			}
			wg.Wait()
			const total = 2 * each
			var ref []histMsg
			for _, c := range clients {
				msgs := histWait(t, c, total, 30*time.Second)
				histCheckRun(t, c.name, msgs, 1, total)
				if ref == nil {
					ref = msgs
					continue
				}
				for k, m := range msgs {
					if m.text != ref[k].text {
						t.Fatalf("%s: offset %d is %s, %s has %s there", c.name, m.offset, m.text, clients[0].name, ref[k].text)
					}
				}
			}
			// A client that saw up to offset 20 on one node catches up on
			// the other.
			late := rawChatDial(t, b, rawChatWS, "late on b", rawChatOptions{auth: `{"serverOffset":20}`})
			histCheckRun(t, late.name, histWait(t, late, total, 10*time.Second), 21, total)
		})
	}
}
