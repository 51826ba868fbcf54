package chat

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// clientFiles are the files of the official browser client that Node's
// socket.io serves under its path when serveClient is on (the default).
var clientFiles = []string{
	"socket.io.js", "socket.io.js.map",
	"socket.io.min.js", "socket.io.min.js.map",
	"socket.io.esm.min.js", "socket.io.esm.min.js.map",
	"socket.io.msgpack.min.js", "socket.io.msgpack.min.js.map",
}

// clientBundle serves the socket.io-client browser bundle from memory, with
// the headers Node's serveClient sends. It is read once at start-up and is
// immutable afterwards, so any goroutine may serve from it.
type clientBundle struct {
	version string // socket.io-client version, the ETag's value
	etag    string // `"4.8.4"`
	files   map[string]*bundleFile
}

type bundleFile struct {
	contentType string
	raw         []byte

	gzipOnce sync.Once
	gzipped  []byte // compressed on first use; nil when gzip does not make it smaller
}

// gzipBody returns the gzipped file, compressing it on the first call (not at
// start-up: it costs a tenth of a second of CPU for the whole bundle).
func (f *bundleFile) gzipBody() []byte {
	f.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(f.raw)
		_ = zw.Close()
		if buf.Len() < len(f.raw) {
			f.gzipped = buf.Bytes()
		}
	})
	return f.gzipped
}

// errBundleMissing says the bundle is not installed; run prints the set-up command.
var errBundleMissing = errors.New("socket.io-client browser bundle not found")

// loadClientBundle reads the bundle from dir (node_modules/socket.io-client/dist)
// and the package version from the package.json one level up.
func loadClientBundle(dir string) (*clientBundle, error) {
	meta, err := os.ReadFile(filepath.Join(dir, "..", "package.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: run `npm ci` in the repository root", errBundleMissing, dir)
	} else if err != nil {
		return nil, fmt.Errorf("read socket.io-client package.json: %w", err)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(meta, &pkg); err != nil || pkg.Version == "" {
		return nil, fmt.Errorf("socket.io-client package.json in %s has no version", filepath.Dir(dir))
	}
	b := &clientBundle{version: pkg.Version, etag: `"` + pkg.Version + `"`, files: make(map[string]*bundleFile, len(clientFiles))}
	for _, name := range clientFiles {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s is missing: run `npm ci` in the repository root", errBundleMissing, filepath.Join(dir, name))
		} else if err != nil {
			return nil, fmt.Errorf("read client bundle: %w", err)
		}
		f := &bundleFile{raw: raw, contentType: "application/javascript; charset=utf-8"}
		if strings.HasSuffix(name, ".map") {
			f.contentType = "application/json; charset=utf-8"
		}
		b.files[name] = f
	}
	return b, nil
}

// lookup returns the file a request path names, if it is one of the bundle's.
func (b *clientBundle) lookup(urlPath, mount string) (*bundleFile, bool) {
	rest, ok := strings.CutPrefix(urlPath, mount)
	if !ok || strings.Contains(rest, "/") {
		return nil, false
	}
	f, ok := b.files[path.Base(rest)]
	return f, ok && rest == path.Base(rest)
}

// serve writes f as Node's serveClient does: ETag of the client version, 304
// on a matching If-None-Match, Cache-Control public max-age=0, and gzip when
// the client accepts it.
func (b *clientBundle) serve(w http.ResponseWriter, r *http.Request, f *bundleFile) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == b.etag || inm == "W/"+b.etag) {
		h.Set("ETag", b.etag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Cache-Control", "public, max-age=0")
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", b.etag)
	h.Set("Vary", "Accept-Encoding")
	body := f.raw
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		if gz := f.gzipBody(); gz != nil {
			h.Set("Content-Encoding", "gzip")
			body = gz
		}
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip (q > 0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.TrimSpace(name)
		if !strings.EqualFold(name, "gzip") && name != "*" {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			q, _ = strconv.ParseFloat(v, 64) // unparsable counts as 0
		}
		return q > 0
	}
	return false
}
