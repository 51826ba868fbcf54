package jsontext

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"unicode/utf8"
)

// quoteTests: what JSON.stringify writes for the JavaScript string a Go
// string stands for. js is that string for node: the bytes as
// buf.toString("utf8") reads them (WHATWG: U+FFFD per maximal ill-formed
// subpart), except that WTF-8 surrogates stand for UTF-16 surrogates (js
// set). TestQuoteTableIsNode checks every want with node.
//
// Before internal/jsontext, socketio's appendQuote wrote an escaped
// \ufffd per stray byte (rows marked "socketio differed") and two escapes
// for a WTF-8 pair; internal/notepack's AppendQuoted wrote this table.
var quoteTests = []struct {
	name, in, js, want string
}{
	{"ascii", "plain", "", `"plain"`},
	{"empty", "", "", `""`},
	{"html as is", "<b>&amp;</b>/", "", `"<b>&amp;</b>/"`},
	{"quote and backslash", `a"b\c`, "", `"a\"b\\c"`},
	{"short escapes", "\b\f\n\r\t", "", `"\b\f\n\r\t"`},
	{"other controls", "\x00\x01\x1f", "", `"\u0000\u0001\u001f"`},
	{"DEL as is", "\x7f", "", "\"\x7f\""},
	{"line separators as is", "\u2028\u2029", "", "\"\u2028\u2029\""},
	{"non-ASCII as is", "é€😀", "", `"é€😀"`},
	{"U+D7FF, below the surrogates", "\xed\x9f\xbf", "", "\"\ud7ff\""},
	{"U+FFFD itself", "\uFFFD", "", "\"\uFFFD\""},
	{"stray byte (socketio differed)", "a\xffb", "", "\"a\uFFFDb\""},
	{"two stray bytes (socketio differed)", "\xff\xfe", "", "\"\uFFFD\uFFFD\""},
	{"lone continuation bytes (socketio differed)", "\x80\xbf", "", "\"\uFFFD\uFFFD\""},
	{"truncated 2-byte (socketio differed)", "\xc3", "", "\"\uFFFD\""},
	{"truncated 3-byte, one subpart (socketio differed)", "\xe2\x82A", "", "\"\uFFFDA\""},
	{"truncated 4-byte, one subpart (socketio differed)", "\xf0\x9f\x98", "", "\"\uFFFD\""},
	{"truncated 4-byte then ASCII (socketio differed)", "\xf0\x90\x80A", "", "\"\uFFFDA\""},
	{"overlong 2-byte (socketio differed)", "\xc0\x80", "", "\"\uFFFD\uFFFD\""},
	{"overlong 3-byte (socketio differed)", "\xe0\x80\x80", "", "\"\uFFFD\uFFFD\uFFFD\""},
	{"truncated E0 A0 (socketio differed)", "\xe0\xa0", "", "\"\uFFFD\""},
	{"beyond U+10FFFF (socketio differed)", "\xf4\x90\x80\x80", "", "\"\uFFFD\uFFFD\uFFFD\uFFFD\""},
	{"5-byte form (socketio differed)", "\xf8\x88\x80\x80", "", "\"\uFFFD\uFFFD\uFFFD\uFFFD\""},
	{"truncated surrogate: two stray bytes (socketio differed)", "\xed\xa0", "", "\"\uFFFD\uFFFD\""},
	{"ED A0 then ASCII (socketio differed)", "\xed\xa0A", "", "\"\uFFFD\uFFFDA\""},
	{"lone high surrogate (WTF-8)", "\xed\xa0\x80", `"\ud800"`, `"\ud800"`},
	{"lone low surrogate (WTF-8)", "\xed\xbf\xbfz", `"\udfffz"`, `"\udfffz"`},
	{"surrogate pair (WTF-8): one character (socketio differed)", "\xed\xa0\xbd\xed\xb8\x80", `"\ud83d\ude00"`, `"😀"`},
	{"low then high: two lone ones", "\xed\xb8\x80\xed\xa0\xbd", `"\ude00\ud83d"`, `"\ude00\ud83d"`},
	{"high, high", "\xed\xa0\x80\xed\xa0\x80", `"\ud800\ud800"`, `"\ud800\ud800"`},
	{"high, high, low (socketio differed)", "\xed\xa0\x80\xed\xa0\xbd\xed\xb8\x80", `"\ud800\ud83d\ude00"`, `"\ud800😀"`},
}

