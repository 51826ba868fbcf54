package engineio

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chatio/socketio-chat/internal/httpasset"
)

// pollTarget is the request target socket.io-client polls with.
const pollTarget = "/socket.io/?EIO=4&transport=polling&t=PZx1a&sid=AAAAAAAAAAAAAAAAAAAA"

// getHead is a GET of pollTarget from host h with the header lines given
// (each without its CRLF).
func getHead(lines ...string) string {
	return headOf("GET "+pollTarget+" HTTP/1.1", append([]string{"Host: h"}, lines...)...)
}

// headOf joins a request line and header lines into a head, blank line
// included.
func headOf(request string, lines ...string) string {
	var b strings.Builder
	b.WriteString(request + "\r\n")
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// headCase is a request head and what parseHead must find in it; the
// fields after want are checked only when want is headOurs.
type headCase struct {
	name, head string
	want       headResult

	post                      bool
	path, query, host, origin string
	hasOrigin                 bool
	length                    int64
	binary, gzip, close       bool
}

// ours is a headOurs case of a GET of pollTarget from host h: the fields
// are set by the caller.
func ours(name, head string, set func(*headCase)) headCase {
	c := headCase{name: name, head: head, want: headOurs,
		path: "/socket.io/", query: strings.TrimPrefix(pollTarget, "/socket.io/?"), host: "h"}
	if set != nil {
		set(&c)
	}
	return c
}

func other(name, head string) headCase {
	return headCase{name: name, head: head, want: headOther}
}

var headCases = []headCase{
	ours("socket.io-client poll",
		"GET "+pollTarget+" HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nUser-Agent: x\r\nAccept-Encoding: gzip, deflate, br\r\nOrigin: http://localhost:3000\r\n\r\n",
		func(c *headCase) {
			c.host, c.origin, c.hasOrigin, c.gzip = "127.0.0.1:3000", "http://localhost:3000", true, true
		}),
	ours("browser poll", headOf("GET "+pollTarget+" HTTP/1.1",
		"Host: chat.example.com", "Connection: keep-alive", "sec-ch-ua-platform: \"Linux\"",
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"Accept: */*", "Origin: https://chat.example.com", "Sec-Fetch-Site: same-origin", "Sec-Fetch-Mode: cors",
		"Referer: https://chat.example.com/", "Accept-Encoding: gzip, deflate, br, zstd",
		"Accept-Language: en-US,en;q=0.9", "Cookie: io=AAAAAAAAAAAAAAAAAAAA"),
		func(c *headCase) {
			c.host, c.origin, c.hasOrigin, c.gzip = "chat.example.com", "https://chat.example.com", true, true
		}),
	ours("POST text", headOf("POST "+pollTarget+" HTTP/1.1",
		"Host: 127.0.0.1:3000", "Content-Length: 27", "Content-Type: text/plain;charset=UTF-8",
		"Origin: http://localhost:3000")+`42["chat message","hello"]`,
		func(c *headCase) {
			c.post, c.host, c.length, c.origin, c.hasOrigin = true, "127.0.0.1:3000", 27, "http://localhost:3000", true
		}),
	ours("POST binary", headOf("POST "+pollTarget+" HTTP/1.1",
		"Host: h", "Content-Type: application/octet-stream", "Content-Length: 3")+"\x04\x01\x02",
		func(c *headCase) { c.post, c.length, c.binary = true, 3, true }),
	ours("POST empty body", headOf("POST /socket.io/?EIO=4 HTTP/1.1", "Host: h", "Content-Length: 0"),
		func(c *headCase) { c.post, c.query = true, "EIO=4" }),
	ours("POST 18 digits", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: 999999999999999999"),
		func(c *headCase) { c.post, c.path, c.query, c.length = true, "/", "", 999999999999999999 }),
	ours("POST leading zeros", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: 007"),
		func(c *headCase) { c.post, c.path, c.query, c.length = true, "/", "", 7 }),
	ours("odd case names", headOf("GET "+pollTarget+" HTTP/1.1",
		"hOsT: h", "ORIGIN: o", "accept-ENCODING: GZIP", "CONNECTION: CLOSE", "content-length: 0"),
		func(c *headCase) { c.origin, c.hasOrigin, c.gzip, c.close = "o", true, true, true }),
	ours("odd case POST", headOf("POST "+pollTarget+" HTTP/1.1",
		"host: h", "CONTENT-length: 2", "content-TYPE: application/octet-stream"),
		func(c *headCase) { c.post, c.length, c.binary = true, 2, true }),
	ours("OWS around values", headOf("POST "+pollTarget+" HTTP/1.1",
		"Host:h", "Origin: \t o \t", "Content-Length:\t12 ", "Content-Type:  application/octet-stream\t",
		"Accept-Encoding:\tgzip\t", "Connection:  close  "),
		func(c *headCase) {
			c.post, c.origin, c.hasOrigin, c.length, c.binary, c.gzip, c.close = true, "o", true, 12, true, true, true
		}),
	ours("empty Origin", getHead("Origin:"), func(c *headCase) { c.hasOrigin = true }),
	ours("empty Host", headOf("GET / HTTP/1.1", "Host:"), func(c *headCase) { c.path, c.query, c.host = "/", "", "" }),
	ours("bare path", headOf("GET / HTTP/1.1", "Host: h"), func(c *headCase) { c.path, c.query = "/", "" }),
	ours("empty query", headOf("GET /socket.io/? HTTP/1.1", "Host: h"), func(c *headCase) { c.query = "" }),
	ours("two question marks", headOf("GET /a?b?c HTTP/1.1", "Host: h"), func(c *headCase) { c.path, c.query = "/a", "b?c" }),
	ours("GET Content-Length 0", getHead("Content-Length: 0"), nil),
	ours("non-ASCII value", getHead("User-Agent: \xc3\xa9\xff"), nil),
	ours("value with tab and colon", getHead("X-A: a\tb: c"), nil),
	ours("token name chars", getHead("!#$%&'*+-.^_`|~09az: x"), nil),
	ours("Content-Type with parameter", getHead("Content-Type: application/octet-stream; x=1"), nil),
	ours("Connection keep-alive", getHead("Connection: keep-alive"), nil),
	ours("Connection keep-alive, close", getHead("Connection: keep-alive, close"), func(c *headCase) { c.close = true }),
	ours("Connection close in second line", getHead("Connection: keep-alive", "Connection: Close"), func(c *headCase) { c.close = true }),
	ours("Connection closed", getHead("Connection: closed"), nil),
	ours("Connection empty items", getHead("Connection: ,, close ,"), func(c *headCase) { c.close = true }),
	ours("Upgrade-Insecure-Requests", getHead("Upgrade-Insecure-Requests: 1"), nil),
	ours("gzip q=0", getHead("Accept-Encoding: gzip;q=0"), nil),
	ours("gzip q=0.0 then star", getHead("Accept-Encoding: gzip;q=0.0, *"), nil),
	ours("gzip q=0.5", getHead("Accept-Encoding: gzip; q=0.5"), func(c *headCase) { c.gzip = true }),
	ours("star q=0.5", getHead("Accept-Encoding: *;q=0.5"), func(c *headCase) { c.gzip = true }),
	ours("star q=0", getHead("Accept-Encoding: br, *;q=0"), nil),
	ours("identity only", getHead("Accept-Encoding: identity"), nil),
	ours("deflate, br", getHead("Accept-Encoding: deflate, br"), nil),
	ours("x-gzip", getHead("Accept-Encoding: x-gzip"), nil),
	ours("gzip in second line", getHead("Accept-Encoding: br", "Accept-Encoding: gzip"), func(c *headCase) { c.gzip = true }),
	ours("empty Accept-Encoding", getHead("Accept-Encoding:"), nil),

	other("HTTP/1.0", headOf("GET / HTTP/1.0", "Host: h")),
	other("HTTP/2.0", headOf("GET / HTTP/2.0", "Host: h")),
	other("lower-case proto", headOf("GET / http/1.1", "Host: h")),
	other("PUT", headOf("PUT / HTTP/1.1", "Host: h", "Content-Length: 1")),
	other("OPTIONS", headOf("OPTIONS / HTTP/1.1", "Host: h")),
	other("OPTIONS star", headOf("OPTIONS * HTTP/1.1", "Host: h")),
	other("HEAD", headOf("HEAD / HTTP/1.1", "Host: h")),
	other("lower-case get", headOf("get / HTTP/1.1", "Host: h")),
	other("CONNECT", headOf("CONNECT h:443 HTTP/1.1", "Host: h:443")),
	other("absolute-form", headOf("GET http://h/socket.io/?EIO=4 HTTP/1.1", "Host: h")),
	other("authority-form", headOf("GET h:80 HTTP/1.1", "Host: h")),
	other("empty target", headOf("GET  HTTP/1.1", "Host: h")),
	other("two spaces", headOf("GET  / HTTP/1.1", "Host: h")),
	other("trailing space", headOf("GET / HTTP/1.1 ", "Host: h")),
	other("no proto", headOf("GET /", "Host: h")),
	other("bare LF", "GET / HTTP/1.1\nHost: h\n\r\n\r\n"),
	other("bare LF ends the last header", "GET / HTTP/1.1\r\nHost: h\n\r\n\r\n"),
	other("bare LF in a header", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"),
	other("CR inside a line", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"),
	other("CR inside the request line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n"),
	other("obs-fold", getHead("X-A: a", " b")),
	other("obs-fold tab", getHead("User-Agent: a", "\tb")),
	other("obs-fold first", headOf("GET / HTTP/1.1", " Host: h")),
	other("no colon", getHead("X-A")),
	other("empty name", getHead(": x")),
	other("space before colon", getHead("Origin : o")),
	other("space in name", getHead("X A: b")),
	other("non-token name", getHead("X\"A: b")),
	other("non-ASCII name", getHead("X\xc3\xa9: b")),
	other("NUL in value", getHead("X-A: a\x00b")),
	other("control in value", getHead("X-A: a\x01b")),
	other("DEL in value", getHead("X-A: a\x7fb")),
	other("ESC in Origin", getHead("Origin: http://h\x1b")),
	other("duplicate Host", getHead("Host: h")),
	other("duplicate Host case", getHead("HOST: h2")),
	other("duplicate Origin", getHead("Origin: a", "Origin: a")),
	other("duplicate Content-Length", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: 1", "Content-Length: 1")),
	other("Content-Length plus", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: +1")),
	other("Content-Length minus", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: -1")),
	other("Content-Length inner space", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: 1 2")),
	other("Content-Length list", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: 1,1")),
	other("Content-Length hex", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: 0x1")),
	other("Content-Length empty", headOf("POST / HTTP/1.1", "Host: h", "Content-Length:")),
	other("Content-Length 19 digits", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: 1000000000000000000")),
	other("Content-Length 20 digits", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: 18446744073709551616")),
	other("POST without Content-Length", headOf("POST / HTTP/1.1", "Host: h")),
	other("GET with Content-Length 5", getHead("Content-Length: 5")),
	other("Transfer-Encoding chunked", headOf("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked")),
	other("Transfer-Encoding and Content-Length", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: 3", "transfer-encoding: chunked")),
	other("Transfer-Encoding identity", getHead("Transfer-Encoding: identity")),
	other("Upgrade websocket", getHead("Connection: Upgrade", "Upgrade: websocket")),
	other("Upgrade alone", getHead("Upgrade: websocket")),
	other("Connection Upgrade", getHead("Connection: Upgrade")),
	other("Connection keep-alive, upgrade", getHead("Connection: keep-alive, upgrade")),
	other("Expect 100-continue", headOf("POST / HTTP/1.1", "Host: h", "Content-Length: 1", "Expect: 100-continue")),
	other("missing Host", headOf("GET "+pollTarget+" HTTP/1.1", "Origin: o")),
	other("no headers", headOf("GET / HTTP/1.1")),
	other("hash in target", headOf("GET /socket.io/?EIO=4#x HTTP/1.1", "Host: h")),
	other("space in target", headOf("GET /a b HTTP/1.1", "Host: h")),
	other("tab in target", headOf("GET /a\tb HTTP/1.1", "Host: h")),
	other("DEL in target", headOf("GET /a\x7f HTTP/1.1", "Host: h")),
	other("NUL in target", headOf("GET /a\x00 HTTP/1.1", "Host: h")),
	other("non-ASCII in target", headOf("GET /\xc3\xa9 HTTP/1.1", "Host: h")),
	other("only the blank line", "\r\n\r\n"),
	other("blank line first", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
}

func TestParseHead(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range headCases {
		if seen[tc.name] {
			t.Fatalf("two cases named %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.head)
			n := headEnd(b, 0)
			if n < 0 {
				t.Fatalf("headEnd(%q) = %d: the case is not a complete head", tc.head, n)
			}
			var h reqHead
			got := parseHead(b, n, &h)
			if got != tc.want {
				t.Fatalf("parseHead(%q) = %d, want %d", tc.head, got, tc.want)
			}
			if got != headOurs {
				return
			}
			if h.n != n {
				t.Errorf("n = %d, headEnd says %d", h.n, n)
			}
			wantLength := tc.length
			if h.post != tc.post || string(h.path) != tc.path || string(h.query) != tc.query ||
				string(h.host) != tc.host || string(h.origin) != tc.origin || h.hasOrigin != tc.hasOrigin ||
				h.length != wantLength || h.binary != tc.binary || h.gzip != tc.gzip || h.close != tc.close {
				t.Errorf("parseHead(%q):\n got post=%v path=%q query=%q host=%q origin=%q/%v length=%d binary=%v gzip=%v close=%v\nwant post=%v path=%q query=%q host=%q origin=%q/%v length=%d binary=%v gzip=%v close=%v",
					tc.head,
					h.post, h.path, h.query, h.host, h.origin, h.hasOrigin, h.length, h.binary, h.gzip, h.close,
					tc.post, tc.path, tc.query, tc.host, tc.origin, tc.hasOrigin, wantLength, tc.binary, tc.gzip, tc.close)
			}
			if err := agreesWithNetHTTP(b[:n], &h); err != nil {
				t.Errorf("parseHead(%q) serves it, but %v", tc.head, err)
			}
		})
	}
}

// agreesWithNetHTTP reports how net/http reads head (a complete request
// head that parseHead read into h as headOurs) differently, or nil: it
// must accept the request and find the same method, target, Host,
// Origin, Content-Length, Connection: close, Content-Type and gzip.
func agreesWithNetHTTP(head []byte, h *reqHead) error {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return fmt.Errorf("http.ReadRequest refuses it: %v", err)
	}
	var diffs []string
	diff := func(field string, got, want any) {
		diffs = append(diffs, fmt.Sprintf("%s: parseHead %#v, net/http %#v", field, got, want))
	}
	if method := map[bool]string{false: http.MethodGet, true: http.MethodPost}[h.post]; req.Method != method {
		diff("method", method, req.Method)
	}
	if req.ProtoMajor != 1 || req.ProtoMinor != 1 {
		diff("proto", "HTTP/1.1", req.Proto)
	}
	path, query, _ := strings.Cut(req.RequestURI, "?")
	if string(h.path) != path {
		diff("path", string(h.path), path)
	}
	if string(h.query) != query {
		diff("query", string(h.query), query)
	}
	if string(h.query) != req.URL.RawQuery {
		diff("URL.RawQuery", string(h.query), req.URL.RawQuery)
	}
	if req.URL.Host != "" || req.URL.Scheme != "" {
		diff("URL scheme and host", "", req.URL.Scheme+"://"+req.URL.Host)
	}
	if string(h.host) != req.Host {
		diff("Host", string(h.host), req.Host)
	}
	switch origin := req.Header["Origin"]; {
	case len(origin) > 1:
		diff("Origin", string(h.origin), origin)
	case h.hasOrigin != (len(origin) == 1):
		diff("has Origin", h.hasOrigin, len(origin) == 1)
	case h.hasOrigin && string(h.origin) != origin[0]:
		diff("Origin", string(h.origin), origin[0])
	}
	if n := len(req.Header["Content-Length"]); n > 1 {
		diff("Content-Length lines", 1, n)
	}
	if h.post && h.length != req.ContentLength || !h.post && (h.length != 0 || req.ContentLength != 0) {
		diff("Content-Length", h.length, req.ContentLength)
	}
	if h.close != req.Close {
		diff("Connection: close", h.close, req.Close)
	}
	if binary := req.Header.Get("Content-Type") == "application/octet-stream"; h.binary != binary {
		diff("Content-Type application/octet-stream", h.binary, binary)
	}
	if gzip := httpasset.AcceptsGzip(req.Header); h.gzip != gzip {
		diff("gzip", h.gzip, gzip)
	}
	if len(req.TransferEncoding) > 0 {
		diff("Transfer-Encoding", nil, req.TransferEncoding)
	}
	if isWebSocketUpgrade(req) || req.Header.Get("Upgrade") != "" || req.Header.Get("Expect") != "" {
		diff("Upgrade or Expect", nil, req.Header)
	}
	if diffs != nil {
		return fmt.Errorf("net/http reads it differently:\n\t%s", strings.Join(diffs, "\n\t"))
	}
	return nil
}

// headEndIndex is headEnd by definition: the index after the first
// "\r\n\r\n", or -1.
func headEndIndex(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return -1
}

// checkHeadEnd checks headEnd(b, from) against its definition for each
// from a caller may pass: any length already searched without finding
// the blank line, so from 0 up to the end of the head less one (or len(b)
// when there is no end). When b is long, only a sample of offsets.
func checkHeadEnd(t testing.TB, b []byte) {
	want := headEndIndex(b)
	if got := headEnd(b, 0); got != want {
		t.Fatalf("headEnd(%q, 0) = %d, want %d", b, got, want)
	}
	last := len(b)
	if want >= 0 {
		last = want - 1
	}
	for from := 0; from <= last; from++ {
		if last > 600 && from > 256 && from < last-256 && from%61 != 0 {
			continue
		}
		if got := headEnd(b, from); got != want {
			t.Fatalf("headEnd(%q, %d) = %d, want %d", b, from, got, want)
		}
	}
}

func TestHeadEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    string
		want int
	}{
		{"empty", "", -1},
		{"CR", "\r", -1},
		{"CRLF", "\r\n", -1},
		{"CRLF CR", "\r\n\r", -1},
		{"blank line", "\r\n\r\n", 4},
		{"request line only", "GET / HTTP/1.1\r\n", -1},
		{"one header", "GET / HTTP/1.1\r\nHost: h\r\n", -1},
		{"last CR missing LF", "GET / HTTP/1.1\r\nHost: h\r\n\r", -1},
		{"LF LF", "GET / HTTP/1.1\nHost: h\n\n", -1},
		{"LF CRLF", "GET / HTTP/1.1\r\nHost: h\n\r\n", -1},
		{"CR CR", "GET / HTTP/1.1\r\nHost: h\r\r\n\n", -1},
		{"CRLF CRLF", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27},
		{"body follows", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n\r\n\r\n", 47},
		{"next request follows", "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 27},
		{"CR run", "GET / HTTP/1.1\r\r\r\n\r\r\n\r\n", 23},
		{"poll", getHead(), len(getHead())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.b)
			if got := headEnd(b, 0); got != tc.want {
				t.Fatalf("headEnd(%q, 0) = %d, want %d", b, got, tc.want)
			}
			checkHeadEnd(t, b)
			// The head arriving a byte at a time, each read searching
			// only what the one before did not: the end is found with
			// the byte that completes it, and not before.
			searched := 0
			for i := 0; i <= len(b); i++ {
				got := headEnd(b[:i], searched)
				if want := headEndIndex(b[:i]); got != want {
					t.Fatalf("%d bytes arrived, %d searched: headEnd = %d, want %d", i, searched, got, want)
				}
				if got >= 0 {
					break
				}
				searched = i
			}
			// And in reads of any fixed size.
			for step := 2; step <= 7; step++ {
				searched, found := 0, -1
				for i := step; found < 0; i += step {
					i = min(i, len(b))
					found, searched = headEnd(b[:i], searched), i
					if i == len(b) {
						break
					}
				}
				if found != tc.want {
					t.Fatalf("reads of %d bytes: headEnd = %d, want %d", step, found, tc.want)
				}
			}
		})
	}
	for _, tc := range headCases {
		checkHeadEnd(t, []byte(tc.head))
	}
}

// FuzzParseHead: any bytes may arrive on a connection. parseHead must
// never panic, and a head it serves itself (headOurs) must be one net/http
// accepts and reads the same; headEnd must find the first blank line
// whatever the length already searched.
func FuzzParseHead(f *testing.F) {
	for _, tc := range headCases {
		f.Add([]byte(tc.head))
	}
	for _, s := range []string{
		"", "\r\n\r\n", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: h\r\n\r",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkHeadEnd(t, b)
		n := headEnd(b, 0)
		if n < 0 {
			return
		}
		var h reqHead
		r := parseHead(b, n, &h)
		if r != headOurs {
			if r != headOther {
				t.Fatalf("parseHead(%q) = %d on a complete head", b[:n], r)
			}
			return
		}
		if h.n != n {
			t.Fatalf("parseHead(%q): n = %d, headEnd says %d", b[:n], h.n, n)
		}
		if err := agreesWithNetHTTP(b[:n], &h); err != nil {
			t.Fatalf("parseHead(%q) serves it, but %v", b[:n], err)
		}
	})
}

// wsHandshake is a WebSocket handshake's head: GET target from host with
// the header lines given (each without its CRLF), blank line included.
func wsHandshake(target string, lines ...string) string {
	return headOf("GET "+target+" HTTP/1.1", lines...)
}

// wsLines are the lines every WebSocket client sends, but Host.
var wsLines = []string{"Upgrade: websocket", "Connection: Upgrade",
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"}

// wsHead is a handshake to /socket.io/ from host h with wsLines and more.
func wsHead(more ...string) string {
	return wsHandshake("/socket.io/?EIO=4&transport=websocket", append(append([]string{"Host: h"}, wsLines...), more...)...)
}

// upgradeCases are heads of WebSocket handshakes, real and malformed, and
// whether parseUpgradeHead takes them; the fields are checked when it does.
var upgradeCases = []struct {
	name, head string
	ok         bool
	host, path string
}{
	{"chrome", wsHandshake("/socket.io/?EIO=4&transport=websocket",
		"Host: localhost:3000", "Connection: Upgrade", "Pragma: no-cache", "Cache-Control: no-cache",
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"Upgrade: websocket", "Origin: http://localhost:3000", "Sec-WebSocket-Version: 13",
		"Accept-Encoding: gzip, deflate, br, zstd", "Accept-Language: en-US,en;q=0.9",
		"Cookie: io=AAAAAAAAAAAAAAAAAAAA; theme=dark",
		"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"),
		true, "localhost:3000", "/socket.io/"},
	{"firefox", wsHandshake("/socket.io/?EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA",
		"Host: chat.example.com", "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
		"Accept: */*", "Accept-Language: en-US,en;q=0.5", "Accept-Encoding: gzip, deflate, br, zstd",
		"Sec-WebSocket-Version: 13", "Origin: https://chat.example.com",
		"Sec-WebSocket-Extensions: permessage-deflate", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"Connection: keep-alive, Upgrade", "Sec-Fetch-Dest: empty", "Sec-Fetch-Mode: websocket",
		"Sec-Fetch-Site: same-origin", "Pragma: no-cache", "Cache-Control: no-cache", "Upgrade: websocket"),
		true, "chat.example.com", "/socket.io/"},
	{"node ws", wsHandshake("/socket.io/?EIO=4&transport=websocket",
		"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: 3Vd0b0sDq7pcHrjZQzbH2g==", "Connection: Upgrade",
		"Upgrade: websocket", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
		"Host: 127.0.0.1:3000"),
		true, "127.0.0.1:3000", "/socket.io/"},
	{"gorilla", wsHandshake("/engine.io/?EIO=4&transport=websocket",
		"Host: [::1]:8080", "User-Agent: Go-http-client/1.1", "Connection: Upgrade",
		"Sec-WebSocket-Key: 3Vd0b0sDq7pcHrjZQzbH2g==", "Sec-WebSocket-Version: 13", "Upgrade: websocket"),
		true, "[::1]:8080", "/engine.io/"},
	{"without Origin", wsHead(), true, "h", "/socket.io/"},
	{"with Origin", wsHead("Origin: http://h"), true, "h", "/socket.io/"},
	{"subprotocols", wsHead("Sec-WebSocket-Protocol: chat, superchat"), true, "h", "/socket.io/"},
	{"two cookies", wsHead("Cookie: a=1", "Cookie: b=2"), true, "h", "/socket.io/"},
	{"odd case", wsHandshake("/x", "hOsT: h", "UPGRADE: WebSocket", "connection: UPGRADE", "x-forwarded-FOR: 1.2.3.4"), true, "h", "/x"},
	{"OWS", wsHandshake("/x", "Host:h", "Upgrade:\twebsocket ", "Connection:  keep-alive ,upgrade\t", "X-A:"), true, "h", "/x"},
	{"no query", wsHandshake("/x", append([]string{"Host: h"}, wsLines...)...), true, "h", "/x"},
	{"underscore host", wsHandshake("/x", append([]string{"Host: my_host.local"}, wsLines...)...), true, "my_host.local", "/x"},

	{"no Upgrade", wsHandshake("/x", "Host: h", "Connection: Upgrade"), false, "", ""},
	{"no Connection upgrade", wsHandshake("/x", "Host: h", "Upgrade: websocket", "Connection: keep-alive"), false, "", ""},
	{"Upgrade h2c", wsHandshake("/x", "Host: h", "Upgrade: h2c", "Connection: Upgrade"), false, "", ""},
	{"Connection close", wsHead("Connection: close"), false, "", ""},
	{"no Host", wsHandshake("/x", wsLines...), false, "", ""},
	{"two Hosts", wsHead("Host: h"), false, "", ""},
	{"Host with slash", wsHandshake("/x", append([]string{"Host: h/x"}, wsLines...)...), false, "", ""},
	{"Host with at", wsHandshake("/x", append([]string{"Host: u@h"}, wsLines...)...), false, "", ""},
	{"Content-Length", wsHead("Content-Length: 0"), false, "", ""},
	{"Transfer-Encoding", wsHead("Transfer-Encoding: chunked"), false, "", ""},
	{"Expect", wsHead("Expect: 100-continue"), false, "", ""},
	{"POST", headOf("POST /x HTTP/1.1", append([]string{"Host: h"}, wsLines...)...), false, "", ""},
	{"HTTP/1.0", headOf("GET /x HTTP/1.0", append([]string{"Host: h"}, wsLines...)...), false, "", ""},
	{"absolute-form", wsHandshake("http://h/x", append([]string{"Host: h"}, wsLines...)...), false, "", ""},
	{"escape in path", wsHandshake("/a%20b", append([]string{"Host: h"}, wsLines...)...), false, "", ""},
	{"hash in target", wsHandshake("/a#b", append([]string{"Host: h"}, wsLines...)...), false, "", ""},
	{"bare LF", "GET /x HTTP/1.1\nHost: h\nUpgrade: websocket\nConnection: Upgrade\r\n\r\n", false, "", ""},
	{"obs-fold", wsHead("X-A: a", " b"), false, "", ""},
	{"space before colon", wsHead("Origin : o"), false, "", ""},
	{"NUL in value", wsHead("Origin: a\x00b"), false, "", ""},
	{"CR in value", "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX: a\rb\r\n\r\n", false, "", ""},
}

func TestParseUpgradeHead(t *testing.T) {
	for _, tc := range upgradeCases {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.head + "trailing bytes")
			n := headEnd(b, 0)
			if n != len(tc.head) {
				t.Fatalf("headEnd = %d, want %d: the case is not one complete head", n, len(tc.head))
			}
			var h upgradeHead
			if got := parseUpgradeHead(b, n, &h); got != tc.ok {
				t.Fatalf("parseUpgradeHead(%q) = %v, want %v", tc.head, got, tc.ok)
			}
			if !tc.ok {
				return
			}
			if h.n != n || h.host != tc.host || h.path != tc.path {
				t.Errorf("n, host, path = %d %q %q, want %d %q %q", h.n, h.host, h.path, n, tc.host, tc.path)
			}
			if err := upgradeAgreesWithNetHTTP(b[:n], &h); err != nil {
				t.Error(err)
			}
		})
	}
}

// upgradeAgreesWithNetHTTP reports how net/http reads head (a complete
// head that parseUpgradeHead took into h) differently, or nil: it must
// accept it as a GET WebSocket handshake with the same target, Host and
// header map (but Host, which net/http's server takes out of it).
func upgradeAgreesWithNetHTTP(head []byte, h *upgradeHead) error {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return fmt.Errorf("parseUpgradeHead takes %q, http.ReadRequest refuses it: %v", head, err)
	}
	var diffs []string
	diff := func(field string, got, want any) {
		diffs = append(diffs, fmt.Sprintf("%s: parseUpgradeHead %#v, net/http %#v", field, got, want))
	}
	if req.Method != http.MethodGet {
		diff("method", http.MethodGet, req.Method)
	}
	if req.ProtoMajor != 1 || req.ProtoMinor != 1 {
		diff("proto", "HTTP/1.1", req.Proto)
	}
	if h.target != req.RequestURI {
		diff("RequestURI", h.target, req.RequestURI)
	}
	if h.path != req.URL.Path {
		diff("URL.Path", h.path, req.URL.Path)
	}
	if req.URL.Host != "" || req.URL.Scheme != "" {
		diff("URL scheme and host", "", req.URL.Scheme+"://"+req.URL.Host)
	}
	if h.host != req.Host {
		diff("Host", h.host, req.Host)
	}
	want := req.Header.Clone()
	delete(want, "Host") // as net/http's server does
	if !maps.EqualFunc(map[string][]string(want), h.header, slices.Equal) {
		diff("header", h.header, map[string][]string(want))
	}
	if req.Close || req.ContentLength != 0 || len(req.TransferEncoding) > 0 {
		diff("Close, ContentLength, TransferEncoding", "false 0 []", fmt.Sprint(req.Close, req.ContentLength, req.TransferEncoding))
	}
	if !isWebSocketUpgrade(req) {
		diff("WebSocket upgrade", true, false)
	}
	if diffs != nil {
		return fmt.Errorf("parseUpgradeHead(%q): net/http reads it differently:\n\t%s", head, strings.Join(diffs, "\n\t"))
	}
	return nil
}

// FuzzParseUpgradeHead: any bytes may arrive on a new connection. A head
// parseUpgradeHead takes (the front door serves it without net/http) must
// be one net/http accepts and reads the same, so that the handler sees the
// request it would have seen through net/http.
func FuzzParseUpgradeHead(f *testing.F) {
	for _, tc := range upgradeCases {
		f.Add([]byte(tc.head))
	}
	for _, tc := range headCases {
		f.Add([]byte(tc.head))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := headEnd(b, 0)
		if n < 0 {
			return
		}
		var h upgradeHead
		if !parseUpgradeHead(b, n, &h) {
			return
		}
		if h.n != n {
			t.Fatalf("parseUpgradeHead(%q): n = %d, headEnd says %d", b[:n], h.n, n)
		}
		if err := upgradeAgreesWithNetHTTP(b[:n], &h); err != nil {
			t.Fatal(err)
		}
	})
}
