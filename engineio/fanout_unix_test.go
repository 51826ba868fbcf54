//go:build unix

package engineio

import (
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFanOutPaced is BenchmarkFanOut's tcp case at a chat's pace: one
// message to each of 100 sessions, and the next once every flush has
// written it (a Delivery tells), so that each delivery finds its connection
// idle and makes a flush of its own (a write system call each), as at 25
// messages a second per client. It reports the process's CPU time per
// delivery, which is where the engine's work shows:
// cpu-ns, exact, and the part of it in user space, user-ns, which the
// kernel estimates from clock ticks (a noisy figure: compare many runs).
// The clients read nothing while it is measured: they drain their sockets
// between rounds of pacedRound messages, and that is not counted, since
// their reads cost several times what the server does.
func BenchmarkFanOutPaced(b *testing.B) {
	const pacedRound = 20 // messages per client between drains: well within a socket's receive buffer
	msg := TextMessage([]byte(`42["chat message",{"from":"alice","text":"hello, everyone"}]`))
	for _, m := range ioModes {
		const n = 100
		b.Run(fmt.Sprintf("tcp-%s/sessions=%d", m.name, n), func(b *testing.B) {
			s := startServer(b, Options{IOMode: m.mode, PingInterval: time.Hour, Logger: discardLogger()}, false)
			frameLen := int64(2 + len(msg.b))
			sessions := make([]*Session, n)
			clients := make([]*rawWS, n)
			for i := range sessions {
				c := rawWSDial(b, s, "EIO=4&transport=websocket")
				if _, err := c.readFrame(); err != nil { // OPEN
					b.Fatal(err)
				}
				_ = c.conn.SetReadDeadline(time.Time{})
				clients[i] = c
				sessions[i] = s.session(b).sess
			}
			drain := func(msgs int) {
				var wg sync.WaitGroup
				for _, c := range clients {
					wg.Go(func() {
						if _, err := io.CopyN(io.Discard, c.br, int64(msgs)*frameLen); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			var user, sys int64
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				round := min(pacedRound, b.N-done)
				var ru0, ru1 syscall.Rusage
				_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
				for range round {
					written := make(chan struct{})
					d := NewDelivery(func() { close(written) })
					for _, s := range sessions {
						d.Add()
						if err := s.Send(msg.Tracked(d)); err != nil {
							b.Fatal(err)
						}
					}
					d.Done()
					<-written // every flush wrote it: the next message finds the connections idle
				}
				_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
				user += ru1.Utime.Nano() - ru0.Utime.Nano()
				sys += ru1.Stime.Nano() - ru0.Stime.Nano()
				drain(round)
				done += round
			}
			b.StopTimer()
			deliveries := float64(b.N * n)
			b.ReportMetric(float64(user+sys)/deliveries, "cpu-ns/recipient")
			b.ReportMetric(float64(user)/deliveries, "user-ns/recipient")
		})
	}
}
