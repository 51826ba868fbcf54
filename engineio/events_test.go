package engineio

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestConnectionErrorCodes: every refused request is told to
// OnConnectionError with Node's code and message (engine.io's
// Server.errors), and answered with them.
func TestConnectionErrorCodes(t *testing.T) {
	var mu sync.Mutex
	var got []*ConnectionError
	forbid := false
	s := startServer(t, Options{
		OnConnectionError: func(e *ConnectionError) {
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		},
		AllowRequest: func(r *http.Request) error {
			if forbid {
				return errForbidden
			}
			return nil
		},
	}, false)
	cases := []struct {
		method, query string
		code          int
		message       string
	}{
		{"GET", "EIO=4&transport=carrier-pigeon", CodeUnknownTransport, "Transport unknown"},
		{"GET", "EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA", CodeUnknownSID, "Session ID unknown"},
		{"PUT", "EIO=4&transport=polling", CodeBadHandshakeMethod, "Bad handshake method"},
		{"GET", "EIO=4&transport=websocket", CodeBadRequest, "Bad request"},
		{"GET", "EIO=2&transport=polling", CodeUnsupportedProtocol, "Unsupported protocol version"},
		{"GET", "EIO=4&transport=polling", CodeForbidden, "Forbidden"},
	}
	for i, c := range cases {
		forbid = c.code == CodeForbidden
		r := do(t, nil, c.method, s.url(c.query), "", nil)
		body := c.message
		if c.code == CodeForbidden {
			body = errForbidden.Error() // the answer says more, as Node's does
		}
		if e := parseError(t, r); e.Code != c.code || e.Message != body {
			t.Errorf("%s %s answered %+v", c.method, c.query, e)
		}
		mu.Lock()
		if len(got) != i+1 {
			t.Fatalf("%s %s: %d connection errors told, want %d", c.method, c.query, len(got), i+1)
		}
		e := got[i]
		mu.Unlock()
		if e.Code != c.code || e.Message != c.message || e.Request == nil || e.Status != r.status || e.Reason == "" {
			t.Errorf("%s %s: told %+v, want code %d %q", c.method, c.query, e, c.code, c.message)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

const errForbidden = errString("no entry")

// TestHeadersHooksAndCookie: InitialHeaders and the cookie go on the
// handshake's answer only, Headers on every answer, over polling and on
// the WebSocket's 101.
func TestHeadersHooksAndCookie(t *testing.T) {
	s := startServer(t, Options{
		Cookie:         &http.Cookie{Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode},
		InitialHeaders: func(h http.Header, r *http.Request) { h.Set("X-Initial", "1") },
		Headers:        func(h http.Header, r *http.Request) { h.Set("X-Every", r.URL.Query().Get("transport")) },
	}, false)
	r := do(t, nil, "GET", s.url("EIO=4&transport=polling"), "", nil)
	if r.header.Get("X-Initial") != "1" || r.header.Get("X-Every") != "polling" {
		t.Errorf("handshake headers %v", r.header)
	}
	sid := parseOpen(t, strings.Split(r.body, "\x1e")[0]).SID
	if c := r.header.Get("Set-Cookie"); c != "io="+sid+"; Path=/; HttpOnly; SameSite=Lax" {
		t.Errorf("Set-Cookie %q", c)
	}
	r = do(t, nil, "POST", s.url("EIO=4&transport=polling&sid="+sid), "6", nil)
	if r.header.Get("X-Initial") != "" || r.header.Get("Set-Cookie") != "" || r.header.Get("X-Every") != "polling" {
		t.Errorf("POST headers %v", r.header)
	}
	_, resp, err := wsDial(t, s.wsURL("EIO=4&transport=websocket"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Initial") != "1" || resp.Header.Get("X-Every") != "websocket" || !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "io=") {
		t.Errorf("101 headers %v", resp.Header)
	}
}

// TestTransportsOption: a transport left out of Options.Transports is
// refused as unknown, and not offered as an upgrade.
func TestTransportsOption(t *testing.T) {
	s := startServer(t, Options{Transports: []string{"polling"}}, false)
	r := do(t, nil, "GET", s.url("EIO=4&transport=polling"), "", nil)
	if h := parseOpen(t, strings.Split(r.body, "\x1e")[0]); len(h.Upgrades) != 0 {
		t.Errorf("upgrades %v offered with polling only", h.Upgrades)
	}
	_, resp, err := wsDial(t, s.wsURL("EIO=4&transport=websocket"))
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("WebSocket with polling only: %v, %v", resp, err)
	}
}
