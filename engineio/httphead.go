package engineio

import (
	"bytes"
	"net/textproto"
	"strconv"
)

// reqHead is what the keep-alive fast path (keepalive.go) reads of an
// HTTP/1.1 request head. Its byte slices point into the buffer parsed.
type reqHead struct {
	post      bool   // POST; otherwise GET
	path      []byte // the request target up to '?'
	query     []byte // after '?'
	host      []byte
	origin    []byte
	hasOrigin bool
	length    int64 // Content-Length; -1 when absent
	binary    bool  // Content-Type: application/octet-stream
	gzip      bool  // Accept-Encoding allows gzip
	close     bool  // Connection: close
	n         int   // the head's length, its blank line included
}

// headResult is what parseHead found.
type headResult uint8

const (
	headIncomplete headResult = iota // the head has not all arrived
	headOurs                         // a request the fast path serves
	headOther                        // anything else: net/http's to serve, or refuse
)

// headEnd returns the length of the head at the start of b (through its
// blank line), or -1 if it has not all arrived. from is where the search
// may start: the length already searched, so that a head arriving a byte
// at a time is not searched again from its start each time.
func headEnd(b []byte, from int) int {
	from = max(0, from-3)
	if i := bytes.Index(b[from:], []byte("\r\n\r\n")); i >= 0 {
		return from + i + 4
	}
	return -1
}

// bareLF reports whether b has, from from on, a LF that no CR precedes.
func bareLF(b []byte, from int) bool {
	for i := from; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return false
		}
		i += j
		if i == 0 || b[i-1] != '\r' {
			return true
		}
	}
	return false
}

// parseHead reads the complete head b[:n] (n from headEnd). It accepts
// only the strict subset of HTTP/1.1 a polling client sends: a GET or POST
// with an origin-form target, CRLF line ends, header names of token
// characters, values of visible characters, spaces and tabs; no
// Transfer-Encoding, Upgrade, Expect, or obsolete line folding; at most one
// Host, Origin and Content-Length, which is all digits; a POST with a
// Content-Length, a GET without a body. Anything else is headOther, which
// net/http serves (or refuses) with all of its rules.
func parseHead(b []byte, n int, h *reqHead) headResult {
	*h = reqHead{length: -1, n: n}
	head := b[:n-2] // the lines, each with its CRLF
	line, rest, ok := cutLine(head)
	if !ok {
		return headOther
	}
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line = line[4:]
	case bytes.HasPrefix(line, []byte("POST ")):
		h.post = true
		line = line[5:]
	default:
		return headOther
	}
	target, ok := originTarget(line)
	if !ok {
		return headOther
	}
	h.path, h.query, _ = bytes.Cut(target, []byte("?"))
	var hasHost bool
	for len(rest) > 0 {
		var name, value []byte
		name, value, rest, ok = cutField(rest)
		if !ok {
			return headOther
		}
		switch {
		case equalFold(name, "host"):
			if hasHost {
				return headOther
			}
			hasHost, h.host = true, value
		case equalFold(name, "origin"):
			if h.hasOrigin {
				return headOther
			}
			h.hasOrigin, h.origin = true, value
		case equalFold(name, "content-length"):
			if h.length >= 0 || len(value) == 0 || len(value) > 18 {
				return headOther
			}
			var v int64
			for _, c := range value {
				if c < '0' || c > '9' {
					return headOther
				}
				v = v*10 + int64(c-'0')
			}
			h.length = v
		case equalFold(name, "content-type"):
			h.binary = string(value) == "application/octet-stream"
		case equalFold(name, "accept-encoding"):
			h.gzip = h.gzip || acceptsGzip(value)
		case equalFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = trimOWS(tok)
				switch {
				case equalFold(tok, "close"):
					h.close = true
				case equalFold(tok, "upgrade"):
					return headOther
				}
			}
		case equalFold(name, "transfer-encoding"), equalFold(name, "upgrade"), equalFold(name, "expect"):
			return headOther
		}
	}
	if !hasHost || h.post && h.length < 0 || !h.post && h.length > 0 {
		return headOther
	}
	if !h.post {
		h.length = 0
	}
	return headOurs
}

// originTarget reads the rest of a request line after its method: an
// origin-form target of visible characters, without a fragment or escapes
// in its path (net/http decodes, or refuses, them; the engine's path has
// none), then " HTTP/1.1".
func originTarget(line []byte) (target []byte, ok bool) {
	target, ok = bytes.CutSuffix(line, []byte(" HTTP/1.1"))
	if !ok || len(target) == 0 || target[0] != '/' {
		return nil, false
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return nil, false
		}
	}
	path, _, _ := bytes.Cut(target, []byte("?"))
	if bytes.IndexByte(path, '%') >= 0 {
		return nil, false
	}
	return target, true
}

// cutField cuts the first header line off rest: a name of token
// characters, a colon, and a value (trimmed) of visible characters, spaces
// and tabs. A line with no name (or obsolete line folding: one that starts
// with a space) is not accepted.
func cutField(rest []byte) (name, value, after []byte, ok bool) {
	line, after, ok := cutLine(rest)
	if !ok {
		return nil, nil, nil, false
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, nil, false
	}
	name, value = line[:colon], trimOWS(line[colon+1:])
	for _, c := range name {
		if !isTokenChar(c) {
			return nil, nil, nil, false
		}
	}
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, nil, false
		}
	}
	return name, value, after, true
}

