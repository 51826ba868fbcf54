package engineio

// Tests of JSONP polling against what Node's engine.io 6.6.12 does: the
// expected values were printed by Node running polling-jsonp.js itself
// (JSONP.prototype.doWrite and onData, with Polling's doWrite and onData
// replaced by recorders), and are kept here as the JSON Node printed.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// fromJSON decodes a JSON string literal, as Node printed it.
func fromJSON(tb testing.TB, lit string) string {
	tb.Helper()
	var s string
	if err := json.Unmarshal([]byte(lit), &s); err != nil {
		tb.Fatalf("%s: %v", lit, err)
	}
	return s
}

// TestAppendJSONP: the response to a JSONP GET is Node's, byte for byte.
func TestAppendJSONP(t *testing.T) {
	payload := fromJSON(t, `"4\"\\/\b\t\n\f\r\u0000\u0001\u001f\u007f</script>é😀\u2028\u2029\u001e2"`)
	want := fromJSON(t, `"___eio[3](\"4\\\"\\\\/\\b\\t\\n\\f\\r\\u0000\\u0001\\u001f\u007f</script>é😀\\u2028\\u2029\\u001e2\");"`)
	head, ok := jsonpHead("3")
	if !ok {
		t.Fatal("jsonpHead(3) refused")
	}
	if got := string(appendJSONP(nil, head, []byte(payload))); got != want {
		t.Errorf("appendJSONP(%q)\n got %q\nwant %q", payload, got, want)
	}
	// Bytes that are not UTF-8 (a Go handler's) become U+FFFD, one per
	// maximal ill-formed subpart (FF; the truncated E2 80), as Node.
	if got := string(appendJSONP(nil, head, []byte("4\xff\xe2\x80"))); got != "___eio[3](\"4\uFFFD\uFFFD\");" {
		t.Errorf("invalid UTF-8: %q", got)
	}
}

func TestJSONPHead(t *testing.T) {
	for _, j := range []string{"0", "3", "0042", "1234567890"} {
		if h, ok := jsonpHead(j); !ok || string(h) != "___eio["+j+"](" {
			t.Errorf("jsonpHead(%q) = %q, %v", j, h, ok)
		}
	}
	for _, j := range []string{"", "a", "1a", "-1", "1.5", " 1", "12345678901", "１"} {
		if h, ok := jsonpHead(j); ok {
			t.Errorf("jsonpHead(%q) = %q, want refused", j, h)
		}
	}
}

// jsonpReadCases are POST bodies and what Node's JSONP.onData hands on
// (ignored: nothing, the body has no single d field).
var jsonpReadCases = []struct{ body, want string }{
	{`d=4hello`, `"4hello"`},
	{`d=4a%5Cnb`, `"4a\nb"`},
	{`d=4a%5C%5Cnb`, `"4a\\nb"`},
	{`d=4a%5C%5C%5Cnb`, `"4a\\\\nb"`},
	{`d=4a%5C%5C%5C%5Cnb`, `"4a\\\\\\nb"`},
	{`d=4a%5C%5C%5C%5C%5Cnb`, `"4a\\\\\\\\nb"`},
	{`d=4%5C`, `"4\\"`},
	{`d=4%5Cn`, `"4\n"`},
	{`x=1&d=4x+y%2B%ZZ%4&z`, `"4x y+%ZZ%4"`},
	{`%64=4key`, `"4key"`},
	{`d=1&d=2`, "ignored"},
	{`e=4`, "ignored"},
	{``, "ignored"},
	{`d`, `""`},
	{`d=4%C3%A9%E2%82%AC`, `"4é€"`},
	{`d=4%5C%0A`, `"4\\\n"`},
	{`d=4a%0Ab`, `"4a\nb"`},
}

