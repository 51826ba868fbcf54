// Package httpasset serves files held in memory the way static file servers
// do: an ETag with 304 on a matching If-None-Match (strong or weak), a
// Cache-Control policy, and gzip for clients that accept it, compressed on
// first use. The chat's client bundle and the Admin UI are served with it.
package httpasset

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// File is one file's bytes and headers. Its exported fields are set once,
// before the first request; after that any goroutine may serve it.
type File struct {
	Body         []byte
	ContentType  string
	ETag         string // quoted, e.g. `"4.8.3"`
	CacheControl string // sent with 200 and 304 responses

	gzipOnce sync.Once
	gzipped  []byte // nil when gzip does not make it smaller
}

// gzipBody returns the gzipped file, compressing it on the first call rather
// than at start-up (a whole bundle costs a tenth of a second of CPU).
func (f *File) gzipBody() []byte {
	f.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(f.Body)
		_ = zw.Close()
		if buf.Len() < len(f.Body) {
			f.gzipped = buf.Bytes()
		}
	})
	return f.gzipped
}

// ServeHTTP answers GET and HEAD with the file (405 otherwise): 304 when
// If-None-Match matches the ETag, else 200 with the body, gzipped when the
// client accepts it and that makes it smaller.
func (f *File) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("ETag", f.ETag)
	if f.CacheControl != "" {
		h.Set("Cache-Control", f.CacheControl)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == f.ETag || inm == "W/"+f.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", f.ContentType)
	h.Set("Vary", "Accept-Encoding")
	body := f.Body
	if AcceptsGzip(r.Header) {
		if gz := f.gzipBody(); gz != nil {
			h.Set("Content-Encoding", "gzip")
			body = gz
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// AcceptsGzip reports whether the request's Accept-Encoding headers allow
// gzip: "gzip" or "*" with no q or q > 0 (an unparsable q counts as 0).
// It does not allocate.
func AcceptsGzip(h http.Header) bool {
	for _, v := range h["Accept-Encoding"] { // h.Values without canonicalizing a canonical name
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.TrimSpace(name)
			if !strings.EqualFold(name, "gzip") && name != "*" {
				continue
			}
			q := 1.0
			if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
				q, _ = strconv.ParseFloat(v, 64)
			}
			return q > 0
		}
	}
	return false
}
