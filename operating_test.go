package main

// Operating the chat: Prometheus metrics on their own listener, pprof,
// readiness (docs/OPERATING.md).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
	dto "github.com/prometheus/client_model/go"
)

// eventually polls cond until it holds, failing the test after opWait.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(opWait)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, opWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricCheck is one expectation on a scrape: the value of name{labels}
// has moved by at least min since the previous scrape (or, with exact, is
// exactly want).
type metricCheck struct {
	name   string
	labels []string
	delta  float64 // at least this much more than before
	exact  bool    // the value must be want
	want   float64
}

// moved waits until every check holds between before and a new scrape, and
// returns that scrape.
func moved(tb testing.TB, url, step string, before map[string]*dto.MetricFamily, checks ...metricCheck) map[string]*dto.MetricFamily {
	tb.Helper()
	var now map[string]*dto.MetricFamily
	var failed []string
	deadline := time.Now().Add(opWait)
	for {
		now = scrape(tb, url)
		failed = failed[:0]
		for _, c := range checks {
			got, was := value(now, c.name, c.labels...), value(before, c.name, c.labels...)
			switch {
			case c.exact && got != c.want:
				failed = append(failed, fmt.Sprintf("%s%v = %v, want %v", c.name, c.labels, got, c.want))
			case !c.exact && got-was < c.delta:
				failed = append(failed, fmt.Sprintf("%s%v went from %v to %v, want +%v", c.name, c.labels, was, got, c.delta))
			}
		}
		if len(failed) == 0 {
			return now
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: after %v:\n  %s", step, opWait, strings.Join(failed, "\n  "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetricsMoveAsClientsConnectChatFloodStallAndLeave(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) {
		c.MetricsAddr = "127.0.0.1:0"
		c.Pprof = true
		c.EventRate, c.EventBurst = 100, 50
		c.SendQueueBytes = 128 << 10 // two of the stall's messages of 60 KiB
	})
	url := metricsURL(t, ts)
	m := scrape(t, url)
	for _, name := range []string{
		"socket_io_connected", "engineio_sessions", "engineio_sessions_opened_total", "engineio_upgrades_total",
		"engineio_slow_consumers_total", "engineio_send_queue_packets",
		"socketio_sockets", "go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total",
	} {
		if m[name] == nil {
			t.Errorf("%s is not exported at start", name)
		}
	}

	// Connect: one client over WebSocket, one upgraded from polling.
	a := opDial(t, ts.URL, false)
	a.connect("/", "")
	b := opDialUpgrade(t, ts.URL, false)
	b.connect("/", "")
	m = moved(t, url, "connect", m,
		metricCheck{name: "socket_io_connected", exact: true, want: 2},
		metricCheck{name: "engineio_sessions", labels: []string{"transport", "websocket"}, exact: true, want: 2},
		metricCheck{name: "engineio_sessions", labels: []string{"transport", "polling"}, exact: true, want: 0},
		metricCheck{name: "engineio_sessions_opened_total", delta: 2},
		metricCheck{name: "engineio_upgrades_total", delta: 1},
		metricCheck{name: "socket_io_connect_total", labels: []string{"namespace", "/"}, delta: 2},
		metricCheck{name: "socketio_sockets", labels: []string{"namespace", "/"}, exact: true, want: 2},
	)

	// Chat: one message, to both.
	a.emit("/", "user-message", `"hello"`)
	for _, c := range []*opClient{a, b} {
		c.expectEvent("/", "message", nil)
	}
	in := float64(len(`["user-message","hello"]`))
	out := float64(len(`["message","hello"]`))
	m = moved(t, url, "chat", m,
		metricCheck{name: "socket_io_events_received_total", labels: []string{"event", "user-message", "namespace", "/"}, delta: 1},
		metricCheck{name: "socket_io_recieve_bytes", labels: []string{"event", "user-message", "namespace", "/"}, delta: in},
		metricCheck{name: "socket_io_recv_bytes", labels: []string{"event", "user-message", "namespace", "/"}, delta: in},
		metricCheck{name: "socket_io_events_sent_total", labels: []string{"event", "message", "namespace", "/"}, delta: 1},
		metricCheck{name: "socket_io_transmit_bytes", labels: []string{"event", "message", "namespace", "/"}, delta: out},
		metricCheck{name: "socketio_deliveries_total", labels: []string{"namespace", "/"}, delta: 2},
		metricCheck{name: "socketio_broadcast_fanout_seconds", labels: []string{"namespace", "/"}, delta: 1},
		metricCheck{name: "engineio_messages_received_total", delta: 1},
		metricCheck{name: "engineio_received_bytes_total", delta: in + 1},
		metricCheck{name: "engineio_messages_sent_total", delta: 2},
		metricCheck{name: "engineio_sent_bytes_total", delta: 2 * (out + 1)},
	)
	// An event name the chat does not know counts as _other.
	a.emit("/", "made-up-name-1234", `1`)
	m = moved(t, url, "unknown event", m,
		metricCheck{name: "socket_io_events_received_total", labels: []string{"event", "_other", "namespace", "/"}, delta: 1})
	if value(m, "socket_io_events_received_total", "event", "made-up-name-1234") != 0 {
		t.Error("a client's event name became a label value")
	}

	// Refused requests: by the engine, and by the origin policy.
	for _, tc := range []struct {
		query, origin string
		status        int
	}{
		{"EIO=4&transport=bogus", "", 400},
		{"EIO=5&transport=polling", "", 400},
		{"EIO=4&transport=polling", "http://evil.example", 403},
	} {
		req, _ := http.NewRequest("GET", ts.URL+"/socket.io/?"+tc.query, nil)
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET ?%s: %d, want %d", tc.query, resp.StatusCode, tc.status)
		}
	}
	m = moved(t, url, "refused", m,
		metricCheck{name: "engineio_requests_refused_total", labels: []string{"status", "400", "reason", "transport_unknown"}, delta: 1},
		metricCheck{name: "engineio_requests_refused_total", labels: []string{"status", "400", "reason", "unsupported_protocol_version"}, delta: 1},
		metricCheck{name: "chat_refused_total", labels: []string{"status", "403", "reason", "origin_not_allowed"}, delta: 1},
	)

	// Flood: a client far over its rate is dropped, then disconnected.
	f := opDial(t, ts.URL, false)
	f.connect("/", "")
	for i := range 200 {
		if f.write(`42["user-message","flood"]`) != nil {
			break // disconnected already
		}
		_ = i
	}
	f.waitClosed("the flooding client")
	m = moved(t, url, "flood", m,
		metricCheck{name: "chat_events_dropped_total", labels: []string{"reason", "rate_limit"}, delta: 50},
		metricCheck{name: "socketio_disconnects_total", labels: []string{"namespace", "/", "reason", "server namespace disconnect"}, delta: 1},
		metricCheck{name: "socket_io_disconnect_total", labels: []string{"namespace", "/"}, delta: 1},
	)

	// Stall: a client that reads nothing fills its send queue (seen in the
	// queue depth) until it is cut off as a slow consumer.
	s := opDial(t, ts.URL, true)
	s.connect("/", "")
	pad := strings.Repeat("x", 60<<10)
	sawQueue := false
	for i := 0; ; i++ {
		if i == 400 {
			t.Fatal("the stalled client was not cut off after 400 messages of 60 KiB")
		}
		// One message at a time: a and b wait for their copies of this one
		// (not of an earlier broadcast, such as the flood's) before a sends
		// the next, so that only the stalled client falls behind.
		big := fmt.Sprintf(`"%d:%s"`, i, pad)
		this := func(args []json.RawMessage) bool { return len(args) > 0 && string(args[0]) == big }
		a.emit("/", "user-message", big)
		a.expectEvent("/", "message", this)
		b.expectEvent("/", "message", this)
		m = scrape(t, url)
		if q := m["engineio_send_queue_packets"]; q != nil && len(q.Metric) > 0 && q.Metric[0].Histogram.GetSampleSum() > 0 {
			sawQueue = true
		}
		if value(m, "engineio_slow_consumers_total") > 0 {
			t.Logf("the stalled client was cut off after %d messages of 60 KiB", i+1)
			break
		}
	}
	if !sawQueue {
		t.Error("engineio_send_queue_packets never saw a queued packet before the cut-off")
	}
	m = moved(t, url, "stall", m,
		metricCheck{name: "engineio_slow_consumers_total", exact: true, want: 1},
		metricCheck{name: "socketio_disconnects_total", labels: []string{"namespace", "/", "reason", "slow consumer"}, exact: true, want: 1},
		metricCheck{name: "engineio_sessions_closed_total", labels: []string{"reason", "slow consumer"}, exact: true, want: 1},
	)

	// Leave.
	before := m
	_ = a.ws.Close()
	_ = b.ws.Close()
	moved(t, url, "leave", before,
		metricCheck{name: "socket_io_connected", exact: true, want: 0},
		metricCheck{name: "socketio_sockets", labels: []string{"namespace", "/"}, exact: true, want: 0},
		metricCheck{name: "socket_io_disconnect_total", labels: []string{"namespace", "/"}, delta: 2},
		metricCheck{name: "socketio_disconnects_total", labels: []string{"namespace", "/", "reason", "transport close"}, delta: 2},
		metricCheck{name: "engineio_sessions_closed_total", labels: []string{"reason", "transport close"}, delta: 2},
	)

	// pprof on the metrics listener; neither on the public port.
	pprofURL := strings.TrimSuffix(url, "/metrics") + "/debug/pprof/"
	if body, err := httpGet(pprofURL); err != nil || !strings.Contains(body, "goroutine") {
		t.Errorf("GET %s: %v", pprofURL, err)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("public port GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// TestMetricsOffByDefault: without -metrics-addr, no listener, and the
// public port serves no metrics.
func TestMetricsOffByDefault(t *testing.T) {
	ts := startTestServer(t, nil)
	if strings.Contains(ts.Log.String(), "metrics listening") {
		t.Error("a metrics listener started without -metrics-addr")
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics: %d, want 404", resp.StatusCode)
	}
}

// readyz returns /readyz's status and body.
func readyz(tb testing.TB, base string) (int, string) {
	tb.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyzTurns503WhenDrainStarts: /readyz answers 200 while serving and
// 503 from the signal on, while -drain-delay keeps serving; /healthz stays 200.
func TestReadyzTurns503WhenDrainStarts(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) { c.DrainDelay = 3 * time.Second })
	if code, body := readyz(t, ts.URL); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz = %d %q, want 200 ready", code, body)
	}
	ts.stop() // as SIGTERM; serve drains for DrainDelay, then shuts down
	eventually(t, "/readyz 503", func() bool {
		code, body := readyz(t, ts.URL)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "draining")
	})
	if body, err := httpGet(ts.URL + "/healthz"); err != nil || body != "ok\n" {
		t.Errorf("/healthz while draining: %q, %v", body, err)
	}
}

