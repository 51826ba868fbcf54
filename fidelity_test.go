package main

// Message text is forwarded byte for byte, escapes included: the server
// relays the JSON text of a chat message as the client wrote it, as Node's
// server does with the strings it relays (a lone UTF-16 surrogate included),
// on one node and across nodes.

import (
	"crypto/rand"
	"encoding/hex"
	"github.com/chatio/socketio-chat/chat"
	"net"
	"strings"
	"testing"
	"time"
)

// fidelityRedis returns the URL of the shared Redis (scripts/test.sh starts
// one on 127.0.0.1:6379). Without it the test is skipped, or fails under
// CI=true.
func fidelityRedis(t *testing.T) string {
	t.Helper()
	const addr = "127.0.0.1:6379"
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		needs(t, "no Redis on %s (scripts/setup.sh --test starts one): %v", addr, err)
	}
	_ = c.Close()
	return "redis://" + addr + "/0"
}

// TestFidelityEscapesForwardedAsSent: a raw WebSocket client sends each
// text below as the JSON argument of a user-message; every receiver on the
// sender's node (the sender, WebSocket and polling clients), with or without
// Redis, gets the packet 42["message",<text>] with the same bytes, and the
// clients of another node of the cluster get the lone surrogates unchanged.
func TestFidelityEscapesForwardedAsSent(t *testing.T) {
	// Across nodes a message travels as decoded values (the wire format of
	// @socket.io/redis-adapter), so only what Node's JSON.stringify gives
	// back unchanged can arrive byte for byte there: the lone surrogates.
	texts := []struct {
		name, json  string
		acrossNodes bool // checked on the other node too
	}{
		{"lone high surrogate", `"\ud800x"`, true},
		{"lone low surrogate", `"x\udc00"`, true},
		{"surrogates reversed", `"\udc00\ud800"`, true},
		{"escaped pair", `"\ud83d\ude80"`, false},
		{"escaped ASCII and slash", `"\u0041\/\u00e9"`, false},
		{"lone surrogate in an object", `{"text":"\ud800","n":1}`, false},
	}
	type setup struct{ sender, near, far *testServer }
	for _, sc := range []struct {
		name  string
		start func(t *testing.T) setup
	}{
		{"one node", func(t *testing.T) setup {
			ts := startTestServer(t, func(c *chat.Config) { c.LogLevel = 0 })
			return setup{ts, ts, nil}
		}},
		{"one node with redis", func(t *testing.T) setup {
			url, prefix := fidelityRedis(t), fidelityPrefix()
			ts := startTestServer(t, func(c *chat.Config) { c.LogLevel, c.Redis, c.RedisPrefix = 0, url, prefix })
			return setup{ts, ts, nil}
		}},
		{"two nodes", func(t *testing.T) setup {
			url, prefix := fidelityRedis(t), fidelityPrefix()
			a := startTestServer(t, func(c *chat.Config) { c.LogLevel, c.Redis, c.RedisPrefix = 0, url, prefix })
			b := startTestServer(t, func(c *chat.Config) { c.LogLevel, c.Redis, c.RedisPrefix = 0, url, prefix })
			return setup{a, a, b}
		}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			s := sc.start(t)
			sender := rawChatDial(t, s.sender, rawChatWS, "sender", rawChatOptions{})
			receivers := []*rawChat{
				sender,
				rawChatDial(t, s.near, rawChatWS, "websocket receiver", rawChatOptions{}),
				rawChatDial(t, s.near, rawChatPolling, "polling receiver", rawChatOptions{}),
			}
			if s.far != nil {
				receivers = append(receivers,
					rawChatDial(t, s.far, rawChatWS, "websocket receiver on the other node", rawChatOptions{}),
					rawChatDial(t, s.far, rawChatPolling, "polling receiver on the other node", rawChatOptions{}))
			}
			for _, tc := range texts {
				if err := sender.emit(tc.json); err != nil {
					t.Fatal(err)
				}
			}
			for k, r := range receivers {
				got := r.waitMessages(t, len(texts), 5*time.Second, 10*time.Second)
				for i, tc := range texts {
					if k >= 3 && !tc.acrossNodes {
						continue
					}
					if want := tc.json; got[i] != want {
						t.Errorf("%s: %s: got 42[\"message\",%s], want 42[\"message\",%s] byte for byte",
							r.name, tc.name, strings.ToValidUTF8(got[i], "\\x??"), want)
					}
				}
			}
		})
	}
}

// fidelityPrefix is a Redis key prefix of one test alone.
func fidelityPrefix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "test-fidelity-" + hex.EncodeToString(b)
}
