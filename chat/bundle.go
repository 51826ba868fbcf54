package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/chatio/socketio-chat/internal/httpasset"
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
	files   map[string]*httpasset.File
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
	b := &clientBundle{version: pkg.Version, etag: `"` + pkg.Version + `"`, files: make(map[string]*httpasset.File, len(clientFiles))}
	for _, name := range clientFiles {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s is missing: run `npm ci` in the repository root", errBundleMissing, filepath.Join(dir, name))
		} else if err != nil {
			return nil, fmt.Errorf("read client bundle: %w", err)
		}
		f := &httpasset.File{Body: raw, ContentType: "application/javascript; charset=utf-8", ETag: b.etag, CacheControl: "public, max-age=0"}
		if strings.HasSuffix(name, ".map") {
			f.ContentType = "application/json; charset=utf-8"
		}
		b.files[name] = f
	}
	return b, nil
}

// lookup returns the file a request path names, if it is one of the bundle's.
func (b *clientBundle) lookup(urlPath, mount string) (*httpasset.File, bool) {
	rest, ok := strings.CutPrefix(urlPath, mount)
	if !ok || strings.Contains(rest, "/") {
		return nil, false
	}
	f, ok := b.files[path.Base(rest)]
	return f, ok && rest == path.Base(rest)
}
