package httpcost

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// request is a socket.io-client's poll, as the load generator sends it.
const request = "GET /socket.io/?EIO=4&transport=polling&t=PZx1a&sid=AAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n" +
	"Host: 127.0.0.1:3000\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n"

// body is a poll's answer: one chat message.
var body = []byte(`42["message","hello from the benchmark, one chat line"]`)

var (
	textPlain = []string{"text/plain; charset=UTF-8"}
	noStore   = []string{"no-store"}
)

// serveNetHTTP answers every request as engineio's writePayload does.
func serveNetHTTP(ln net.Listener) {
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Type"] = textPlain
			h["Cache-Control"] = noStore
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(20 * time.Second))
			_, _ = w.Write(body)
		}),
	}
	_ = srv.Serve(ln)
}

// serveLean is the minimal HTTP/1.1 keep-alive loop.
func serveLean(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			br := bufio.NewReaderSize(c, 4096)
			out := make([]byte, 0, 512)
			for {
				line, err := br.ReadSlice('\n')
				if err != nil || !bytes.HasPrefix(line, []byte("GET ")) {
					return
				}
				for {
					l, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(l) <= 2 {
						break // the blank line that ends the headers
					}
				}
				out = append(out[:0], "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n"+
					"Content-Type: text/plain; charset=UTF-8\r\nDate: Mon, 07 Dec 2026 04:00:00 GMT\r\nContent-Length: "...)
				out = strconv.AppendInt(out, int64(len(body)), 10)
				out = append(out, "\r\n\r\n"...)
				out = append(out, body...)
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}()
	}
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// run measures serve: each op is one request and its response, 8
// connections with one request in flight each.
func run(b *testing.B, serve func(net.Listener)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go serve(ln)
	const conns = 8
	cs := make([]net.Conn, conns)
	size := 0
	for i := range cs {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		cs[i] = c
		// The first answer gives the length of every answer (same headers,
		// same body; Date changes but not its length).
		if _, err := io.WriteString(c, request); err != nil {
			b.Fatal(err)
		}
		if size, err = responseSize(c); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, size)
	b.ReportAllocs()
	start := cpuTime(b)
	b.ResetTimer()
	for i := 0; i < b.N; i += conns {
		for _, c := range cs {
			if _, err := io.WriteString(c, request); err != nil {
				b.Fatal(err)
			}
		}
		for _, c := range cs {
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N)/1e3, "cpu-µs/op")
}

// responseSize reads one response from c, a byte at a time (nothing past
// it), and returns its length.
func responseSize(c net.Conn) (int, error) {
	var head []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := io.ReadFull(c, one); err != nil {
			return 0, err
		}
		head = append(head, one[0])
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
	if err != nil {
		return 0, err
	}
	if resp.ContentLength < 0 {
		return 0, errors.New("response without Content-Length")
	}
	if _, err := io.CopyN(io.Discard, c, resp.ContentLength); err != nil {
		return 0, err
	}
	return len(head) + int(resp.ContentLength), nil
}

func BenchmarkNetHTTP(b *testing.B) { run(b, serveNetHTTP) }
func BenchmarkLean(b *testing.B)    { run(b, serveLean) }
