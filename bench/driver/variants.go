package main

import (
	"fmt"
	"os"
	"strings"
)

// A server label names what runs: "go" (the working tree), "go@REV" (a git
// revision), "node" (the tutorial), and for the Go servers optional variants
// after "+": "go+recovery", "go+redis", "go+recovery+redis", "go@HEAD+gc400".
// A variant is a set of extra flags for our server; the built-in ones are
// the configurations the targets name, others come from -variant NAME=FLAGS.

// serverLabel is a parsed label.
type serverLabel struct {
	base     string   // go, go@REV or node
	variants []string // in the order given
}

func parseLabel(name string) (serverLabel, error) {
	parts := strings.Split(name, "+")
	l := serverLabel{base: parts[0], variants: parts[1:]}
	switch {
	case l.base == "node" || l.base == floorServer:
		if len(l.variants) > 0 {
			return l, fmt.Errorf("server %q: variants (+…) apply to our Go server only; Node runs as the tutorial has it", name)
		}
	case l.base == "go" || strings.HasPrefix(l.base, "go@") && len(l.base) > 3:
	default:
		return l, fmt.Errorf("unknown server %q (want go, go@REV, node, floor, or go…+VARIANT)", name)
	}
	for _, v := range l.variants {
		if v == "" {
			return l, fmt.Errorf("server %q: empty variant name", name)
		}
	}
	return l, nil
}

// baseOf is the server a label builds and starts: go+redis → go.
func baseOf(name string) string {
	b, _, _ := strings.Cut(name, "+")
	return b
}

func isGo(name string) bool {
	b := baseOf(name)
	return b == "go" || strings.HasPrefix(b, "go@")
}

// variantSet holds the flags of every variant name.
type variantSet map[string][]string

// defaultVariants are the configurations of the targets: connection state
// recovery with a 2 minute window, and the Redis adapter on its own
// database and key prefix (the prefix keeps the benchmark's pub/sub traffic
// apart from tests using the same Redis: channels are not per database);
// Prometheus metrics on (their hooks on every connection, event and
// broadcast; nobody scrapes), to show what they cost.
func defaultVariants(redisURL string) variantSet {
	return variantSet{
		"metrics":  {"-metrics-addr", "127.0.0.1:0"},
		"recovery": {"-recovery", "2m"},
		"redis":    {"-redis", redisURL, "-redis-prefix", fmt.Sprintf("bench-%d", os.Getpid())},
	}
}

// set parses one -variant NAME=FLAGS.
func (vs variantSet) set(def string) error {
	name, flags, ok := strings.Cut(def, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, "+,@ ") {
		return fmt.Errorf("-variant %q: want NAME=FLAGS, e.g. 'gc400=-gogc 400' (NAME without + , @ or spaces)", def)
	}
	vs[name] = strings.Fields(flags)
	return nil
}

// flags returns the extra server flags of label l.
func (vs variantSet) flags(l serverLabel) ([]string, error) {
	var out []string
	for _, v := range l.variants {
		f, ok := vs[v]
		if !ok {
			return nil, fmt.Errorf("unknown variant %q (built in: metrics, recovery, redis; define others with -variant %s=FLAGS)", v, v)
		}
		out = append(out, f...)
	}
	return out, nil
}

// usesRedis reports whether label l runs with the Redis adapter.
func (vs variantSet) usesRedis(l serverLabel) bool {
	f, _ := vs.flags(l)
	for _, a := range f {
		if a == "-redis" || a == "--redis" || strings.HasPrefix(a, "-redis=") || strings.HasPrefix(a, "--redis=") {
			return true
		}
	}
	return false
}

// describe lists the variants and their flags, for the report.
func (vs variantSet) describe() map[string]string {
	out := map[string]string{}
	for name, f := range vs {
		out[name] = strings.Join(f, " ")
	}
	return out
}

// plotLabel is how a server is named in the plot's legend.
func plotLabel(name string) string {
	l, err := parseLabel(name)
	if err != nil {
		return name
	}
	var s string
	switch {
	case l.base == "node":
		return "Node.js tutorial (socket.io 4.8)"
	case l.base == "go" && len(l.variants) == 0:
		return "Go (this server)"
	case l.base == "go":
		s = "Go"
	default:
		s = "Go at " + strings.TrimPrefix(l.base, "go@")
	}
	if len(l.variants) > 0 {
		s += " +" + strings.Join(l.variants, " +")
	}
	return s
}
