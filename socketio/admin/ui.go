package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/chatio/socketio-chat/internal/httpasset"
)

// ErrUIMissing says the Admin UI's files are not installed.
var ErrUIMissing = errors.New("admin UI files not found")

// UIHandler serves the Admin UI's files (the npm package
// @socket.io/admin-ui's ui/dist directory, e.g.
// node_modules/@socket.io/admin-ui/ui/dist after `npm ci`) under prefix,
// such as "/admin/": they are read into memory once, served with an ETag,
// gzip-compressed for clients that accept it, and prefix without its
// trailing slash redirects to prefix (the UI's files are relative to it).
// index.html is revalidated on every load; the other files have
// content-hashed names and are cached for a year.
//
// The UI asks the operator for the server's URL (e.g.
// http://localhost:9000) on its first load, then remembers it.
func UIHandler(dir, prefix string) (http.Handler, error) {
	if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("admin UI: prefix %q must start and end with /", prefix)
	}
	if _, err := os.Stat(filepath.Join(dir, "index.html")); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: run `npm ci` in the repository root", ErrUIMissing, dir)
	}
	u := &ui{prefix: prefix, files: map[string]*httpasset.File{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := filepath.ToSlash(rel)
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = http.DetectContentType(b)
		}
		cache := "public, max-age=31536000, immutable"
		if name == "index.html" {
			cache = "no-cache"
		}
		u.files[name] = &httpasset.File{Body: b, ContentType: ctype, ETag: `"` + hex.EncodeToString(sum[:8]) + `"`, CacheControl: cache}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("admin UI: read %s: %w", dir, err)
	}
	return u, nil
}

type ui struct {
	prefix string
	files  map[string]*httpasset.File
}

func (u *ui) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == strings.TrimSuffix(u.prefix, "/") {
		http.Redirect(w, r, u.prefix, http.StatusMovedPermanently)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, u.prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "" {
		name = "index.html"
	}
	f := u.files[name]
	if f == nil {
		http.NotFound(w, r)
		return
	}
	f.ServeHTTP(w, r)
}
