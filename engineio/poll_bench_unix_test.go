//go:build unix

package engineio

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
)

// BenchmarkPollHTTP is BenchmarkPoll through net/http over a keep-alive
// loopback connection: one op is a GET that finds a message queued and its
// answer, read by a raw client. cpu-µs/op (user+sys of the process, client
// included) is steadier than ns/op on a shared machine.
func BenchmarkPollHTTP(b *testing.B) {
	s := startServer(b, Options{}, false)
	c, rec := pollOpen(b, s, 4)
	u, err := url.Parse(c.url())
	if err != nil {
		b.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n"
	br := bufio.NewReader(conn)
	payload := []byte(`42["message","hello from the benchmark, one chat line"]`)
	poll := func() {
		if err := rec.sess.Send(TextMessage(payload)); err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(conn, req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("poll: %d, %v", resp.StatusCode, err)
		}
		_ = resp.Body.Close()
	}
	poll()
	benchCPU(b, poll)
}

// benchCPU runs op b.N times and reports, besides allocations, the
// process's CPU time (user + system) per op in µs.
func benchCPU(b *testing.B, op func()) {
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		op()
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N)/1e3, "cpu-µs/op")
}