func TestJSONPData(t *testing.T) {
	for _, tt := range jsonpReadCases {
		got, ok := jsonpData([]byte(tt.body))
		switch {
		case tt.want == "ignored" && ok:
			t.Errorf("jsonpData(%q) = %q, want it ignored", tt.body, got)
		case tt.want != "ignored" && (!ok || string(got) != fromJSON(t, tt.want)):
			t.Errorf("jsonpData(%q) = %q, %v; want %q", tt.body, got, ok, fromJSON(t, tt.want))
		}
	}
	// A d after querystring.parse's 1000 fields is not seen.
	if _, ok := jsonpData([]byte(strings.Repeat("x=1&", 1000) + "d=4late")); ok {
		t.Error("d after 1000 fields was read")
	}
	if got, ok := jsonpData([]byte(strings.Repeat("x=1&", 999) + "d=4last")); !ok || string(got) != "4last" {
		t.Errorf("d as the 1000th field: %q %v", got, ok)
	}
}

// TestJSONPPolling: a session opened with j= is a JSONP one for its whole
// life, as in Node: every GET answer is `___eio[j]("…");` (text/plain, as
// Node 6 writes it), later requests need no j, and POSTs are forms with
// the payload in d. Node's answers, probed with curl: the handshake
// `___eio[3]("0{\"sid\":…}");`, the POST "ok", a GET without j
// `___eio[12]("2");`.
func TestJSONPPolling(t *testing.T) {
	for _, eio := range []int{4, 3} {
		t.Run(fmt.Sprintf("EIO=%d", eio), func(t *testing.T) {
			s := startServer(t, Options{AllowEIO3: true}, true)
			hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			t.Cleanup(hc.CloseIdleConnections)
			r := do(t, hc, http.MethodGet, s.url(fmt.Sprintf("EIO=%d&transport=polling&j=3", eio)), "", nil)
			if r.status != 200 || r.header.Get("Content-Type") != "text/plain; charset=UTF-8" {
				t.Fatalf("handshake: %d %v %q", r.status, r.header, r.body)
			}
			rec := s.session(t)
			sid := rec.sess.ID()
			open := rec.sess.srv.Options()
			hs := fmt.Sprintf(`0{"sid":"%s","upgrades":["websocket"],"pingInterval":%d,"pingTimeout":%d,"maxPayload":%d}`,
				sid, open.PingInterval.Milliseconds(), open.PingTimeout.Milliseconds(), open.MaxBufferSize)
			if eio == 3 {
				hs = fmt.Sprintf("%d:%s", len(hs), hs)
			}
			if want := string(appendJSONP(nil, []byte("___eio[3]("), []byte(hs))); r.body != want {
				t.Fatalf("handshake answer\n got %q\nwant %q", r.body, want)
			}
			if eio == 4 && !strings.HasPrefix(r.body, `___eio[3]("0{\"sid\":\"`+sid+`\",`) {
				t.Fatalf("handshake answer %q", r.body)
			}

			// A POST, without j: a form whose d has escaped newlines.
			msg, wantMsg := "4line 1\\nline \"2\"", "line 1\nline \"2\""
			if eio == 3 {
				msg = fmt.Sprintf("%d:%s", len(wantMsg)+1, msg)
			}
			u := s.url(fmt.Sprintf("EIO=%d&transport=polling&sid=%s", eio, sid))
			r = do(t, hc, http.MethodPost, u, "d="+url.QueryEscape(msg), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
			if r.status != 200 || r.body != "ok" {
				t.Fatalf("POST = %d %q, want ok", r.status, r.body)
			}
			if m := rec.message(t); m.data != wantMsg {
				t.Errorf("message %q, want %q", m.data, wantMsg)
			}
			// The echo, on a GET without j.
			echo := "4" + wantMsg
			if eio == 3 {
				echo = fmt.Sprintf("%d:%s", len(echo), echo)
			}
			r = do(t, hc, http.MethodGet, u, "", nil)
			if want := `___eio[3]("` + strings.ReplaceAll(strings.ReplaceAll(echo, `"`, `\"`), "\n", `\n`) + `");`; r.status != 200 || r.body != want {
				t.Errorf("GET = %d %q, want %q", r.status, r.body, want)
			}
			// Binary goes as base64, in the string, in both versions.
			if err := rec.sess.Send(BinaryMessage([]byte{1, 2, 3})); err != nil {
				t.Fatal(err)
			}
			r = do(t, hc, http.MethodGet, u, "", nil)
			want := `___eio[3]("bAQID");`
			if eio == 3 {
				want = `___eio[3]("6:b4AQID");`
			}
			if r.status != 200 || r.body != want || r.header.Get("Content-Type") != "text/plain; charset=UTF-8" {
				t.Errorf("binary GET = %d %v %q, want %q", r.status, r.header.Get("Content-Type"), r.body, want)
			}
			// A body without one d field is ignored, as in Node.
			if r := do(t, hc, http.MethodPost, u, "e=4x", nil); r.status != 200 || r.body != "ok" {
				t.Errorf("POST without d = %d %q, want ok", r.status, r.body)
			}
			if rec.isClosed() {
				t.Errorf("session closed: %v", rec.waitClose(t))
			}
		})
	}
}

// TestJSONPRefused: a JSONP handshake whose j is not an index is refused
// (Node keeps the digits of j and would answer `___eio[](…)`, which is not
// JavaScript). A plain polling session stays plain with a j later, as in
// Node, where the transport is chosen at the handshake.
func TestJSONPRefused(t *testing.T) {
	s := startServer(t, Options{}, false)
	for _, j := range []string{"", "abc", "1a", "12345678901"} {
		r := do(t, nil, http.MethodGet, s.url("EIO=4&transport=polling&j="+url.QueryEscape(j)), "", nil)
		if r.status != 400 || parseError(t, r).Code != codeBadRequest {
			t.Errorf("j=%q: %d %q, want 400 code 3", j, r.status, r.body)
		}
	}
	if s.Len() != 0 || s.count.Load() != 0 {
		t.Errorf("refused handshakes left %d sessions, %d reserved", s.Len(), s.count.Load())
	}
	c, rec := pollOpen(t, s, 4)
	_ = rec.sess.Send(TextMessage([]byte("4plain")))
	if r := do(t, c.hc, http.MethodGet, c.url()+"&j=1", "", nil); r.body != "4plain" {
		t.Errorf("GET with j on a plain session = %q, want 4plain", r.body)
	}
}

// jsonpNewlinesRef is Node's code for the newlines, with Go's regexp
// (RE2's leftmost-first matching is JavaScript's for these patterns).
var (
	rSlashes       = regexp.MustCompile(`(\\)?\\n`)
	rDoubleSlashes = regexp.MustCompile(`\\\\n`)
)

func jsonpNewlinesRef(s string) string {
	s = rSlashes.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) == 3 {
			return m
		}
		return "\n"
	})
	return rDoubleSlashes.ReplaceAllString(s, `\n`)
}

// FuzzJSONPData reads arbitrary JSONP POST bodies: never a panic, never
// more bytes out than in, the newlines restored as Node's regular
// expressions do, and a well-formed form read as url.ParseQuery reads it.
func FuzzJSONPData(f *testing.F) {
	for _, tt := range jsonpReadCases {
		f.Add([]byte(tt.body))
	}
	f.Add([]byte(`d=42%5B%22x%22%2C%22a%5C%5Cnb%5C%5C%5C%5Cnc%22%5D%1E42%5B%22y%22%5D`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := jsonpData(bytes.Clone(body))
		if !ok {
			return
		}
		if len(got) > len(body) {
			t.Fatalf("jsonpData(%q) = %q, longer than the body", body, got)
		}
		q, err := url.ParseQuery(string(body))
		if err != nil || len(q["d"]) != 1 || strings.Count(string(body), "&") >= jsonpMaxFields {
			return
		}
		if want := jsonpNewlinesRef(q.Get("d")); string(got) != want {
			t.Fatalf("jsonpData(%q) = %q, want %q", body, got, want)
		}
	})
}
