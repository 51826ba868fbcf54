package engineio

import (
	"net/url"
	"strings"
	"testing"
)

// wantQuery is what the server read with url.ParseQuery before parseQuery.
func wantQuery(raw string) query {
	v, _ := url.ParseQuery(raw)
	return query{transport: v.Get("transport"), sid: v.Get("sid"), eio: v.Get("EIO"), j: v.Get("j"), b64: v.Get("b64"), hasJ: v.Has("j")}
}

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want query
	}{
		{"", query{}},
		{"EIO=4&transport=websocket", query{eio: "4", transport: "websocket"}},
		{"EIO=4&transport=polling&t=PXk1&sid=abc_-", query{eio: "4", transport: "polling", sid: "abc_-"}},
		{"EIO=3&transport=polling&j=0&b64=1", query{eio: "3", transport: "polling", j: "0", hasJ: true, b64: "1"}},
		{"j", query{hasJ: true}}, // no '=': an empty value
		{"transport=polling&transport=websocket", query{transport: "polling"}},  // the first value wins
		{"transport=bad%zz&transport=websocket", query{transport: "websocket"}}, // a bad escape skips the pair
		{"transport=web%73ocket", query{transport: "websocket"}},
		{"tr%61nsport=polling", query{transport: "polling"}},
		{"transport=a+b", query{transport: "a b"}},
		{"transport=polling;sid=x", query{}}, // semicolons are not separators: the pair is skipped
		{"&&EIO=4&", query{eio: "4"}},
		{"eio=4&Transport=polling", query{}}, // names are case-sensitive
	} {
		if got := parseQuery(tc.raw); got != tc.want {
			t.Errorf("parseQuery(%q) = %+v, want %+v", tc.raw, got, tc.want)
		}
		if got := wantQuery(tc.raw); got != tc.want {
			t.Errorf("url.ParseQuery(%q) gives %+v, the table says %+v", tc.raw, got, tc.want)
		}
	}
}

// TestParseQueryManyParameters: a query with more parameters than
// parseQuery reads itself is read as url.ParseQuery reads it, limits
// included.
func TestParseQueryManyParameters(t *testing.T) {
	for _, n := range []int{fastQueryParams - 1, fastQueryParams, fastQueryParams + 1, 20000} {
		raw := strings.Repeat("x=1&", n) + "EIO=4&transport=websocket"
		if got, want := parseQuery(raw), wantQuery(raw); got != want {
			t.Errorf("%d parameters: parseQuery = %+v, url.ParseQuery gives %+v", n+2, got, want)
		}
	}
}

// FuzzParseQuery: parseQuery reads every query string (untrusted input)
// as url.ParseQuery does.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "EIO=4&transport=websocket", "EIO=3&transport=polling&j=12&b64=1&sid=abc",
		"transport=%zz&transport=polling", "sid=a;b", "j", "EIO=%34", "transport=a+b&&",
		strings.Repeat("a&", fastQueryParams) + "sid=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if got, want := parseQuery(raw), wantQuery(raw); got != want {
			t.Fatalf("parseQuery(%q) = %+v, url.ParseQuery gives %+v", raw, got, want)
		}
	})
}
