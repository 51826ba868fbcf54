package chat

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/metrics"
)

// hostPolicy refuses requests whose Host header is not a name the server
// answers to, as development servers do against DNS rebinding: a page on
// evil.example whose name the attacker points at this server afterwards
// is same-origin with it in the browser's eyes (its Origin matches its
// Host, so the origin policy lets it in), but its requests carry
// Host: evil.example.
//
// Always allowed: any IP address literal (v4 or v6; a browser sends one
// only when the page's URL has it), localhost and *.localhost (browsers
// resolve them to loopback themselves), this machine's host name, the host
// of -addr, the hosts of the -cors-origin origins (pages this server
// trusts already), and a request without Host (HTTP/1.0, not a browser).
// -allowed-hosts adds names: chat.example.com, or .example.com for the
// domain and every subdomain; "*" allows every Host. Behind a reverse
// proxy that passes the browser's Host on, list the public name.
type hostPolicy struct {
	any      bool
	names    map[string]bool // lower case, without the trailing dot
	suffixes []string        // ".example.com"
}

// newHostPolicy builds the policy from -allowed-hosts and the names the
// server answers to anyway.
func newHostPolicy(c Config) hostPolicy {
	p := hostPolicy{names: map[string]bool{}}
	add := func(name string) {
		name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
		switch {
		case name == "*":
			p.any = true
		case strings.HasPrefix(name, "."):
			p.suffixes = append(p.suffixes, name)
		case name != "":
			p.names[name] = true
		}
	}
	for _, h := range c.AllowedHosts {
		add(h)
	}
	if h, err := os.Hostname(); err == nil {
		add(h)
	}
	if h, _, err := net.SplitHostPort(c.Addr); err == nil {
		add(h)
	}
	for _, o := range c.CORSOrigins {
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			add(u.Hostname())
		}
	}
	return p
}

// allows reports whether a request with this Host header may be served.
func (p hostPolicy) allows(host string) bool {
	if host == "" || p.any {
		return true
	}
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		name = host[1 : len(host)-1]
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return true
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") || p.names[name] {
		return true
	}
	for _, s := range p.suffixes {
		if name == s[1:] || strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// hostGuard serves next the requests whose Host the policy allows, and
// /healthz and /readyz whatever their Host (probes often use an address
// or a name of their own); it answers the others 403, counted and logged
// (at most once a second).
type hostGuard struct {
	policy  hostPolicy
	next    http.Handler
	sioPath string
	log     *slog.Logger
	metrics *metrics.Metrics
	logged  atomic.Int64 // unix second of the last refusal logged
}

func (g *hostGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.policy.allows(r.Host) || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
		g.next.ServeHTTP(w, r)
		return
	}
	g.metrics.Refused(http.StatusForbidden, "host_not_allowed")
	if now := time.Now().Unix(); g.logged.Swap(now) != now {
		g.log.Warn("refused request for a host name this server does not answer to", "sid", r.URL.Query().Get("sid"),
			"transport", r.URL.Query().Get("transport"), "remote", r.RemoteAddr, "reason", "host not allowed",
			"host", r.Host, "path", r.URL.Path, "status", http.StatusForbidden, "hint", "list it in -allowed-hosts")
	}
	if strings.HasPrefix(r.URL.Path, g.sioPath) {
		engineio.WriteError(w, http.StatusForbidden, 4, "Host not allowed")
		return
	}
	http.Error(w, "Host not allowed", http.StatusForbidden)
}
