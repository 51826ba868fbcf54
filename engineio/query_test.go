package engineio

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// queryKeys are the keys the engine reads from a request's query.
var queryKeys = []string{"EIO", "transport", "sid", "j", "b64", "t", ""}

// checkQuery fails when queryLookup disagrees with url.ParseQuery on raw.
func checkQuery(t *testing.T, raw string) {
	t.Helper()
	q, _ := url.ParseQuery(raw)
	for _, k := range queryKeys {
		v, ok := queryLookup(raw, k)
		if want, wantOK := q.Get(k), q.Has(k); v != want || ok != wantOK {
			t.Errorf("queryLookup(%q, %q) = %q, %v; url.ParseQuery gives %q, %v", raw, k, v, ok, want, wantOK)
		}
	}
}

func TestQueryGet(t *testing.T) {
	for _, raw := range []string{
		"",
		"EIO=4&transport=polling&t=PZx1a&sid=AAAAAAAAAAAAAAAAAAAA",
		"EIO=4&EIO=3",                             // the first value
		"EIO=3;x=1&EIO=4",                         // a pair with ';' is dropped
		"transport=poll%69ng",                     // escapes in the value
		"trans%70ort=polling",                     // and in the key
		"transport=poll%zzng&transport=websocket", // an invalid escape drops the pair
		"tr%zzansport=x&transport=polling",
		"sid=a+b",  // '+' is a space
		"sid",      // no '=': an empty value
		"&&sid=&",  // empty pairs
		"=x&sid=1", // an empty key
		"j=1&b64=1",
		strings.Repeat("x=1&", maxScannedParams) + "sid=2", // past the scan: url.ParseQuery
		strings.Repeat("x&", 20000) + "transport=polling",  // past url.ParseQuery's limit: nothing
	} {
		checkQuery(t, raw)
	}
}

// FuzzQueryGet checks the engine's query scan against url.ParseQuery,
// whose answers it must give for any query a client sends.
func FuzzQueryGet(f *testing.F) {
	for _, s := range []string{
		"EIO=4&transport=polling&t=PZx1a&sid=AAAAAAAAAAAAAAAAAAAA", "EIO=3;x=1&EIO=4", "trans%70ort=poll%69ng",
		"sid=a+b&sid=c", "j=1&b64=1", "%", "sid=%g0", "=&=", "t=&EIO=4;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkQuery(t, raw) })
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

// BenchmarkQueryGet reads a poll's three values from its query, as
// Server.ServeHTTP does, against url.ParseQuery.
func BenchmarkQueryGet(b *testing.B) {
	const raw = "EIO=4&transport=polling&t=PZx1a&sid=AAAAAAAAAAAAAAAAAAAA"
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if queryGet(raw, "transport") == "" || queryGet(raw, "sid") == "" || queryGet(raw, "EIO") == "" {
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
