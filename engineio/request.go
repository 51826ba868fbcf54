package engineio

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Request describes the request that opened a session (Session.Request).
type Request struct {
	// Header holds the handshake's headers (Host is in Host).
	Header http.Header
	// Host is the Host the client asked for.
	Host string
	// URL is the handshake's URL, path and query.
	URL *url.URL
	// RemoteAddr is the client's address, as net/http reports it.
	RemoteAddr string
	// Secure is whether the handshake came over TLS.
	Secure bool
	// Time is when the session was opened.
	Time time.Time
}

// handshakeInfo is what a session keeps of the request that opened it, in
// the compact form an idle connection can afford (docs/ARCHITECTURE.md,
// "Per-connection budget"): one string holding the client's address, the
// Host, the request URI and the headers as "Name: value\r\n" lines, which
// Request parses on demand. An http.Header map and a url.URL kept for every
// session cost about three times the bytes the client sent.
type handshakeInfo struct {
	raw     string // addr + host + uri + header lines
	addrEnd uint32 // raw[:addrEnd] is the address
	hostEnd uint32 // raw[addrEnd:hostEnd] is the Host
	uriEnd  uint32 // raw[hostEnd:uriEnd] is the request URI; the headers follow
	secure  bool
	time    int64 // when the session was opened, Unix nanoseconds
}

// newHandshakeInfo keeps what Request needs of r. Header names are written
// in sorted order (a map has none), each value of a name in its order.
func newHandshakeInfo(r *http.Request, now time.Time) handshakeInfo {
	uri := ""
	if r.URL != nil {
		uri = r.URL.RequestURI()
	}
	n := len(r.RemoteAddr) + len(r.Host) + len(uri)
	names := make([]string, 0, len(r.Header))
	for k, vs := range r.Header {
		names = append(names, k)
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	slices.Sort(names)
	var b strings.Builder
	b.Grow(n)
	b.WriteString(r.RemoteAddr)
	b.WriteString(r.Host)
	b.WriteString(uri)
	for _, k := range names {
		for _, v := range r.Header[k] {
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	addrEnd := len(r.RemoteAddr)
	hostEnd := addrEnd + len(r.Host)
	return handshakeInfo{
		raw:     b.String(),
		addrEnd: uint32(addrEnd),
		hostEnd: uint32(hostEnd),
		uriEnd:  uint32(hostEnd + len(uri)),
		secure:  r.TLS != nil,
		time:    now.UnixNano(),
	}
}

func (h *handshakeInfo) remoteAddr() string { return h.raw[:h.addrEnd] }

// header returns the handshake's headers, a new map whose strings share
// the kept one.
func (h *handshakeInfo) header() http.Header {
	lines := h.raw[h.uriEnd:]
	hdr := make(http.Header, strings.Count(lines, "\r\n"))
	for len(lines) > 0 {
		line, rest, _ := strings.Cut(lines, "\r\n")
		lines = rest
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue // not written by newHandshakeInfo
		}
		hdr[k] = append(hdr[k], v)
	}
	return hdr
}

// request builds the Request the session was opened with.
func (h *handshakeInfo) request() *Request {
	r := &Request{
		Header:     h.header(),
		Host:       h.raw[h.addrEnd:h.hostEnd],
		RemoteAddr: h.remoteAddr(),
		Secure:     h.secure,
		Time:       time.Unix(0, h.time),
	}
	if u, err := url.ParseRequestURI(h.raw[h.hostEnd:h.uriEnd]); err == nil {
		r.URL = u
	} else {
		r.URL = &url.URL{}
	}
	return r
}
