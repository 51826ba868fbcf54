package shardedadapter

import (
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/rediscluster"
	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/chatio/socketio-chat/socketio/redisadapter"
)

// BenchmarkCrossNode: one op is one broadcast from a node to everyone,
// received by a WebSocket client of another node, on the package's
// 3-primary Redis Cluster, through the pub/sub adapter and the sharded
// one. Ops are sent at once; the time runs until the last one arrives.
//
//	go test -run '^$' -bench CrossNode -benchtime 20000x ./socketio/shardedadapter/
func BenchmarkCrossNode(b *testing.B) {
	rc := rediscluster.Shared(b)
	for _, kind := range []string{"pubsub", "sharded"} {
		b.Run(kind, func(b *testing.B) {
			prefix := testPrefix()
			start := func() *socketio.Server {
				log := testlog.New(b, slog.LevelWarn)
				var ad socketio.Adapter
				var err error
				if kind == "sharded" {
					ad, err = New(Options{URL: rc.URLs(), Prefix: prefix, Log: log, PublishQueue: 1 << 16})
				} else {
					ad, err = redisadapter.New(redisadapter.Options{URL: rc.URLs(), Prefix: prefix, Log: log, PublishQueue: 1 << 16})
				}
				if err != nil {
					b.Fatal(err)
				}
				srv, err := socketio.NewServer(socketio.Options{Adapter: ad, Logger: log})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(srv.Close)
				return srv
			}
			n1, n2 := start(), start()
			ts := httptest.NewServer(n2)
			b.Cleanup(ts.Close)
			c := dial(b, ts.URL)
			// Wait until n1's broadcasts reach n2.
			waitFor(b, "the nodes to hear each other", 10*time.Second, func() bool {
				_ = n1.Of("/").Emit("probe")
				select {
				case p := <-c.packets:
					return p == `2["probe"]`
				case <-time.After(100 * time.Millisecond):
					return false
				}
			})
			for len(c.packets) > 0 {
				<-c.packets
			}
			last := `2["m","` + strconv.Itoa(b.N-1) + `"]`
			b.ResetTimer()
			done := make(chan int)
			go func() {
				n := 0
				for p := range c.packets {
					if strings.HasPrefix(p, `2["m",`) {
						n++
					}
					if p == last {
						break
					}
				}
				done <- n
			}()
			for i := range b.N {
				_ = n1.Of("/").Emit("m", strconv.Itoa(i))
			}
			select {
			case n := <-done:
				b.StopTimer()
				if n != b.N {
					b.Errorf("received %d of %d", n, b.N)
				}
			case <-time.After(60 * time.Second):
				b.Fatal("the last broadcast did not arrive")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
