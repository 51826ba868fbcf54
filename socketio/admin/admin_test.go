package admin

import (
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/socketio"
	"golang.org/x/crypto/bcrypt"
)

func TestInstrumentNeedsAuthOrNoAuth(t *testing.T) {
	srv, err := socketio.NewServer(socketio.Options{Engine: engineio.Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := Instrument(srv, Options{}); err == nil || !strings.Contains(err.Error(), "NoAuth") {
		t.Errorf("no auth: %v, want an error naming NoAuth", err)
	}
	if _, err := Instrument(srv, Options{Auth: &BasicAuth{Username: "admin", PasswordHash: "plain text"}}); err == nil ||
		!strings.Contains(err.Error(), "bcrypt") {
		t.Errorf("a password instead of a hash: %v, want an error naming bcrypt", err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	a, err := Instrument(srv, Options{Auth: &BasicAuth{Username: "admin", PasswordHash: string(hash)}, ServerID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	a.Close() // harmless
	if a.ServerID() != "n1" {
		t.Errorf("ServerID %q", a.ServerID())
	}
}

func TestTimestampIsJavaScriptsISOString(t *testing.T) {
	at := time.Date(2026, 11, 29, 18, 59, 51, 0, time.FixedZone("CET", 3600))
	if got, want := timestamp(at), "2026-11-29T17:59:51.000Z"; got != want {
		t.Errorf("timestamp = %q, want %q", got, want)
	}
}

func TestSessionsExpireAndAreBounded(t *testing.T) {
	st := sessionStore{max: 2, ttl: time.Hour, ids: map[string]time.Time{}}
	a := st.add()
	if len(a) != 16 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("session id %q: want 16 hex characters", a)
	}
	if !st.valid(a) || st.valid("0123456789abcdef") {
		t.Error("valid() is wrong")
	}
	b, c := st.add(), st.add() // a, the oldest, goes
	if st.valid(a) || !st.valid(b) || !st.valid(c) {
		t.Error("the store keeps more than max sessions, or not the newest")
	}
	st.ids[b] = time.Now().Add(-time.Second)
	if st.valid(b) {
		t.Error("an expired session is valid")
	}
}

func TestUIHandler(t *testing.T) {
	dir := t.TempDir()
	index := "<html><title>Socket.IO Admin UI</title>" + strings.Repeat(" ", 2000) + "</html>"
	must(t, os.MkdirAll(filepath.Join(dir, "js"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte(index), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "js", "app.0d7d.js"), []byte("console.log(1)"), 0o644))
	h, err := UIHandler(dir, "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, hdr ...string) *http.Response {
		req := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Result()
	}
	if r := get("/admin"); r.StatusCode != 301 || r.Header.Get("Location") != "/admin/" {
		t.Errorf("/admin: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	r := get("/admin/", "Accept-Encoding", "gzip")
	zr, err := gzip.NewReader(r.Body)
	if err != nil || r.Header.Get("Cache-Control") != "no-cache" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/admin/: %v, %v", r.Header, err)
	}
	if body, _ := io.ReadAll(zr); string(body) != index {
		t.Error("gzipped index.html differs")
	}
	r = get("/admin/js/app.0d7d.js")
	if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Cache-Control"), "immutable") ||
		!strings.Contains(r.Header.Get("Content-Type"), "javascript") {
		t.Errorf("app.js: %d %v", r.StatusCode, r.Header)
	}
	if r := get("/admin/js/app.0d7d.js", "If-None-Match", r.Header.Get("ETag")); r.StatusCode != 304 {
		t.Errorf("If-None-Match: %d, want 304", r.StatusCode)
	}
	for _, p := range []string{"/admin/../go.mod", "/admin/missing.js", "/elsewhere"} {
		if r := get(p); r.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, r.StatusCode)
		}
	}
	if _, err := UIHandler(t.TempDir(), "/admin/"); err == nil || !strings.Contains(err.Error(), "npm ci") {
		t.Errorf("missing files: %v, want an error naming npm ci", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
