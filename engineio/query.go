package engineio

import (
	"net/url"
	"strings"
)

// queryGet is url.Values.Get of url.ParseQuery(rawQuery) for one key,
// without building the map: the first value of key, "" when there is none.
// Every request of a session (each poll, each POST) needs only its
// transport, sid and EIO; parsing the whole query into a map for them was
// a fifth of the allocations of a poll. It follows ParseQuery exactly: the
// query is split at '&'; a pair with a ';' or with an invalid escape (in
// its key or its value) is skipped; key and value are unescaped as a query
// component ('+' is a space). A query of more than maxScannedParams
// parameters goes to url.ParseQuery itself, which also applies its limit
// on their number (GODEBUG urlmaxqueryparams) by returning none.
func queryGet(rawQuery, key string) string {
	v, _ := queryLookup(rawQuery, key)
	return v
}

// maxScannedParams is the most parameters queryLookup scans itself; an
// Engine.IO client sends four or five (EIO, transport, sid, t, maybe b64
// or j).
const maxScannedParams = 16

// queryLookup is queryGet that also reports whether key is present
// (url.Values.Has).
func queryLookup(rawQuery, key string) (string, bool) {
	if strings.Count(rawQuery, "&") >= maxScannedParams {
		q, _ := url.ParseQuery(rawQuery)
		vs, ok := q[key]
		if !ok {
			return "", false
		}
		return vs[0], true
	}
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if !escaped(k) {
			if k != key {
				continue
			}
		} else {
			uk, err := url.QueryUnescape(k)
			if err != nil || uk != key {
				continue
			}
		}
		if !escaped(v) {
			return v, true
		}
		uv, err := url.QueryUnescape(v)
		if err != nil {
			continue // ParseQuery drops the pair
		}
		return uv, true
	}
	return "", false
}

// escaped reports whether s has a '%' or '+', which url.QueryUnescape
// changes (a loop: strings.ContainsAny was most of queryLookup's time).
func escaped(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' || s[i] == '+' {
			return true
		}
	}
	return false
}
