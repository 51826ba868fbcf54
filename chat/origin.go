package chat

import (
	"net/http"
	"net/url"
	"strings"
)

// originPolicy decides which browser origins may open Socket.IO sessions,
// over polling and WebSocket alike. The server's own origin (same host and
// port as the request) is always allowed; allowed adds origins, and "*"
// allows every origin. Requests without an Origin header come from
// non-browser clients (Node, Go, Python) and are allowed.
type originPolicy struct {
	allowed []string
}

func (p originPolicy) allows(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, a := range p.allowed {
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
	// used (https://chat.example.com has Host chat.example.com, port 443 by
	// the Origin's scheme); and no other site can serve pages from our host
	// and port.
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

// allowCORS adds the CORS headers a browser needs to read the answers of a
// cross-origin page that the origin policy allowed (the origin reflected,
// with credentials, as Node's cors options {origin: true, credentials:
// true}), and answers a preflight. It reports whether it answered.
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
