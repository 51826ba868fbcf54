package engineio

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
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

// nopWriter is a ResponseWriter that keeps nothing: BenchmarkPoll counts
// the engine's own work and allocations for a poll, not a recorder's.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkPoll is the engine's part of a long poll that finds a message
// queued (the common case under load): the handler from the query to the
// encoded response, without net/http around it.
//
//	go test -run '^$' -bench Poll -benchmem ./engineio
func BenchmarkPoll(b *testing.B) {
	s := startServer(b, Options{}, false)
	c, rec := pollOpen(b, s, 4)
	req := httptest.NewRequest(http.MethodGet, c.url(), nil)
	w := &nopWriter{h: http.Header{}}
	payload := []byte(`42["user-message","hello from the benchmark"]`)
	b.ReportAllocs()
	for b.Loop() {
		if err := rec.sess.Send(TextMessage(payload)); err != nil {
			b.Fatal(err)
		}
		clear(w.h)
		s.Server.ServeHTTP(w, req)
	}
}

// BenchmarkParseQuery reads a poll's values from its query, as
// Server.ServeHTTP does, against url.ParseQuery.
func BenchmarkParseQuery(b *testing.B) {
	const raw = "EIO=4&transport=polling&t=PZx1a&sid=AAAAAAAAAAAAAAAAAAAA"
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if q := parseQuery(raw); q.transport == "" || q.sid == "" || q.eio == "" {
				b.Fatal("missing")
			}
		}
	})
	b.Run("ParseQuery", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			q, _ := url.ParseQuery(raw)
			if q.Get("transport") == "" || q.Get("sid") == "" || q.Get("EIO") == "" {
				b.Fatal("missing")
			}
		}
	})
}

// TestHeaderGet checks headerGet against http.Header.Get, and that the
// names the engine passes to headerGet and headerHasToken are canonical
// (headerGet does not canonicalize them).
func TestHeaderGet(t *testing.T) {
	for _, name := range []string{"Origin", "Connection", "Upgrade"} {
		if c := http.CanonicalHeaderKey(name); c != name {
			t.Errorf("%q is not canonical (%q)", name, c)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/?EIO=4&transport=polling", nil)
	req.Header.Set("origin", "http://example.com")
	req.Header.Add("Origin", "http://second.example")
	for _, name := range []string{"Origin", "Upgrade"} {
		if got, want := headerGet(req.Header, name), req.Header.Get(name); got != want {
			t.Errorf("headerGet(%q) = %q, Header.Get %q", name, got, want)
		}
	}
}

// TestDateHeader checks the polling responses' Date: net/http's format,
// one value per second, a new one when the second changes.
func TestDateHeader(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 4, 5, 6, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{t0, "Mon, 07 Dec 2026 03:05:06 GMT"},
		{t0.Add(999 * time.Millisecond), "Mon, 07 Dec 2026 03:05:06 GMT"},
		{t0.Add(time.Second), "Mon, 07 Dec 2026 03:05:07 GMT"},
		{t0, "Mon, 07 Dec 2026 03:05:06 GMT"}, // an earlier second again
	} {
		if got := dateHeader(tc.at); len(got) != 1 || got[0] != tc.want {
			t.Errorf("dateHeader(%v) = %q, want %q", tc.at, got, tc.want)
		}
	}
	a, b := dateHeader(t0), dateHeader(t0.Add(time.Millisecond))
	if &a[0] != &b[0] {
		t.Error("two responses of the same second got different slices")
	}
}

// TestPollDate checks that polling answers carry a Date in net/http's
// format, of the time they were written.
func TestPollDate(t *testing.T) {
	s := startServer(t, Options{}, false)
	before := time.Now().Truncate(time.Second)
	c, rec := pollOpen(t, s, 4)
	if err := rec.sess.Send(TextMessage([]byte("4hello"))); err != nil {
		t.Fatal(err)
	}
	for _, r := range []response{c.post("4x"), func() response { r, _ := c.get(); return r }()} {
		d, err := http.ParseTime(r.header.Get("Date"))
		if err != nil || d.Before(before) || d.After(time.Now()) {
			t.Errorf("Date %q (%v): want a time between %v and now", r.header.Get("Date"), err, before)
		}
	}
}
