package history

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchBackends are the stores the benchmarks compare.
func benchBackends() []struct {
	name string
	dsn  func(b *testing.B) string
	opts Options
} {
	return []struct {
		name string
		dsn  func(b *testing.B) string
		opts Options
	}{
		{"sqlite-full", func(b *testing.B) string { return newSQLiteDSN(b) }, Options{Synchronous: SyncFull}},
		{"sqlite-normal", func(b *testing.B) string { return newSQLiteDSN(b) }, Options{Synchronous: SyncNormal}},
		{"postgres", func(b *testing.B) string { return newPostgresDSN(b) }, Options{}},
	}
}

// benchPayload is a typical chat message.
var benchPayload = []byte(`{"text":"hello, this is a chat message of a typical length, with some words"}`)

// BenchmarkWriter measures messages stored per second through a Writer by
// 64 concurrent clients that each wait for their ack before sending again
// (as socket.io clients with ackTimeout do), with group commit ("batched",
// MaxBatch 256) and with one transaction per message ("unbatched",
// MaxBatch 1).
func BenchmarkWriter(b *testing.B) {
	const clients = 64
	for _, be := range benchBackends() {
		for _, mode := range []struct {
			name     string
			maxBatch int
		}{{"batched", 256}, {"unbatched", 1}} {
			b.Run(be.name+"/"+mode.name, func(b *testing.B) {
				s := mustOpen(b, be.dsn(b), be.opts)
				w := NewWriter(s, WriterOptions{MaxBatch: mode.maxBatch})
				b.Cleanup(func() { w.Close(testCtx(b, 30*time.Second)) })
				var next atomic.Int64
				var failed atomic.Int64
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for c := 0; c < clients; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ack := make(chan error, 1)
						done := func(_ Result, err error) { ack <- err }
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							w.Submit(Message{Payload: benchPayload, ClientOffset: fmt.Sprint("c", i)}, done)
							if err := <-ack; err != nil {
								failed.Add(1)
							}
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if n := failed.Load(); n > 0 {
					b.Fatalf("%d submissions failed", n)
				}
				st := w.Stats()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
				b.ReportMetric(float64(st.Messages)/float64(max(st.Batches, 1)), "msg/batch")
			})
		}
	}
}

// BenchmarkAppend measures one goroutine calling Store.Append directly with
// batches of 1 and of 100 messages.
func BenchmarkAppend(b *testing.B) {
	for _, be := range benchBackends() {
		for _, size := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/batch=%d", be.name, size), func(b *testing.B) {
				s := mustOpen(b, be.dsn(b), be.opts)
				ctx := testCtx(b, 10*time.Minute)
				msgs := make([]Message, size)
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					for j := range msgs {
						msgs[j] = Message{Payload: benchPayload, ClientOffset: fmt.Sprint(i, "-", j)}
					}
					if _, err := s.Append(ctx, msgs); err != nil {
						b.Fatal(err)
					}
				}
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N*size)/elapsed.Seconds(), "msg/s")
			})
		}
	}
}
