package chat

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// FuzzHostPolicy: the Host header is the client's; whatever it is, the
// check does not panic, ignores ASCII case, and allows only IP literals,
// localhost names and the names it was given.
func FuzzHostPolicy(f *testing.F) {
	for _, seed := range []string{"", "localhost", "localhost:9000", "[::1]:9000", "[fe80::1%eth0]", "127.0.0.1",
		"evil.example", "chat.example.com.", "a.chat.example.com:443", "[", "]:", "::1", "host:port:extra", "xn--bcher-kva.example"} {
		f.Add(seed)
	}
	c := DefaultConfig()
	c.Addr = "127.0.0.1:9000"
	c.AllowedHosts = []string{"chat.example.com", ".corp.example"}
	p := newHostPolicy(c)
	f.Fuzz(func(t *testing.T, host string) {
		ok := p.allows(host)
		upper := []byte(host)
		for i, b := range upper {
			if 'a' <= b && b <= 'z' {
				upper[i] = b - 'a' + 'A'
			}
		}
		if p.allows(string(upper)) != ok {
			t.Errorf("allows(%q) = %v but allows(%q) = %v", host, ok, upper, !ok)
		}
		if !ok || host == "" {
			return
		}
		name := strings.ToLower(host)
		if h, _, err := net.SplitHostPort(name); err == nil {
			name = h
		}
		name = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"), ".")
		if _, err := netip.ParseAddr(name); err == nil {
			return
		}
		for n := range p.names {
			if name == n {
				return
			}
		}
		if name == "localhost" || strings.HasSuffix(name, ".localhost") || name == "corp.example" || strings.HasSuffix(name, ".corp.example") {
			return
		}
		t.Errorf("allows(%q): %q is none of the names allowed", host, name)
	})
}