func TestAppendQuote(t *testing.T) {
	for _, tt := range quoteTests {
		if got := string(AppendQuote(nil, tt.in)); got != tt.want {
			t.Errorf("%s: AppendQuote(%q) = %s, want %s", tt.name, tt.in, got, tt.want)
		}
		if got := string(AppendQuote([]byte("x"), []byte(tt.in))); got != "x"+tt.want {
			t.Errorf("%s: AppendQuote(x, []byte(%q)) = %s, want x%s", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestQuoteTableIsNode checks quoteTests against node's JSON.stringify.
func TestQuoteTableIsNode(t *testing.T) {
	cases := make([]nodeCase, len(quoteTests))
	for i, tt := range quoteTests {
		cases[i] = nodeCase{Op: "quote", Hex: hexOf(tt.in), JS: tt.js}
	}
	for i, got := range askNode(t, cases) {
		if tt := quoteTests[i]; got != hexOf(tt.want) {
			t.Errorf("%s: node writes %s, the table %s", tt.name, unhex(t, got), tt.want)
		}
	}
}

// unquoteTests: what JSON.parse reads from a literal that Node decoded
// as UTF-8, in WTF-8. Before internal/jsontext, socketio's unquote kept
// ill-formed raw bytes as they were (rows marked "socketio differed").
var unquoteTests = []struct {
	name, lit, want string
}{
	{"plain", `"plain"`, "plain"},
	{"empty", `""`, ""},
	{"simple escapes", `"a\"b\\c\/d\b\f\n\r\t"`, "a\"b\\c/d\b\f\n\r\t"},
	{"\\u escapes", `"\u00e9\u20AC\u0000"`, "é€\x00"},
	{"escaped pair", `"\ud83d\ude00"`, "😀"},
	{"lone high escape", `"\ud800"`, "\xed\xa0\x80"},
	{"lone low escape", `"\udc00x"`, "\xed\xb0\x80x"},
	{"high then not a low", `"\ud800\u0041"`, "\xed\xa0\x80A"},
	{"two highs", `"\ud800\ud800"`, "\xed\xa0\x80\xed\xa0\x80"},
	{"low then high", `"\ude00\ud83d"`, "\xed\xb8\x80\xed\xa0\xbd"},
	{"raw non-ASCII", `"é😀"`, "é😀"},
	{"raw stray byte (socketio differed)", "\"a\xffb\"", "a\uFFFDb"},
	{"raw truncated 4-byte (socketio differed)", "\"\xf0\x9f\x98\"", "\uFFFD"},
	{"raw surrogate bytes: three stray bytes (socketio differed)", "\"\xed\xa0\x80\"", "\uFFFD\uFFFD\uFFFD"},
	{"raw stray byte among escapes (socketio differed)", "\"\\n\xe2\x82\\t\"", "\n\uFFFD\t"},
}

func TestUnquote(t *testing.T) {
	for _, tt := range unquoteTests {
		got, ok := Unquote([]byte(tt.lit))
		if !ok || got != tt.want {
			t.Errorf("%s: Unquote(%s) = %q, %v; want %q", tt.name, tt.lit, got, ok, tt.want)
		}
	}
	for _, bad := range []string{`"\x"`, `"\u12"`, `"\`, `plain`, `"`, `"a"b"`, "\"\x01\"", `"a" `, ``} {
		if got, ok := Unquote([]byte(bad)); ok {
			t.Errorf("Unquote(%q) = %q, accepted", bad, got)
		}
	}
}

func TestUnquoteTableIsNode(t *testing.T) {
	cases := make([]nodeCase, len(unquoteTests))
	for i, tt := range unquoteTests {
		cases[i] = nodeCase{Op: "parse", Hex: hexOf(tt.lit)}
	}
	for i, got := range askNode(t, cases) {
		if tt := unquoteTests[i]; got != hexOf(tt.want) {
			t.Errorf("%s: node reads %s as %q, the table %q", tt.name, tt.lit, unhex(t, got), tt.want)
		}
	}
}

// jsStringTests: bytes read as a JavaScript string, as
// buf.toString("utf8") does, WTF-8 surrogates aside (kept, or joined
// into a pair's character).
var jsStringTests = []struct{ name, in, want string }{
	{"ascii", "abc", "abc"},
	{"stray bytes", "\xff\xfeA", "\uFFFD\uFFFDA"},
	{"truncated 3-byte", "\xe2\x82A", "\uFFFDA"},
	{"overlong", "\xc0\x80", "\uFFFD\uFFFD"},
	{"beyond U+10FFFF", "\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"truncated 4-byte", "\xf0\x90\x80A", "\uFFFDA"},
	{"truncated surrogate", "\xed\xa0A", "\uFFFD\uFFFDA"},
}

func TestJSString(t *testing.T) {
	for _, tt := range jsStringTests {
		if got := JSString([]byte(tt.in)); got != tt.want {
			t.Errorf("%s: JSString(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
	for in, want := range map[string]string{
		"\xed\xa0\x80x":            "\xed\xa0\x80x",
		"\xed\xa0\xbd\xed\xb8\x80": "😀",
		"\xed\xb8\x80\xed\xa0\xbd": "\xed\xb8\x80\xed\xa0\xbd",
	} {
		if got := JSString([]byte(in)); got != want {
			t.Errorf("JSString(%q) = %q, want %q (WTF-8)", in, got, want)
		}
		if !ValidWTF8([]byte(want)) || ValidWTF8([]byte("\xff")) || ValidWTF8([]byte("\xed\xa0\xbd\xed\xb8\x80")) {
			t.Errorf("ValidWTF8 wrong about %q", want)
		}
	}
}

// TestJSStringTableIsNode checks jsStringTests against Node's
// buf.toString("utf8") and notepack.io's reading of a msgpack str (the
// Redis adapter's and socket.io-msgpack-parser's).
func TestJSStringTableIsNode(t *testing.T) {
	var cases []nodeCase
	for _, tt := range jsStringTests {
		cases = append(cases, nodeCase{Op: "string", Hex: hexOf(tt.in)}, nodeCase{Op: "msgpack", Hex: hexOf(tt.in)})
	}
	answers := askNode(t, cases)
	for i, tt := range jsStringTests {
		if got := answers[2*i]; got != hexOf(tt.want) {
			t.Errorf("%s: node reads %q as %q, the table %q", tt.name, tt.in, unhex(t, got), tt.want)
		}
		switch got := answers[2*i+1]; {
		case got == "no notepack.io":
			if os.Getenv("CI") == "true" {
				t.Fatalf("missing prerequisite: node_modules/notepack.io (scripts/setup.sh --test installs it)")
			}
			t.Logf("node_modules/notepack.io missing: notepack.io not checked")
			return
		case got != hexOf(tt.want):
			t.Errorf("%s: notepack.io reads %q as %q, the table %q", tt.name, tt.in, unhex(t, got), tt.want)
		}
	}
}

// FuzzQuote: AppendQuote writes valid JSON in valid UTF-8 for any input;
// for valid UTF-8, encoding/json reads back the string; for any input,
// Unquote reads back the string as a JavaScript string (AppendJSString).
func FuzzQuote(f *testing.F) {
	for _, tt := range quoteTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := AppendQuote(nil, s)
		if !json.Valid(q) || Valid(q) != nil || !utf8.Valid(q) {
			t.Fatalf("AppendQuote(%q) = %q: not valid JSON in UTF-8", s, q)
		}
		if bq := AppendQuote(nil, []byte(s)); string(bq) != string(q) {
			t.Fatalf("AppendQuote(%q): string %q, []byte %q", s, q, bq)
		}
		if utf8.ValidString(s) {
			var std string
			if err := json.Unmarshal(q, &std); err != nil || std != s {
				t.Fatalf("AppendQuote(%q) = %s; encoding/json reads %q, %v", s, q, std, err)
			}
		}
		u, ok := Unquote(q)
		if want := JSString([]byte(s)); !ok || u != want {
			t.Fatalf("Unquote(AppendQuote(%q) = %s) = %q, %v; want %q", s, q, u, ok, want)
		}
		if !ValidWTF8([]byte(u)) {
			t.Fatalf("Unquote(%s) = %q: not WTF-8", q, u)
		}
	})
}

// decodeOracle reads b as UTF-8 the slow way, by Unicode's definition:
// a valid sequence as is; otherwise U+FFFD for the longest prefix of a
// valid sequence found there (at least one byte).
func decodeOracle(b []byte) string {
	var out []byte
	for i := 0; i < len(b); {
		if r, size := utf8.DecodeRune(b[i:]); r != utf8.RuneError || size > 1 {
			out = append(out, b[i:i+size]...)
			i += size
			continue
		}
		k := 1
		for n := 3; n > 1; n-- {
			if i+n <= len(b) && prefixOfValid(b[i:i+n]) {
				k = n
				break
			}
		}
		out = utf8.AppendRune(out, utf8.RuneError)
		i += k
	}
	return string(out)
}

// prefixOfValid reports whether some valid UTF-8 sequence starts with p:
// the second byte of a sequence is the only one whose range varies.
func prefixOfValid(p []byte) bool {
	for _, second := range []byte{0x80, 0x90, 0xA0} {
		for total := len(p) + 1; total <= 4; total++ {
			seq := append([]byte(nil), p...)
			for len(seq) < total {
				if len(seq) == 1 {
					seq = append(seq, second)
				} else {
					seq = append(seq, 0x80)
				}
			}
			if r, size := utf8.DecodeRune(seq); (r != utf8.RuneError || size > 1) && size == len(seq) {
				return true
			}
		}
	}
	return false
}

// hasWTF8Surrogate reports whether b holds ED A0..BF xx, which the
// package reads as a surrogate.
func hasWTF8Surrogate(b []byte) bool {
	for i := range b {
		if _, ok := surrogateAt(b, i); ok {
			return true
		}
	}
	return false
}

// FuzzJSString: ill-formed bytes read as U+FFFD per maximal subpart, as a
// slow decoder written from Unicode's definition reads them.
func FuzzJSString(f *testing.F) {
	for _, tt := range jsStringTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range quoteTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := JSString(b)
		if !ValidWTF8([]byte(got)) {
			t.Fatalf("JSString(%q) = %q: not WTF-8", b, got)
		}
		if hasWTF8Surrogate(b) {
			return
		}
		if want := decodeOracle(b); got != want {
			t.Fatalf("JSString(%q) = %q, want %q", b, got, want)
		}
	})
}

// utf8Tests: bytes as Node's buf.toString("utf8") decodes them, WTF-8
// surrogates included (ill-formed: three U+FFFD).
var utf8Tests = []struct{ name, in, want string }{
	{"ascii", "abc", "abc"},
	{"valid", "é😀€", "é😀€"},
	{"stray bytes", "\xff\xfeA", "\uFFFD\uFFFDA"},
	{"truncated 3-byte", "\xe2\x82A", "\uFFFDA"},
	{"truncated 4-byte at the end", "4\xf0\x9f\x98", "4\uFFFD"},
	{"overlong", "\xc0\x80\xe0\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"beyond U+10FFFF", "\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"lone surrogate", "\xed\xa0\x80x", "\uFFFD\uFFFD\uFFFDx"},
	{"surrogate pair", "\xed\xa0\xbd\xed\xb8\x80", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"lead then lead", "\xe2\xe2\x82\xac", "\uFFFD€"},
}

func TestAppendUTF8(t *testing.T) {
	for _, tt := range utf8Tests {
		if got := string(AppendUTF8(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("%s: AppendUTF8(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestAppendUTF8TableIsNode checks utf8Tests against Node's
// buf.toString("utf8").
func TestAppendUTF8TableIsNode(t *testing.T) {
	cases := make([]nodeCase, len(utf8Tests))
	for i, tt := range utf8Tests {
		cases[i] = nodeCase{Op: "string", Hex: hexOf(tt.in)}
	}
	for i, got := range askNode(t, cases) {
		if tt := utf8Tests[i]; got != hexOf(tt.want) {
			t.Errorf("%s: node reads %q as %q, the table %q", tt.name, tt.in, unhex(t, got), tt.want)
		}
	}
}

// FuzzAppendUTF8: valid UTF-8 out for any input, the input itself when it
// is valid, and what AppendJSString reads when it holds no WTF-8 surrogate
// (the one place the two differ).
func FuzzAppendUTF8(f *testing.F) {
	for _, tt := range utf8Tests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out := AppendUTF8(nil, b)
		if !utf8.Valid(out) {
			t.Fatalf("AppendUTF8(%q) = %q: not UTF-8", b, out)
		}
		if utf8.Valid(b) && !bytes.Equal(out, b) {
			t.Fatalf("AppendUTF8(%q) = %q: changed valid UTF-8", b, out)
		}
		hasSurrogate := false
		for i := 0; i+1 < len(b); i++ {
			if b[i] == 0xED && b[i+1] >= 0xA0 && b[i+1] <= 0xBF {
				hasSurrogate = true
			}
		}
		if js := AppendJSString(nil, b); !hasSurrogate && !bytes.Equal(out, js) {
			t.Fatalf("AppendUTF8(%q) = %q, AppendJSString %q", b, out, js)
		}
	})
}
