package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"github.com/chatio/socketio-chat/chat"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// bundleFileNames are the eight files Node's serveClient serves.
var bundleFileNames = []string{
	"socket.io.js", "socket.io.js.map",
	"socket.io.min.js", "socket.io.min.js.map",
	"socket.io.esm.min.js", "socket.io.esm.min.js.map",
	"socket.io.msgpack.min.js", "socket.io.msgpack.min.js.map",
}

// bundleVersion is the installed socket.io-client version, the bundle's ETag.
func bundleVersion(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("node_modules", "socket.io-client", "package.json"))
	if err != nil {
		tb.Fatalf("socket.io-client is not installed (run `npm ci`): %v", err)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Version == "" {
		tb.Fatalf("socket.io-client package.json: no version (%v)", err)
	}
	return pkg.Version
}

// TestBundle checks the client bundle routes as Node's serveClient answers them.
func TestBundle(t *testing.T) {
	etag := `"` + bundleVersion(t) + `"`
	ts := startTestServer(t, nil)
	for _, name := range bundleFileNames {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("node_modules", "socket.io-client", "dist", name))
			if err != nil {
				t.Fatal(err)
			}
			wantType := "application/javascript; charset=utf-8"
			if strings.HasSuffix(name, ".map") {
				wantType = "application/json; charset=utf-8"
			}
			u := ts.URL + "/socket.io/" + name

			// Plain GET: the file as on disk, with Node's headers.
			resp, body := sioHTTP(t, http.MethodGet, u, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET = %s, want 200", resp.Status)
			}
			bundleCheckHeaders(t, "GET", resp, wantType, etag)
			if enc := resp.Header.Get("Content-Encoding"); enc != "" {
				t.Errorf("GET without Accept-Encoding: Content-Encoding %q", enc)
			}
			if !bytes.Equal(body, want) {
				t.Errorf("GET body (%d bytes) differs from the file (%d bytes)", len(body), len(want))
			}

			// gzip when accepted; the decompressed bytes are the file.
			resp, body = sioHTTP(t, http.MethodGet, u, nil, "Accept-Encoding", "gzip, deflate, br")
			bundleCheckHeaders(t, "GET gzip", resp, wantType, etag)
			if enc := resp.Header.Get("Content-Encoding"); enc != "gzip" {
				t.Errorf("GET with Accept-Encoding gzip: Content-Encoding %q, want gzip", enc)
			} else {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				plain, err := io.ReadAll(zr)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(plain, want) {
					t.Errorf("gunzipped body (%d bytes) differs from the file (%d bytes)", len(plain), len(want))
				}
				if len(body) >= len(want) {
					t.Errorf("gzipped body %d bytes is not smaller than %d", len(body), len(want))
				}
			}
			if v := resp.Header.Get("Vary"); !strings.Contains(v, "Accept-Encoding") {
				t.Errorf("Vary = %q, want Accept-Encoding", v)
			}
			if _, body = sioHTTP(t, http.MethodGet, u, nil, "Accept-Encoding", "gzip;q=0"); !bytes.Equal(body, want) {
				t.Error("Accept-Encoding gzip;q=0 did not get the plain file")
			}

			// HEAD: headers, length, no body.
			resp, body = sioHTTP(t, http.MethodHead, u, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HEAD = %s, want 200", resp.Status)
			}
			bundleCheckHeaders(t, "HEAD", resp, wantType, etag)
			if len(body) != 0 {
				t.Errorf("HEAD has a %d-byte body", len(body))
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(want)) {
				t.Errorf("HEAD Content-Length = %q, want %d", cl, len(want))
			}

			// Revalidation: 304 on a matching If-None-Match, strong or weak.
			for _, inm := range []string{etag, "W/" + etag} {
				resp, body = sioHTTP(t, http.MethodGet, u, nil, "If-None-Match", inm)
				if resp.StatusCode != http.StatusNotModified {
					t.Errorf("If-None-Match %s: %s, want 304", inm, resp.Status)
				}
				if len(body) != 0 {
					t.Errorf("If-None-Match %s: 304 with a %d-byte body", inm, len(body))
				}
				if got := resp.Header.Get("ETag"); got != etag {
					t.Errorf("If-None-Match %s: 304 ETag %q, want %q", inm, got, etag)
				}
			}
			resp, body = sioHTTP(t, http.MethodGet, u, nil, "If-None-Match", `"0.0.1"`)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
				t.Errorf("stale If-None-Match: %s with %d bytes, want 200 and the file", resp.Status, len(body))
			}
		})
	}

	// Only the eight bundle files are served from the Socket.IO path.
	for _, p := range []string{"/socket.io/socket.io.foo.js", "/socket.io/package.json", "/socket.io/sub/socket.io.js"} {
		resp, body := sioHTTP(t, http.MethodGet, ts.URL+p, nil)
		if resp.StatusCode == http.StatusOK && strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
			t.Errorf("GET %s = %s %q: served as a bundle file", p, resp.Status, body)
		}
	}
}

func bundleCheckHeaders(t *testing.T, what string, resp *http.Response, wantType, etag string) {
	t.Helper()
	if got := resp.Header.Get("Content-Type"); got != wantType {
		t.Errorf("%s Content-Type = %q, want %q", what, got, wantType)
	}
	if got := resp.Header.Get("ETag"); got != etag {
		t.Errorf("%s ETag = %q, want %q", what, got, etag)
	}
	if got := resp.Header.Get("Cache-Control"); got != "public, max-age=0" {
		t.Errorf("%s Cache-Control = %q, want \"public, max-age=0\"", what, got)
	}
}

// TestBundleMissing: without `npm ci` the server refuses to start and says
// which command installs the bundle.
func TestBundleMissing(t *testing.T) {
	// A package.json with a version but no dist files.
	partial := t.TempDir()
	if err := os.WriteFile(filepath.Join(partial, "package.json"), []byte(`{"version":"4.8.4"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(partial, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, dir string
		want      []string
	}{
		{"empty dir", t.TempDir(), []string{"npm ci"}},
		{"no package", filepath.Join(t.TempDir(), "dist"), []string{"npm ci"}},
		{"no dist files", filepath.Join(partial, "dist"), []string{"npm ci", "socket.io.js"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := chat.DefaultConfig()
			cfg.ClientDir = tc.dir
			s, err := chat.New(cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				s.Close()
				t.Fatalf("newChatServer with ClientDir %s succeeded, want an error", tc.dir)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
