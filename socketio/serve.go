package socketio

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/internal/httpasset"
)

// CORSOptions is the cross-origin policy of a Server (Options.CORS): which
// browser pages may open sessions, over polling and WebSocket alike.
//
// A request without an Origin header (Node, Go, Python clients) and a
// request from the server's own origin (the Origin's host and port are the
// request's Host) are always allowed. Another origin is allowed when it is
// in Origins ("*" allows every origin): its answers carry the CORS headers
// a browser needs (the origin reflected, with credentials, as Node's cors
// option {origin: true, credentials: true}), and its preflights are
// answered. Any other origin is refused with 403 and Engine.IO's code 4
// ("Origin not allowed"), WebSocket included, which browsers do not
// protect with CORS; the refusal is told to OnRefused and to the engine's
// OnConnectionError.
type CORSOptions struct {
	// Origins are the allowed origins besides the server's own, such as
	// "https://app.example.com"; "*" allows every origin.
	Origins []string
	// OnRefused, when set, is told of each refused request (after the
	// answer was written, on the request's goroutine), for metrics.
	OnRefused func(r *http.Request)
}

// allows reports whether the policy lets r in.
func (p *CORSOptions) allows(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, a := range p.Origins {
		if a == "*" || strings.EqualFold(a, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	// Same origin: the page's host and port are the ones this request was
	// sent to. The request's own scheme is not used: behind a proxy that
	// terminates TLS it reaches us over plain HTTP, with the Host the browser
	// used; and no other site can serve pages from our host and port.
	return strings.EqualFold(hostWithPort(u.Host, u.Scheme), hostWithPort(r.Host, u.Scheme))
}

// hostWithPort adds the scheme's default port to a host that has none.
func hostWithPort(host, scheme string) string {
	if strings.LastIndex(host, ":") > strings.LastIndex(host, "]") {
		return host
	}
	switch scheme {
	case "https", "wss":
		return host + ":443"
	default:
		return host + ":80"
	}
}

// allowCORS adds the CORS headers of an allowed cross-origin request and
// answers a preflight. It reports whether it answered.
func allowCORS(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
	if r.Method != http.MethodOptions {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// ClientFiles are the files of the official browser client that the
// server serves under its path with Options.ServeClient, as Node's
// socket.io does with serveClient: /socket.io/socket.io.min.js and so on.
var ClientFiles = []string{
	"socket.io.js", "socket.io.js.map",
	"socket.io.min.js", "socket.io.min.js.map",
	"socket.io.esm.min.js", "socket.io.esm.min.js.map",
	"socket.io.msgpack.min.js", "socket.io.msgpack.min.js.map",
}

// DefaultClientDir is where npm installs the browser bundle of
// socket.io-client, relative to a project's root.
const DefaultClientDir = "node_modules/socket.io-client/dist"

// ErrClientMissing is NewServer's error when Options.ServeClient is on and
// the socket.io-client bundle is not in Options.ClientDir.
var ErrClientMissing = errors.New("socket.io-client browser bundle not found")

// clientBundle is the browser bundle, read once by NewServer and immutable
// afterwards, so any goroutine serves from it.
type clientBundle struct {
	files map[string]*httpasset.File
}

// loadClientBundle reads the bundle from dir (…/socket.io-client/dist) and
// the package version, its ETag, from the package.json one level up.
func loadClientBundle(dir string) (*clientBundle, error) {
	meta, err := os.ReadFile(filepath.Join(dir, "..", "package.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: run `npm ci` (or `npm install socket.io-client`)", ErrClientMissing, dir)
	} else if err != nil {
		return nil, fmt.Errorf("socketio: read socket.io-client package.json: %w", err)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(meta, &pkg); err != nil || pkg.Version == "" {
		return nil, fmt.Errorf("socketio: socket.io-client package.json in %s has no version", filepath.Dir(dir))
	}
	etag := `"` + pkg.Version + `"`
	b := &clientBundle{files: make(map[string]*httpasset.File, len(ClientFiles))}
	for _, name := range ClientFiles {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s is missing: run `npm ci` (or `npm install socket.io-client`)", ErrClientMissing, filepath.Join(dir, name))
		} else if err != nil {
			return nil, fmt.Errorf("socketio: read client bundle: %w", err)
		}
		f := &httpasset.File{Body: raw, ContentType: "application/javascript; charset=utf-8", ETag: etag, CacheControl: "public, max-age=0"}
		if strings.HasSuffix(name, ".map") {
			f.ContentType = "application/json; charset=utf-8"
		}
		b.files[name] = f
	}
	return b, nil
}

// lookup returns the bundle's file urlPath names: mount followed by the
// file's name.
func (b *clientBundle) lookup(urlPath, mount string) (*httpasset.File, bool) {
	if b == nil {
		return nil, false
	}
	rest, ok := strings.CutPrefix(urlPath, mount)
	if !ok {
		return nil, false
	}
	f, ok := b.files[rest]
	return f, ok
}

// ServeHTTP serves the Engine.IO requests of the server's clients, and
// with Options.ServeClient the browser bundle; Options.CORS is applied to
// the Engine.IO requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f, ok := s.bundle.lookup(r.URL.Path, s.opts.Path); ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		f.ServeHTTP(w, r) // as Node's serveClient: ETag of the client version, max-age=0, gzip
		return
	}
	if p := s.opts.CORS; p != nil {
		if !p.allows(r) {
			s.log.Warn("refused cross-origin request", "sid", r.URL.Query().Get("sid"), "transport", r.URL.Query().Get("transport"),
				"remote", r.RemoteAddr, "reason", "origin not allowed", "origin", r.Header.Get("Origin"), "method", r.Method, "status", http.StatusForbidden)
			engineio.WriteError(w, http.StatusForbidden, engineio.CodeForbidden, "Origin not allowed")
			if p.OnRefused != nil {
				p.OnRefused(r)
			}
			if fn := s.opts.Engine.OnConnectionError; fn != nil {
				fn(&engineio.ConnectionError{Request: r, Code: engineio.CodeForbidden, Message: "Forbidden",
					Reason: "origin not allowed", Status: http.StatusForbidden})
			}
			return
		}
		if allowCORS(w, r) {
			return // a preflight, answered
		}
	}
	s.eio.ServeHTTP(w, r)
}
