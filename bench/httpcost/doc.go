// Package httpcost measures what net/http costs per keep-alive request, the
// question behind issue 17's long-polling part: how much of a polling
// request's CPU would our own HTTP/1.1 handling save (docs/BENCHMARKS.md,
// "Polling CPU")?
//
// Its benchmarks (in httpcost_test.go) send the same polling GET over 8
// keep-alive loopback connections to two servers that answer it with the
// same 200 response: net/http with a handler setting the headers a poll's
// answer has, and a minimal HTTP/1.1 loop (request line and headers read
// with a bufio.Reader, the response written in one write). Client and
// server run in the benchmark's process; the client's work is the same for
// both, so the difference in CPU per request (user+sys, from getrusage) is
// the difference between the two servers:
//
//	go test -run '^$' -bench . -benchtime 100000x -count 3 ./bench/httpcost
//
// The minimal loop is a yardstick, not a server: it parses nothing it does
// not need and has none of the limits a server must keep.
package httpcost
