package engineio

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestHandshakeInfo: what a session keeps of its handshake, in one string,
// gives back the request's headers, host, URI, address, TLS and time.
func TestHandshakeInfo(t *testing.T) {
	now := time.Date(2026, 12, 7, 4, 30, 0, 123456789, time.UTC)
	tests := []struct {
		name   string
		target string
		header http.Header
		addr   string
		tls    bool
	}{
		{"none", "/socket.io/?EIO=4&transport=websocket", http.Header{}, "192.0.2.1:1234", false},
		{"browser", "/socket.io/?EIO=4&transport=polling&t=abc&token=a%20b", http.Header{
			"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0"},
			"Accept-Language": {"en-US,en;q=0.5"},
			"Cookie":          {"a=1; b=2", "c=3"},
			"Origin":          {"https://example.com"},
			"X-Empty":         {""},
			"X-Colon":         {"a: b: c"},
		}, "[2001:db8::1]:443", true},
		{"repeated", "/x?q=1&q=2", http.Header{"X-Forwarded-For": {"10.0.0.1", "10.0.0.2", "10.0.0.3"}}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://chat.example"+tt.target, nil)
			r.Header = tt.header
			r.RemoteAddr = tt.addr
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			h := newHandshakeInfo(r, now)
			got := h.request()
			if !reflect.DeepEqual(got.Header, tt.header) {
				t.Errorf("Header = %q, want %q", got.Header, tt.header)
			}
			if got.Host != "chat.example" || got.RemoteAddr != tt.addr || got.Secure != tt.tls || !got.Time.Equal(now) {
				t.Errorf("Host %q RemoteAddr %q Secure %v Time %v, want chat.example %q %v %v", got.Host, got.RemoteAddr, got.Secure, got.Time, tt.addr, tt.tls, now)
			}
			if got.URL.RequestURI() != r.URL.RequestURI() || !reflect.DeepEqual(got.URL.Query(), r.URL.Query()) {
				t.Errorf("URL %q query %v, want %q %v", got.URL.RequestURI(), got.URL.Query(), r.URL.RequestURI(), r.URL.Query())
			}
			if h.remoteAddr() != tt.addr {
				t.Errorf("remoteAddr() = %q, want %q", h.remoteAddr(), tt.addr)
			}
			// Each call builds its own map: a caller that changes it does
			// not change the session's.
			got.Header.Set("X-Changed", "1")
			if h.request().Header.Get("X-Changed") != "" {
				t.Error("the header map is shared between calls")
			}
		})
	}
}

// FuzzHandshakeInfo: whatever headers net/http accepted (names of token
// characters, values without CR or LF), the compact form gives them back.
func FuzzHandshakeInfo(f *testing.F) {
	f.Add("X-Test", "yes", "X-Other", "a: b", "/socket.io/?EIO=4&t=1", "127.0.0.1:5")
	f.Add("Cookie", "", "Cookie", "x\r", "/", "")
	f.Add("A", "x\r\r", "B", "\r", "/?a=\r", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, uri, addr string) {
		hdr := http.Header{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if !validName(kv[0]) || !validValue(kv[1]) {
				return
			}
			hdr[http.CanonicalHeaderKey(kv[0])] = append(hdr[http.CanonicalHeaderKey(kv[0])], kv[1])
		}
		r, err := http.NewRequest("GET", "http://h"+uri, nil)
		if err != nil || r.URL.RequestURI() == "" || r.URL.Host != "h" {
			return
		}
		r.Header, r.RemoteAddr = hdr, addr
		h := newHandshakeInfo(r, time.Unix(0, 1))
		got := h.request()
		if !reflect.DeepEqual(got.Header, hdr) || got.RemoteAddr != addr || got.Host != r.Host {
			t.Fatalf("got %q %q %q, want %q %q %q", got.Header, got.RemoteAddr, got.Host, hdr, addr, r.Host)
		}
	})
}

// validName is a header name net/http accepts: token characters.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validValue is a header value as net/http keeps it: no LF (which ends
// a line; a CR may remain), no leading or trailing blanks (trimmed).
func validValue(s string) bool {
	return !strings.ContainsRune(s, '\n') && strings.Trim(s, " \t") == s
}

// TestSessionSize: the session fits the 224-byte allocation class (an
// idle connection's budget, docs/ARCHITECTURE.md "Per-connection
// budget"). A field that makes it grow past it costs 16 bytes or more per
// connection: move it into a struct allocated when needed, or make room.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 224 {
		t.Errorf("Session is %d bytes, over its 224-byte budget", n)
	}
}

// TestWSConnSize: a WebSocket connection fits the 176-byte allocation
// class (the same budget): what only a flush needs is in flushBuf, held
// while there is something to write.
func TestWSConnSize(t *testing.T) {
	if n := unsafe.Sizeof(wsConn{}); n > 176 {
		t.Errorf("wsConn is %d bytes, over its 176-byte budget", n)
	}
}
