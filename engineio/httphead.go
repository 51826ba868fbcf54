package engineio

import (
	"bytes"
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
	target, proto, ok := bytes.Cut(line, []byte(" "))
	if !ok || string(proto) != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return headOther
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return headOther
		}
	}
	h.path, h.query, _ = bytes.Cut(target, []byte("?"))
	if bytes.IndexByte(h.path, '%') >= 0 {
		return headOther // escapes: net/http decodes (or refuses) them; the engine's path has none
	}
	var hasHost bool
	for len(rest) > 0 {
		line, rest, ok = cutLine(rest)
		if !ok {
			return headOther
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return headOther // no name (or obsolete line folding: a line that starts with a space)
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range name {
			if !isTokenChar(c) {
				return headOther
			}
		}
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return headOther
			}
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
