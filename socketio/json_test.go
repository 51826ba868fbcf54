package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUnquote(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{`"plain"`, "plain", true},
		{`""`, "", true},
		{`"a\"b\\c\/d"`, `a"b\c/d`, true},
		{`"\b\f\n\r\t"`, "\b\f\n\r\t", true},
		{`"\u00e9\u20AC"`, "é€", true},
		{`"\ud83d\ude00"`, "😀", true},
		{`"\ud800"`, "\xed\xa0\x80", true},        // lone high surrogate: WTF-8
		{`"\udc00x"`, "\xed\xb0\x80x", true},      // lone low surrogate
		{`"\ud800\u0041"`, "\xed\xa0\x80A", true}, // high then not a low
		{`"\ud800\ud800"`, "\xed\xa0\x80\xed\xa0\x80", true},
		{`"\ude00\ud83d"`, "\xed\xb8\x80\xed\xa0\xbd", true}, // low then high: two lone ones
		{`"é😀"`, "é😀", true},
		{`"\x"`, "", false},
		{`"\u12"`, "", false},
		{`"\`, "", false},
		{`plain`, "", false},
		{`"`, "", false},
	}
	for _, tt := range tests {
		got, ok := unquote([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("unquote(%s) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestAppendQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{"<&>", `"<&>"`},
		{"a\"b\\c/d", `"a\"b\\c/d"`},
		{"\x00\x1f\x7f", `"\u0000\u001f` + "\x7f" + `"`},
		{"\u2028", "\"\u2028\""},
		{"\xed\xa0\x80", `"\ud800"`},
		{"\xed\xbf\xbfz", `"\udfffz"`},
		// Ill-formed bytes: U+FFFD per maximal subpart, written as is, as
		// JSON.stringify(buf.toString("utf8")) in Node (internal/jsontext
		// has the table checked against node).
		{"\xed\xa0", "\"\uFFFD\uFFFD\""}, // a truncated surrogate: two stray bytes
		{"\xff\xfe", "\"\uFFFD\uFFFD\""},
		{"\xf0\x9f\x98", "\"\uFFFD\""},      // a truncated 😀: one subpart
		{"\xed\xa0\xbd\xed\xb8\x80", `"😀"`}, // a WTF-8 surrogate pair is one character
		{"😀", `"😀"`},
	}
	for _, tt := range tests {
		if got := string(appendQuote(nil, tt.in)); got != tt.want {
			t.Errorf("appendQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestQuoteRoundTrip: a string literal, unquoted and quoted again, means
// the same string to JavaScript (lone surrogates included).
func TestQuoteRoundTrip(t *testing.T) {
	for _, lit := range []string{`"\ud800"`, `"a\udfffb"`, `"\ud83d\ude00"`, `"\u0000\u001f"`, `"\u00e9"`, `"x\ud800\ud800y"`} {
		checkQuoteRoundTrip(t, []byte(lit))
	}
}

func checkQuoteRoundTrip(tb testing.TB, lit []byte) {
	tb.Helper()
	u, ok := unquote(lit)
	if !ok {
		return
	}
	again := appendQuote(nil, u)
	if err := validValue(again); err != nil || !json.Valid(again) {
		tb.Fatalf("appendQuote(unquote(%s)) = %s: not valid JSON (%v)", lit, again, err)
	}
	u2, ok := unquote(again)
	if !ok || u2 != u {
		tb.Fatalf("unquote(appendQuote(unquote(%s))) = %q, want %q (via %s)", lit, u2, u, again)
	}
	if utf8.ValidString(u) {
		var std string
		if err := json.Unmarshal(lit, &std); err != nil || std != u {
			tb.Fatalf("unquote(%s) = %q; encoding/json: %q, %v", lit, u, std, err)
		}
	}
}

func TestSplitArray(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr error
	}{
		{`[]`, nil, nil},
		{` [ ] `, nil, nil},
		{`["a"]`, []string{`"a"`}, nil},
		{"[ 1 ,\t\"b\" ,\n{\"c\" : [ ] } , null ]\r\n", []string{`1`, `"b"`, `{"c" : [ ] }`, `null`}, nil},
		{`[[1,2],[3]]`, []string{`[1,2]`, `[3]`}, nil},
		{`{}`, nil, errNotArray},
		{`"x"`, nil, errNotArray},
		{``, nil, errNotArray},
		{`[1,]`, nil, errJSON},
		{`[,1]`, nil, errJSON},
		{`[1 2]`, nil, errJSON},
		{`[1`, nil, errJSON},
		{`[1]]`, nil, errJSON},
		{`[1] x`, nil, errJSON},
		{`[1]` + "\v", nil, errJSON},
		{"[1]\u00a0", nil, errJSON},
	}
	for _, tt := range tests {
		got, err := splitArray([]byte(tt.in))
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("splitArray(%q) error %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		var gs []string
		for _, e := range got {
			gs = append(gs, string(e))
		}
		if strings.Join(gs, "|") != strings.Join(tt.want, "|") {
			t.Errorf("splitArray(%q) = %q, want %q", tt.in, gs, tt.want)
		}
	}
}

// TestValidValue compares the scanner with encoding/json.Valid, which
// follows RFC 8259 as JSON.parse does.
func TestValidValue(t *testing.T) {
	for _, s := range []string{
		`0`, `-0`, `1.5e+10`, `1E-2`, `-1.0`, `true`, `false`, `null`, `""`, `"\u0041"`, `{}`, `[]`,
		`{"a":{"b":[1,{"c":null}]}}`, ` [1] `, `"é"`, "\"\x7f\"", `"\/"`, `1e400`,
		`01`, `1.`, `.5`, `-`, `+1`, `1e`, `1e+`, `0x10`, `NaN`, `Infinity`, `-Infinity`, `tru`, `nul`, `True`,
		`"a`, `"\x"`, `"\u12g4"`, "\"\t\"", "\"\x00\"", `'a'`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1,}`, `[1,]`,
		`[`, `]`, `{`, `}`, ``, ` `, `1 2`, `{}{}`, "\xef\xbb\xbf1", "1\x00",
	} {
		got := validValue([]byte(s)) == nil
		if want := json.Valid([]byte(s)); got != want {
			t.Errorf("validValue(%q) = %v, encoding/json.Valid = %v", s, got, want)
		}
	}
}

func TestMaxDepth(t *testing.T) {
	nest := func(n int) []byte { return []byte(strings.Repeat("[", n) + strings.Repeat("]", n)) }
	objs := func(n int) []byte { return []byte(strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)) }
	if err := validValue(nest(MaxDepth)); err != nil {
		t.Errorf("%d levels of arrays: %v", MaxDepth, err)
	}
	if err := validValue(nest(MaxDepth + 1)); !errors.Is(err, errTooDeep) {
		t.Errorf("%d levels of arrays: %v, want errTooDeep", MaxDepth+1, err)
	}
	if err := validValue(objs(MaxDepth)); err != nil {
		t.Errorf("%d levels of objects: %v", MaxDepth, err)
	}
	if err := validValue(objs(MaxDepth + 1)); !errors.Is(err, errTooDeep) {
		t.Errorf("%d levels of objects: %v, want errTooDeep", MaxDepth+1, err)
	}
	// The argument array of a packet is level 1.
	if _, err := splitArray(nest(MaxDepth)); err != nil {
		t.Errorf("splitArray of %d levels: %v", MaxDepth, err)
	}
	if _, err := splitArray(nest(MaxDepth + 1)); !errors.Is(err, errTooDeep) {
		t.Errorf("splitArray of %d levels: %v, want errTooDeep", MaxDepth+1, err)
	}
	// Depth is nesting, not a count of arrays.
	wide := []byte("[" + strings.Repeat("[[]],", 1000) + "[]]")
	if err := validValue(wide); err != nil {
		t.Errorf("wide: %v", err)
	}
}

// FuzzJSON checks the scanner against encoding/json on arbitrary input:
// validValue agrees with json.Valid (beyond MaxDepth aside), splitArray
// splits as json.Unmarshal into []json.RawMessage does, and a string
// literal round-trips through unquote and appendQuote.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`["a",1,{"b":[null]}]`, `"\ud800"`, `[1e400, -0.0]`, `{"a":"\u00e9"}`, `[`, `"\u12"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := validValue(b)
		if want := json.Valid(b); (err == nil) != want && !errors.Is(err, errTooDeep) {
			t.Fatalf("validValue(%q) = %v, encoding/json.Valid = %v", b, err, want)
		}
		elems, err := splitArray(b)
		var std []json.RawMessage
		stdErr := json.Unmarshal(b, &std)
		if err == nil {
			if stdErr != nil {
				t.Fatalf("splitArray(%q) accepted, encoding/json: %v", b, stdErr)
			}
			if len(elems) != len(std) {
				t.Fatalf("splitArray(%q) = %d elements, encoding/json %d", b, len(elems), len(std))
			}
			for i := range elems {
				if !bytes.Equal(elems[i], bytes.TrimSpace(std[i])) {
					t.Fatalf("element %d = %q, encoding/json %q", i, elems[i], std[i])
				}
			}
		} else if stdErr == nil && std != nil && !errors.Is(err, errTooDeep) {
			t.Fatalf("splitArray(%q): %v, encoding/json accepts it", b, err)
		}
		// Packets reach the parser as UTF-8 (the engine refuses or
		// replaces anything else): round trips are of UTF-8 text.
		if len(b) > 0 && b[0] == '"' && validValue(b) == nil && utf8.Valid(b) {
			checkQuoteRoundTrip(t, b)
		}
	})
}

// benchEvent is a chat event as a client sends it.
var benchEvent = []byte(`["chat message",{"from":"alice","text":"hello, everyone","at":1712345678901,"tags":["a","b"],"reply":null}]`)

// benchLarge is a larger event: text with escapes and non-ASCII
// characters, numbers, nesting.
var benchLarge = func() []byte {
	var b strings.Builder
	b.WriteString(`["history",[`)
	for i := range 40 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":1712345678901,"from":"bob","text":"Grüße \"quoted\" \\ line\nnext — 日本語 😀 \u00e9","score":-12.5e-3,"ok":true,"seen":[1,2,3]}`)
	}
	b.WriteString(`]]`)
	return []byte(b.String())
}()

func BenchmarkScanJSONEvent(b *testing.B) {
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := splitArray(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanJSONLarge(b *testing.B) {
	b.SetBytes(int64(len(benchLarge)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := splitArray(benchLarge); err != nil {
			b.Fatal(err)
		}
	}
}

var (
	benchQuoteASCII   = "hello, everyone: this is a chat message of ordinary length"
	benchQuoteUnicode = "Grüße — 日本語 😀 \"quoted\"\n and a tab\t."
)

func BenchmarkQuoteASCII(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(benchQuoteASCII)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendQuote(buf[:0], benchQuoteASCII)
	}
}

func BenchmarkQuoteUnicode(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(benchQuoteUnicode)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendQuote(buf[:0], benchQuoteUnicode)
	}
}
