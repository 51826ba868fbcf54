package engineio

import (
	"net/url"
	"strings"
)

// query is what the server reads of a request's query string: the first
// value of each parameter it knows, as url.Values.Get returns it, and
// whether j is there (JSONP).
//
// parseQuery reads them without building a url.Values: the map, its
// slices and strings were the largest share of what a WebSocket handshake
// allocated in ServeHTTP. Its result is the same as url.ParseQuery's on
// every input (FuzzParseQuery checks it); queries with many parameters go
// through url.ParseQuery itself, which has a limit of its own on them.
type query struct {
	transport, sid, eio, j, b64 string
	hasJ                        bool
}

// fastQueryParams is the most parameters parseQuery reads on its own; an
// Engine.IO request has four or five.
const fastQueryParams = 32

func parseQuery(raw string) query {
	var q query
	if strings.Count(raw, "&") >= fastQueryParams {
		v, _ := url.ParseQuery(raw)
		q.transport, q.sid, q.eio, q.j, q.b64 = v.Get("transport"), v.Get("sid"), v.Get("EIO"), v.Get("j"), v.Get("b64")
		q.hasJ = v.Has("j")
		return q
	}
	var seen uint8 // one bit per field already set: the first value wins
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" || strings.Contains(kv, ";") {
			continue // url.ParseQuery skips both
		}
		k, v, _ := strings.Cut(kv, "=")
		k, ok := unescapeQuery(k)
		if !ok {
			continue
		}
		var field *string
		var bit uint8
		switch k {
		case "transport":
			field, bit = &q.transport, 1
		case "sid":
			field, bit = &q.sid, 2
		case "EIO":
			field, bit = &q.eio, 4
		case "j":
			field, bit = &q.j, 8
		case "b64":
			field, bit = &q.b64, 16
		default:
			continue
		}
		v, ok = unescapeQuery(v)
		if !ok || seen&bit != 0 {
			continue
		}
		seen |= bit
		*field = v
	}
	q.hasJ = seen&8 != 0
	return q
}

// unescapeQuery is url.QueryUnescape, without its call (and allocation)
// for the usual text that has nothing escaped.
func unescapeQuery(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}