// cutLine cuts the first CRLF-terminated line off b; a bare LF or CR is
// not accepted.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b is s, ignoring ASCII case; s is lower case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may be in an HTTP token (RFC 9110 tchar).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// acceptsGzip reports whether one Accept-Encoding value allows gzip, as
// httpasset.AcceptsGzip reads it: the first of gzip and * decides, by its
// q (absent: 1).
func acceptsGzip(v []byte) bool {
	for part := range bytes.SplitSeq(v, []byte(",")) {
		name, params, _ := bytes.Cut(part, []byte(";"))
		name = trimOWS(name)
		if !equalFold(name, "gzip") && string(name) != "*" {
			continue
		}
		q, ok := bytes.CutPrefix(trimOWS(params), []byte("q="))
		if !ok {
			return true
		}
		f, _ := strconv.ParseFloat(string(q), 64) // rare: browsers send no q for gzip
		return f > 0
	}
	return false
}

// upgradeHead is what the front door (front_linux.go) reads of a WebSocket
// handshake's head: the request target and the header fields, their names
// canonical as net/http makes them. The strings are copies.
type upgradeHead struct {
	target string // origin-form: path and query
	path   string
	host   string
	header map[string][]string
	n      int // the head's length, its blank line included
}

// parseUpgradeHead reads the complete head b[:n] (n from headEnd) of a
// WebSocket handshake. It accepts only the strict subset of HTTP/1.1 a
// WebSocket client sends: a GET with an origin-form target without
// escapes in its path, CRLF line ends, header names of token characters,
// values of visible characters, spaces and tabs; exactly one Host, of the
// characters a host name, an IP literal and a port are made of; Upgrade
// with the token websocket and Connection with the token upgrade; no body
// (Content-Length, Transfer-Encoding) and no Expect. It reports false for
// anything else, which net/http serves (or refuses) with all of its
// rules.
func parseUpgradeHead(b []byte, n int, h *upgradeHead) bool {
	*h = upgradeHead{n: n}
	head := b[:n-2]
	line, rest, ok := cutLine(head)
	if !ok {
		return false
	}
	line, ok = bytes.CutPrefix(line, []byte("GET "))
	if !ok {
		return false
	}
	target, ok := originTarget(line)
	if !ok {
		return false
	}
	path, _, _ := bytes.Cut(target, []byte("?"))
	// One string holds the head: the target, the path, the Host and every
	// value are substrings of it (at, below), and the values share one
	// slice, each name's capped so that a second value of it is appended
	// elsewhere.
	hs := string(head)
	at := func(v []byte) string {
		off := cap(head) - cap(v) // v is a subslice of head
		return hs[off : off+len(v)]
	}
	var hasHost, upgrade, connUpgrade bool
	header := make(map[string][]string, 8)
	values := make([]string, 0, 12)
	for len(rest) > 0 {
		var name, value []byte
		name, value, rest, ok = cutField(rest)
		if !ok {
			return false
		}
		switch {
		case equalFold(name, "host"):
			if hasHost || !validHost(value) {
				return false
			}
			hasHost, h.host = true, at(value)
			continue // net/http keeps Host out of the header map
		case equalFold(name, "upgrade"):
			upgrade = upgrade || hasToken(value, "websocket")
		case equalFold(name, "connection"):
			connUpgrade = connUpgrade || hasToken(value, "upgrade")
			if hasToken(value, "close") {
				return false
			}
		case equalFold(name, "content-length"), equalFold(name, "transfer-encoding"), equalFold(name, "expect"):
			return false
		}
		key := canonicalKey(name)
		if vs, ok := header[key]; ok {
			header[key] = append(vs, at(value))
			continue
		}
		values = append(values, at(value))
		header[key] = values[len(values)-1 : len(values) : len(values)]
	}
	if !hasHost || !upgrade || !connUpgrade {
		return false
	}
	if _, ok := header["Cache-Control"]; !ok && len(header["Pragma"]) > 0 && header["Pragma"][0] == "no-cache" {
		header["Cache-Control"] = []string{"no-cache"} // as net/http (HTTP/1.0's Pragma)
	}
	h.target, h.path, h.header = at(target), at(path), header
	return true
}

// hasToken reports whether the comma-separated list v has tok (lower
// case), ignoring ASCII case.
func hasToken(v []byte, tok string) bool {
	for t := range bytes.SplitSeq(v, []byte(",")) {
		if equalFold(trimOWS(t), tok) {
			return true
		}
	}
	return false
}

// validHost reports whether a Host value has only the characters of a
// host name, an IPv4 or IPv6 literal and a port: a subset of what
// net/http accepts.
func validHost(v []byte) bool {
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey of a token, without an
// allocation for the names a WebSocket handshake usually has.
func canonicalKey(name []byte) string {
	for _, k := range commonKeys {
		if len(k.lower) == len(name) && equalFold(name, k.lower) {
			return k.canonical
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

var commonKeys = [...]struct{ lower, canonical string }{
	{"upgrade", "Upgrade"},
	{"connection", "Connection"},
	{"sec-websocket-key", "Sec-Websocket-Key"},
	{"sec-websocket-version", "Sec-Websocket-Version"},
	{"sec-websocket-extensions", "Sec-Websocket-Extensions"},
	{"sec-websocket-protocol", "Sec-Websocket-Protocol"},
	{"origin", "Origin"},
	{"user-agent", "User-Agent"},
	{"cookie", "Cookie"},
	{"accept-encoding", "Accept-Encoding"},
	{"accept-language", "Accept-Language"},
	{"cache-control", "Cache-Control"},
	{"pragma", "Pragma"},
	{"x-forwarded-for", "X-Forwarded-For"},
}
