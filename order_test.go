package main

// One order per node: a chat is one conversation, so every client of a node
// must see the broadcasts in the same order, whoever sent them and however
// the clients are connected. Per-sender order alone is not enough.

import (
	"fmt"
	"github.com/chatio/socketio-chat/chat"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOneOrderPerNode: 6 senders send bursts of 40 messages a second (within
// the flood limits, 50/s and bursts of 100) at the same moments; 8 receivers,
// over WebSocket, polling or both, must each get every message once and all
// in the same sequence. The senders, who get every message too, must see that
// sequence as well.
func TestOneOrderPerNode(t *testing.T) {
	const (
		senders   = 6
		receivers = 8
		bursts    = 3
		perBurst  = 40
	)
	cases := []struct {
		name string
		mode func(i int) rawChatTransport // the transport of client i
	}{
		{"websocket", func(int) rawChatTransport { return rawChatWS }},
		{"polling", func(int) rawChatTransport { return rawChatPolling }},
		{"mixed", func(i int) rawChatTransport { return []rawChatTransport{rawChatWS, rawChatPolling}[i%2] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startTestServer(t, func(c *chat.Config) {
				c.EventRate, c.EventBurst = 50, 100
				c.LogLevel = 0 // info: a debug line per packet would dominate
			})
			var all []*rawChat
			for i := range receivers {
				all = append(all, rawChatDial(t, ts, tc.mode(i), fmt.Sprintf("receiver %d", i), rawChatOptions{}))
			}
			sending := make([]*rawChat, senders)
			for i := range sending {
				sending[i] = rawChatDial(t, ts, tc.mode(i+1), fmt.Sprintf("sender %d", i), rawChatOptions{})
				all = append(all, sending[i])
			}

			// A burst is one send: 40 WebSocket frames back to back, or one
			// POST of 40 packets. All senders burst on the same tick.
			start := time.Now()
			var wg sync.WaitGroup
			for s, c := range sending {
				wg.Go(func() {
					for b := range bursts {
						if d := time.Until(start.Add(time.Duration(b) * time.Second)); d > 0 {
							<-time.After(d)
						}
						burst := make([]string, perBurst)
						for k := range burst {
							burst[k] = fmt.Sprintf(`"s%d-%03d"`, s, b*perBurst+k)
						}
						if err := c.emit(burst...); err != nil {
							t.Errorf("%s: burst %d: %v", c.name, b, err)
							return
						}
					}
				})
			}
			wg.Wait()
			total := senders * bursts * perBurst
			for _, c := range all {
				c.waitMessages(t, total, 5*time.Second, 60*time.Second)
			}
			// Anything broadcast after the last expected message (a
			// duplicate) reaches a client before a final marker does.
			if err := sending[0].emit(`"end"`); err != nil {
				t.Fatal(err)
			}
			want := make(map[string]bool, total)
			for s := range senders {
				for k := range bursts * perBurst {
					want[fmt.Sprintf(`"s%d-%03d"`, s, k)] = true
				}
			}
			var reference []string
			var differ []string
			for i, c := range all {
				msgs := c.waitMessages(t, total+1, 5*time.Second, 30*time.Second)
				if len(msgs) != total+1 || msgs[total] != `"end"` {
					t.Fatalf("%s: got %d messages before the marker, want exactly %d", c.name, len(msgs)-1, total)
				}
				msgs = msgs[:total]
				seen := map[string]bool{}
				next := make([]int, senders)
				for k, m := range msgs {
					if !want[m] || seen[m] {
						t.Fatalf("%s: message %d is %s: unknown or duplicated", c.name, k, m)
					}
					seen[m] = true
					var s, seq int
					_, _ = fmt.Sscanf(strings.Trim(m, `"`), "s%d-%d", &s, &seq)
					if seq != next[s] {
						t.Fatalf("%s: message %d is %s, want sender %d's #%03d next (per-sender order)", c.name, k, m, s, next[s])
					}
					next[s]++
				}
				if i == 0 {
					reference = msgs
					continue
				}
				if !slices.Equal(msgs, reference) {
					k := 0
					for k < total && msgs[k] == reference[k] {
						k++
					}
					differ = append(differ, fmt.Sprintf("%s differs from %s at message %d: %s where it has %s",
						c.name, all[0].name, k, msgs[k], reference[k]))
				}
			}
			if len(differ) > 0 {
				t.Errorf("%d of %d clients saw the %d messages in another order than %s:\n%s",
					len(differ), len(all)-1, total, all[0].name, strings.Join(differ, "\n"))
			}
		})
	}
}
