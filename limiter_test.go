package main

// The flood limiter keeps its state out of band: no client input can imitate
// it. An event that happens to be named like an internal marker is an
// ordinary event.

import (
	"fmt"
	"github.com/chatio/socketio-chat/chat"
	"testing"
	"time"
)

// TestLimiterCannotBeSpoofed: a client that sends, well within the rate
// limit, 3 bursts' worth of events named "\x00rate-limited" (the name the
// limiter once used for the events it refused) is neither disconnected nor
// limited: its chat messages keep reaching everyone.
func TestLimiterCannotBeSpoofed(t *testing.T) {
	const (
		rate  = 50
		burst = 10
		every = 50 * time.Millisecond // 20 events a second, under the rate
	)
	for _, transport := range []rawChatTransport{rawChatWS, rawChatPolling} {
		t.Run(string(transport), func(t *testing.T) {
			ts := startTestServer(t, func(c *chat.Config) {
				c.EventRate, c.EventBurst = rate, burst
				c.LogLevel = 0
			})
			bystander := rawChatDial(t, ts, rawChatWS, "bystander", rawChatOptions{})
			c := rawChatDial(t, ts, transport, "client", rawChatOptions{})
			tick := time.NewTicker(every)
			defer tick.Stop()
			for i := range 3 * burst {
				if err := c.send(`42["\u0000rate-limited","harmless ` + fmt.Sprint(i) + `"]`); err != nil {
					t.Fatalf("event %d named \"\\x00rate-limited\": %v", i, err)
				}
				<-tick.C
			}
			if err := c.emit(`"still chatting"`); err != nil {
				t.Fatalf("chat message after the events: %v", err)
			}
			for _, r := range []*rawChat{c, bystander} {
				if got := r.waitMessages(t, 1, 5*time.Second, 5*time.Second); len(got) != 1 || got[0] != `"still chatting"` {
					t.Errorf("%s got %q, want only \"still chatting\"", r.name, got)
				}
			}
			if err, ended := c.ended(); ended {
				t.Errorf("%s was disconnected (%v) for sending an event named \"\\x00rate-limited\" %d times at %v intervals",
					c.name, err, 3*burst, every)
			}
		})
	}
}
