package socketio

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatio/socketio-chat/engineio"
)

const testClientDir = "../node_modules/socket.io-client/dist"

// TestServeClientOption: with ServeClient the server serves the browser
// bundle under its path as Node's serveClient does (ETag of the client's
// version); a missing bundle fails NewServer with ErrClientMissing.
func TestServeClientOption(t *testing.T) {
	if _, err := os.Stat(testClientDir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("socket.io-client is not installed (npm ci): %v", err)
		}
		t.Skipf("socket.io-client is not installed (npm ci): %v", err)
	}
	s := startIO(t, Options{ServeClient: true, ClientDir: testClientDir, Path: "/"}, nil)
	resp, err := http.Get(s.ts.URL + "/socket.io.min.js")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/javascript") ||
		!strings.HasPrefix(resp.Header.Get("ETag"), `"4.`) || !strings.Contains(string(body), "Socket.IO") {
		t.Errorf("bundle: %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = http.Get(s.ts.URL + "/sub/socket.io.min.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("a bundle file served outside the server's path")
	}
	if _, err := NewServer(Options{ServeClient: true, ClientDir: t.TempDir(), Logger: testLogger(t)}); !errors.Is(err, ErrClientMissing) {
		t.Errorf("NewServer with no bundle: %v, want ErrClientMissing", err)
	}
}

// TestCORSOption: the same origin and listed origins get in (the latter
// with CORS headers, preflights answered); another origin is refused with
// 403 and Engine.IO's code 4, and told to OnRefused.
func TestCORSOption(t *testing.T) {
	var refused, told atomic.Int32
	s := startIO(t, Options{Engine: engineio.Options{OnConnectionError: func(e *engineio.ConnectionError) {
		if e.Code == engineio.CodeForbidden {
			told.Add(1)
		}
	}}, CORS: &CORSOptions{
		Origins:   []string{"https://app.example.com"},
		OnRefused: func(*http.Request) { refused.Add(1) },
	}}, nil)
	get := func(method, origin string) *http.Response {
		req, _ := http.NewRequest(method, s.ts.URL+"/?EIO=4&transport=polling", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get("GET", "https://app.example.com"); r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		r.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("listed origin: %d %v", r.StatusCode, r.Header)
	}
	if r := get("OPTIONS", "https://app.example.com"); r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Methods") == "" {
		t.Errorf("preflight: %d %v", r.StatusCode, r.Header)
	}
	if r := get("GET", s.ts.URL); r.StatusCode != 200 {
		t.Errorf("same origin: %d", r.StatusCode)
	}
	if r := get("GET", ""); r.StatusCode != 200 {
		t.Errorf("no origin: %d", r.StatusCode)
	}
	if r := get("GET", "https://evil.example.com"); r.StatusCode != 403 || refused.Load() != 1 || told.Load() != 1 {
		t.Errorf("other origin: %d, %d refusals told, %d connection errors", r.StatusCode, refused.Load(), told.Load())
	}
}