// TestReadyzWhileRedisIsUnreachable: with -redis pointing nowhere, the
// node serves its own clients but is not ready.
func TestReadyzWhileRedisIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a port nothing answers on once closed
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ts := startTestServer(t, func(c *chat.Config) {
		c.Redis = "redis://" + addr + "/0"
		c.RedisPrefix = fmt.Sprintf("readyz-%d", time.Now().UnixNano())
	})
	code, body := readyz(t, ts.URL)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "redis") {
		t.Errorf("/readyz = %d %q, want 503 naming redis", code, body)
	}
}

// TestReadyzWithRedis: with Redis up, the node is ready once subscribed.
func TestReadyzWithRedis(t *testing.T) {
	needRedis(t)
	ts := startTestServer(t, func(c *chat.Config) {
		c.Redis = "redis://127.0.0.1:6379/0"
		c.RedisPrefix = fmt.Sprintf("readyz-%d", time.Now().UnixNano())
	})
	eventually(t, "/readyz 200", func() bool { code, _ := readyz(t, ts.URL); return code == 200 })
}

// needRedis skips (or, under CI=true, fails) a test without Redis on
// 127.0.0.1:6379.
func needRedis(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:6379")
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Write([]byte("PING\r\n"))
		if err == nil {
			buf := make([]byte, 7)
			_, err = io.ReadFull(c, buf)
			if err == nil && string(buf) != "+PONG\r\n" {
				err = fmt.Errorf("PING answered %q", buf)
			}
		}
		c.Close()
	}
	if err != nil {
		needs(tb, "Redis on 127.0.0.1:6379 (scripts/setup.sh --test starts one): %v", err)
	}
}

// TestHistoryMetricsAndReadiness: with -history, the store's writes are
// counted and timed, and /readyz probes the store.
func TestHistoryMetricsAndReadiness(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) {
		c.MetricsAddr = "127.0.0.1:0"
		c.History = t.TempDir() + "/chat.db"
		c.HistorySync = "normal"
	})
	url := metricsURL(t, ts)
	m := scrape(t, url)
	c := opDial(t, ts.URL, false)
	c.connect("/", "")
	c.emit("/", "user-message", `"stored"`)
	c.expectEvent("/", "message", nil)
	moved(t, url, "history write", m,
		metricCheck{name: "chat_history_writes_total", labels: []string{"result", "ok"}, delta: 1},
		metricCheck{name: "chat_history_write_seconds", delta: 1},
	)
	if code, body := readyz(t, ts.URL); code != 200 {
		t.Errorf("/readyz with a working history store: %d %q", code, body)
	}
}
