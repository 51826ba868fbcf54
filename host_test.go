package main

// The Host check against DNS rebinding (chat/origin.go): a page on a name
// the attacker controls, pointed at this server afterwards, is same-origin
// in the browser's eyes, but its requests carry that name as Host.

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
)

// hostGet sends a GET with this Host header (and Origin, if any) and
// returns the status and the body's first 200 bytes.
func hostGet(t *testing.T, url, host, origin string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = host
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return resp.StatusCode, string(body)
}

func TestHostileDNSRebinding(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) { c.CORSOrigins = []string{"https://app.example:8443"} })
	port := ts.Addr[strings.LastIndexByte(ts.Addr, ':')+1:]
	handshake := ts.URL + "/socket.io/?EIO=4&transport=polling"

	// The rebinding: the page's own origin, on the attacker's name.
	for _, origin := range []string{"http://evil.example:" + port, ""} {
		status, body := hostGet(t, handshake, "evil.example:"+port, origin)
		if status != http.StatusForbidden {
			t.Errorf("polling, Host evil.example, Origin %q: %d %q, want 403", origin, status, body)
		} else {
			confErrorBody(t, body, 4)
		}
	}
	h := http.Header{"Host": {"evil.example:" + port}, "Origin": {"http://evil.example:" + port}}
	if w, resp, err := confDial(t, confWSURL(ts.URL, "/socket.io/", "EIO=4&transport=websocket"), h); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		if w != nil {
			_ = w.c.Close()
		}
		t.Errorf("WebSocket, Host and Origin evil.example: %v, want 403", err)
	}

	for _, tc := range []struct {
		host string
		want int
	}{
		{ts.Addr, 200},
		{"127.0.0.1", 200},
		{"127.0.0.2:" + port, 200},
		{"[::1]:" + port, 200},
		{"[fe80::1]", 200},
		{"10.0.0.5:" + port, 200}, // any literal address: a browser sends one only when the URL has it
		{"localhost:" + port, 200},
		{"LOCALHOST.:" + port, 200},
		{"chat.localhost:" + port, 200},
		{"app.example:" + port, 200}, // the host of a -cors-origin origin
		{"", 200},                    // HTTP/1.0, not a browser
		{"evil.example", 403},
		{"localhost.evil.example:" + port, 403},
		{"127.0.0.1.evil.example", 403},
		{"example", 403},
	} {
		status, body := hostGet(t, handshake, tc.host, "")
		if status != tc.want {
			t.Errorf("polling handshake with Host %q: %d %q, want %d", tc.host, status, body, tc.want)
		}
	}

	// Static files are refused too; health and readiness answer whatever the Host.
	for path, want := range map[string]int{"/": 403, "/socket.io/socket.io.js": 403, "/healthz": 200, "/readyz": 200} {
		if status, body := hostGet(t, ts.URL+path, "evil.example", ""); status != want {
			t.Errorf("GET %s with Host evil.example: %d %q, want %d", path, status, body, want)
		}
	}
	if log := ts.Log.String(); !strings.Contains(log, `reason="host not allowed"`) || !strings.Contains(log, "-allowed-hosts") {
		t.Errorf("no log line for the refused host, naming -allowed-hosts:\n%s", log)
	}
}

// TestAllowedHosts: -allowed-hosts adds names (.example.com: the domain
// and its subdomains), * allows every Host.
func TestAllowedHosts(t *testing.T) {
	for _, tc := range []struct {
		allowed []string
		hosts   map[string]int
	}{
		{[]string{"chat.example.com", ".corp.example"}, map[string]int{
			"chat.example.com":      200,
			"CHAT.example.com:443":  200,
			"corp.example":          200,
			"eu.chat.corp.example":  200,
			"example.com":           403,
			"evil.chat.example.com": 403,
			"chat.example.com.evil": 403,
			"xcorp.example":         403,
			"localhost":             200,
			"192.168.1.10:9000":     200,
		}},
		{[]string{"*"}, map[string]int{"evil.example": 200, "localhost": 200}},
	} {
		ts := startTestServer(t, func(c *chat.Config) { c.AllowedHosts = tc.allowed })
		for host, want := range tc.hosts {
			if status, body := hostGet(t, ts.URL+"/socket.io/?EIO=4&transport=polling", host, "http://"+host); status != want {
				t.Errorf("-allowed-hosts %q, Host %q: %d %q, want %d", tc.allowed, host, status, body, want)
			}
		}
	}
}
