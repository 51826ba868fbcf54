package metrics_test

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/metrics"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/chatio/socketio-chat/socketio/streamsadapter"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The Streams adapter's counters on /metrics, scraped as Prometheus does:
// while its Redis is not there, socketio_redis_up is 0, the broadcasts
// wait in the outbox (socketio_redis_publish_queue, up to MaxPending) and
// the ones past it are counted as dropped; once Redis is there, up is 1,
// the outbox is published (the queue empties, published counts them) and
// the reader counts its reconnect.
func TestStreamsAdapterMetrics(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("missing prerequisite: redis-server: %v", err)
		}
		t.Skipf("missing prerequisite (CI=true makes this a failure): redis-server: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	_ = l.Close()

	c, err := streamsadapter.New(streamsadapter.Options{URL: "redis://127.0.0.1:" + port, StreamName: "test-metrics-" + port,
		MaxPending: 3, StartupWait: 100 * time.Millisecond, ReconnectDelayMax: 100 * time.Millisecond,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := socketio.NewServer(socketio.Options{Adapter: c, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); _ = c.Close() })
	m := metrics.New(metrics.Options{})
	m.Instrument(srv)
	m.InstrumentStreams(c)
	ts := httptest.NewServer(m.Handler())
	t.Cleanup(ts.Close)
	get := func(name string) float64 {
		t.Helper()
		resp, err := http.Get(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bufio.NewReader(resp.Body))
		if err != nil {
			t.Fatal(err)
		}
		f := fams[name]
		if f == nil || len(f.Metric) != 1 {
			t.Fatalf("no %s on /metrics", name)
		}
		if f.GetType() == dto.MetricType_COUNTER {
			return f.Metric[0].GetCounter().GetValue()
		}
		return f.Metric[0].GetGauge().GetValue()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	dir := t.TempDir()
	var rs *exec.Cmd
	startRedis := func() {
		t.Helper()
		rs = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
		if err := rs.Start(); err != nil {
			t.Fatal(err)
		}
	}
	startRedis()
	t.Cleanup(func() { _ = rs.Process.Kill(); _ = rs.Wait() })
	waitFor("socketio_redis_up 1", func() bool { return get("socketio_redis_up") == 1 })

	// Redis goes away: the node sees it, keeps MaxPending broadcasts and
	// counts the others as dropped.
	_ = rs.Process.Kill()
	_ = rs.Wait()
	waitFor("socketio_redis_up 0 while Redis is down", func() bool { return get("socketio_redis_up") == 0 })
	for i := range 5 {
		if err := srv.Sockets().Emit("m", i); err != nil {
			t.Fatal(err)
		}
	}
	if got := get("socketio_redis_publish_queue"); got != 3 {
		t.Errorf("socketio_redis_publish_queue = %v, want 3 (MaxPending)", got)
	}
	if got := get("socketio_redis_dropped_total"); got != 2 {
		t.Errorf("socketio_redis_dropped_total = %v, want 2 (past MaxPending)", got)
	}
	if got := get("socketio_redis_up"); got != 0 {
		t.Errorf("socketio_redis_up = %v while Redis is down, want 0", got)
	}

	startRedis()
	waitFor("socketio_redis_up 1 and the outbox published", func() bool {
		return get("socketio_redis_up") == 1 && get("socketio_redis_publish_queue") == 0 &&
			get("socketio_redis_published_total") >= 3
	})
	waitFor("socketio_redis_reconnects_total 1", func() bool { return get("socketio_redis_reconnects_total") >= 1 })
	if got := get("socketio_redis_dropped_total"); got != 2 {
		t.Errorf("socketio_redis_dropped_total = %v after the outage, want 2", got)
	}
	if got := get("socketio_redis_sessions"); got != 0 {
		t.Errorf("socketio_redis_sessions = %v without recovery, want 0", got)
	}
}
