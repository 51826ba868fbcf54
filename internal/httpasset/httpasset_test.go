package httpasset

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		headers []string
		want    bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"deflate, gzip;q=0.5"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip;q=0.0"}, false},
		{[]string{"gzip;q=x"}, false},
		{[]string{"*"}, true},
		{[]string{"identity"}, false},
		{[]string{"br", "gzip"}, true}, // a header sent twice
		{[]string{"gzipx"}, false},
	} {
		h := http.Header{}
		for _, v := range tc.headers {
			h.Add("Accept-Encoding", v)
		}
		if got := AcceptsGzip(h); got != tc.want {
			t.Errorf("AcceptsGzip(%q) = %v, want %v", tc.headers, got, tc.want)
		}
	}
}

func TestFileServe(t *testing.T) {
	body := []byte(strings.Repeat("let socket = io();\n", 200))
	f := &File{Body: body, ContentType: "application/javascript", ETag: `"1.0"`, CacheControl: "public, max-age=0"}
	for _, tc := range []struct {
		name, method string
		header       map[string]string
		status       int
		encoding     string
		wantBody     bool
	}{
		{"plain", "GET", nil, 200, "", true},
		{"gzip", "GET", map[string]string{"Accept-Encoding": "gzip"}, 200, "gzip", true},
		{"head", "HEAD", nil, 200, "", false},
		{"strong etag", "GET", map[string]string{"If-None-Match": `"1.0"`}, 304, "", false},
		{"weak etag", "GET", map[string]string{"If-None-Match": `W/"1.0"`}, 304, "", false},
		{"other etag", "GET", map[string]string{"If-None-Match": `"0.9"`}, 200, "", true},
		{"post", "POST", nil, 405, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/x.js", nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			f.ServeHTTP(w, r)
			res := w.Result()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status == 405 {
				if res.Header.Get("Allow") != "GET, HEAD" {
					t.Errorf("Allow %q", res.Header.Get("Allow"))
				}
				return
			}
			if got := res.Header.Get("ETag"); got != `"1.0"` {
				t.Errorf("ETag %q", got)
			}
			if got := res.Header.Get("Cache-Control"); got != "public, max-age=0" {
				t.Errorf("Cache-Control %q", got)
			}
			if got := res.Header.Get("Content-Encoding"); got != tc.encoding {
				t.Errorf("Content-Encoding %q, want %q", got, tc.encoding)
			}
			var rd io.Reader = res.Body
			if tc.encoding == "gzip" {
				zr, err := gzip.NewReader(res.Body)
				if err != nil {
					t.Fatal(err)
				}
				rd = zr
			}
			got, err := io.ReadAll(rd)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantBody != (string(got) == string(body)) || (!tc.wantBody && len(got) != 0) {
				t.Errorf("body %d bytes, want body %v", len(got), tc.wantBody)
			}
		})
	}
}
