package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
)

// checkCanonical fails unless a is in the form canonicalArg promises: its
// placeholders written {"_placeholder":true,"num":i}, numbered 0, 1, … in
// order of appearance, one per attachment.
func checkCanonical(tb testing.TB, a Arg) {
	tb.Helper()
	rest := []byte(a.JSON)
	n := 0
	for {
		i := bytes.Index(rest, []byte(placeholderPrefix))
		if i < 0 {
			break
		}
		rest = rest[i+len(placeholderPrefix):]
		want := strconv.Itoa(n) + "}"
		if !bytes.HasPrefix(rest, []byte(want)) {
			tb.Fatalf("placeholder %d of %s is not numbered %d", n, a.JSON, n)
		}
		n++
	}
	if n != len(a.Attachments) {
		tb.Fatalf("%s has %d placeholders and %d attachments", a.JSON, n, len(a.Attachments))
	}
}

// reconstruct decodes a as Node's reconstructPacket would, with every
// attachment shown as {"$bin": its text}.
func reconstruct(a Arg) (any, error) {
	// Numbers as json.Number: JSON.parse takes 1e400 (Infinity), which
	// encoding/json refuses to put in a float64.
	dec := json.NewDecoder(bytes.NewReader(a.JSON))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var walk func(any) (any, error)
	walk = func(x any) (any, error) {
		switch t := x.(type) {
		case []any:
			for i := range t {
				var err error
				if t[i], err = walk(t[i]); err != nil {
					return nil, err
				}
			}
		case map[string]any:
			if t["_placeholder"] == true {
				num, ok := t["num"].(json.Number)
				n, err := strconv.ParseFloat(string(num), 64)
				if !ok || err != nil || n < 0 || n != math.Trunc(n) || n >= float64(len(a.Attachments)) {
					return nil, errors.New("illegal attachments")
				}
				return map[string]any{"$bin": string(a.Attachments[int(n)])}, nil
			}
			for k := range t {
				var err error
				if t[k], err = walk(t[k]); err != nil {
					return nil, err
				}
			}
		}
		return x, nil
	}
	return walk(v)
}

// TestCanonicalArg checks canonicalArg against Node's reconstructPacket
// (socket.io-parser 4.2.7) on the same argument and attachments b0, b1…:
// want is what Node rebuilds, with {"$bin":"bN"} for attachment N, or ""
// when Node throws "illegal attachments".
func TestCanonicalArg(t *testing.T) {
	tests := []struct {
		in    string
		nbins int
		want  string
		node  string // Node's outcome when it differs
	}{
		{`{"_placeholder":true,"num":0}`, 1, `{"$bin":"b0"}`, ""},
		{`{"num":0,"_placeholder":true}`, 1, `{"$bin":"b0"}`, ""},
		{`{"\u005fplaceholder":true,"n\u0075m":0}`, 1, `{"$bin":"b0"}`, ""},
		{`{ "_placeholder" : true , "num" : 0 }`, 1, `{"$bin":"b0"}`, ""},
		{`{"_placeholder":true,"num":1.0}`, 2, `{"$bin":"b1"}`, ""},
		{`{"_placeholder":true,"num":1e0}`, 2, `{"$bin":"b1"}`, ""},
		{`{"_placeholder":true,"num":-0}`, 1, `{"$bin":"b0"}`, ""},
		{`{"_placeholder":true,"num":0.5}`, 1, ``, "undefined in place of the placeholder"},
		{`{"_placeholder":true,"num":"0"}`, 1, ``, ""},
		{`{"_placeholder":true,"num":1}`, 1, ``, ""},
		{`{"_placeholder":true,"num":-1}`, 1, ``, ""},
		{`{"_placeholder":true}`, 1, ``, ""},
		{`{"_placeholder":true,"num":null}`, 1, ``, ""},
		{`{"_placeholder":true,"num":1e400}`, 1, ``, ""},
		{`{"_placeholder":true,"num":0}`, 0, ``, ""},
		{`{"_placeholder":"true","num":0}`, 1, `{"_placeholder":"true","num":0}`, ""},
		{`{"_placeholder":true,"_placeholder":false,"num":0}`, 1, `{"_placeholder":false,"num":0}`, ""},
		{`{"_placeholder":false,"_placeholder":true,"num":0}`, 1, `{"$bin":"b0"}`, ""},
		{`{"_placeholder":true,"num":5,"num":0}`, 1, `{"$bin":"b0"}`, ""},
		{`{"_placeholder":true,"num":0,"num":"x"}`, 1, ``, ""},
		{`[{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]`, 1, `[{"$bin":"b0"},{"$bin":"b0"}]`, ""},
		{`{"_placeholder":true,"num":0,"extra":{"a":1}}`, 1, `{"$bin":"b0"}`, ""},
		{`{"num":{"_placeholder":true,"num":0}}`, 1, `{"num":{"$bin":"b0"}}`, ""},
		{`{"num":{"_placeholder":true,"num":3}}`, 1, ``, ""},
		{`{"_placeholder":{"_placeholder":true,"num":0}}`, 1, `{"_placeholder":{"$bin":"b0"}}`, ""},
		{`{"num":[{"_placeholder":true,"num":0}],"_placeholder":false}`, 1, `{"num":[{"$bin":"b0"}],"_placeholder":false}`, ""},
		{`{"_placeholder":true,"num":0,"x":{"_placeholder":true,"num":9}}`, 1, `{"$bin":"b0"}`, ""},
		{`[1,"{\"_placeholder\":true,\"num\":0}"]`, 1, `[1,"{\"_placeholder\":true,\"num\":0}"]`, ""},
		{`{"a":[{"b":{"_placeholder":true,"num":1}}],"c":{"_placeholder":true,"num":0}}`, 2, `{"a":[{"b":{"$bin":"b1"}}],"c":{"$bin":"b0"}}`, ""},
		{`{"a":{"_placeholder":true,"num":0},"num":{"_placeholder":true,"num":0}}`, 1, `{"a":{"$bin":"b0"},"num":{"$bin":"b0"}}`, ""},
		{`[[[{"_placeholder":true,"num":2}]],{"_placeholder":true,"num":0}]`, 3, `[[[{"$bin":"b2"}]],{"$bin":"b0"}]`, ""},
		{`"plain"`, 0, `"plain"`, ""},
		{`12`, 2, `12`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var bins [][]byte
			for i := range tt.nbins {
				bins = append(bins, fmt.Appendf(nil, "b%d", i))
			}
			a, err := canonicalArg([]byte(tt.in), bins)
			if tt.want == "" {
				if !errors.Is(err, errIllegalAttachments) {
					t.Fatalf("canonicalArg = %s %q, %v; want illegal attachments", a.JSON, a.Attachments, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("canonicalArg: %v", err)
			}
			checkCanonical(t, a)
			got, err := reconstruct(a)
			if err != nil {
				t.Fatalf("canonicalArg = %s %q, which does not reconstruct: %v", a.JSON, a.Attachments, err)
			}
			var want any
			_ = json.Unmarshal([]byte(tt.want), &want)
			if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
				t.Errorf("canonicalArg = %s %q, reconstructed %v, want %v", a.JSON, a.Attachments, g, w)
			}
			if len(a.Attachments) == 0 && string(a.JSON) != tt.in {
				t.Errorf("an argument without placeholders changed: %s", a.JSON)
			}
		})
	}
}

func TestCanonicalArgKeepsBytes(t *testing.T) {
	in := `{ "z" : 1.50, "a":"\u00e9",  "p":{"num":0,"_placeholder":true,"x":1}, "q" : [ {"_placeholder":true,"num":1} ] }`
	a, err := canonicalArg([]byte(in), [][]byte{[]byte("zero"), []byte("one")})
	if err != nil {
		t.Fatal(err)
	}
	want := `{ "z" : 1.50, "a":"\u00e9",  "p":{"_placeholder":true,"num":0}, "q" : [ {"_placeholder":true,"num":1} ] }`
	if string(a.JSON) != want || fmt.Sprintf("%s", a.Attachments) != "[zero one]" {
		t.Errorf("canonicalArg = %s %s\nwant %s [zero one]", a.JSON, a.Attachments, want)
	}
}

func TestIllegalAttachmentsMessage(t *testing.T) {
	_, err := canonicalArg([]byte(`{"_placeholder":true,"num":"7"}`), [][]byte{{1}})
	if err == nil || err.Error() != "illegal attachments: placeholder num 7 with 1 attachments" {
		t.Errorf("error = %v", err)
	}
}

func TestAppendToRenumbers(t *testing.T) {
	a := Arg{JSON: []byte(`[{"_placeholder":true,"num":0},"x",{"k":{"_placeholder":true,"num":1}}]`), Attachments: [][]byte{{0xa}, {0xb}}}
	tests := []struct {
		name      string
		before    [][]byte
		wantJSON  string
		wantCount int
	}{
		{"first", nil, string(a.JSON), 2},
		{"after one", [][]byte{{1}}, `[{"_placeholder":true,"num":1},"x",{"k":{"_placeholder":true,"num":2}}]`, 3},
		{"after ten", make([][]byte, 10), `[{"_placeholder":true,"num":10},"x",{"k":{"_placeholder":true,"num":11}}]`, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, bins := a.appendTo([]byte("prefix:"), tt.before)
			if got := strings.TrimPrefix(string(dst), "prefix:"); got != tt.wantJSON {
				t.Errorf("JSON %s, want %s", got, tt.wantJSON)
			}
			if len(bins) != tt.wantCount || bins[len(bins)-1][0] != 0xb {
				t.Errorf("attachments %v", bins)
			}
		})
	}
	plain := Arg{JSON: []byte(`"s"`)}
	if dst, bins := plain.appendTo(nil, [][]byte{{1}}); string(dst) != `"s"` || len(bins) != 1 {
		t.Errorf("plain arg: %s %v", dst, bins)
	}
}

func TestToArg(t *testing.T) {
	type point struct {
		X, Y int
		Tag  string `json:"tag"`
	}
	tests := []struct {
		name     string
		in       any
		wantJSON string
		wantBins []string
	}{
		{"nil", nil, `null`, nil},
		{"true", true, `true`, nil},
		{"int", -42, `-42`, nil},
		{"int64", int64(math.MaxInt64), `9223372036854775807`, nil},
		{"uint64", uint64(math.MaxUint64), `18446744073709551615`, nil},
		{"int32", int32(-7), `-7`, nil},
		{"uint32", uint32(7), `7`, nil},
		{"string", "hello", `"hello"`, nil},
		{"html not escaped", "<b>&amp;</b>", `"<b>&amp;</b>"`, nil},
		{"quotes and controls", "a\"b\\c\n\t\r\b\f\x01\x1f", `"a\"b\\c\n\t\r\b\f\u0001\u001f"`, nil},
		{"DEL and U+2028 raw, as JSON.stringify", "\x7f\u2028\u2029", "\"\x7f\u2028\u2029\"", nil},
		{"non-ascii raw", "é😀", `"é😀"`, nil},
		{"lone high surrogate (WTF-8)", "\xed\xa0\x80x", `"\ud800x"`, nil},
		{"lone low surrogate (WTF-8)", "\xed\xbf\xbf", `"\udfff"`, nil},
		{"invalid byte as U+FFFD, as Node reads it", "a\xffb", "\"a\uFFFDb\"", nil},
		{"float integral", 1.0, `1`, nil},
		{"float", 0.1, `0.1`, nil},
		{"float big", 1e21, `1e+21`, nil},
		{"float below 1e21", 1e20, `100000000000000000000`, nil},
		{"float small", 1.5e-7, `1.5e-7`, nil},
		{"float 1e-6", 0.000001, `0.000001`, nil},
		{"float subnormal", 5e-324, `5e-324`, nil},
		{"float negative zero", math.Copysign(0, -1), `0`, nil},
		{"float32 as JavaScript widens it", float32(0.1), `0.10000000149011612`, nil},
		{"NaN", math.NaN(), `null`, nil},
		{"+Inf", math.Inf(1), `null`, nil},
		{"-Inf", math.Inf(-1), `null`, nil},
		{"bytes", []byte{1, 2}, `{"_placeholder":true,"num":0}`, []string{"\x01\x02"}},
		{"raw JSON", json.RawMessage(` {"a": 1.50} `), ` {"a": 1.50} `, nil},
		{"Arg", Arg{JSON: []byte(`{"z":1,"a":2}`)}, `{"z":1,"a":2}`, nil},
		{"*Arg", &Arg{JSON: []byte(`[1]`)}, `[1]`, nil},
		{"binary Arg", Binary([]byte("x")), `{"_placeholder":true,"num":0}`, []string{"x"}},
		{"slice", []any{"a", 1, nil, []byte("b"), []any{[]byte("c")}}, `["a",1,null,{"_placeholder":true,"num":0},[{"_placeholder":true,"num":1}]]`, []string{"b", "c"}},
		{"map keys sorted", map[string]any{"b": 1, "a": "<", "c": []any{}}, `{"a":"<","b":1,"c":[]}`, nil},
		{"map with bytes", map[string]any{"z": []byte("z"), "a": []byte("a")}, `{"a":{"_placeholder":true,"num":0},"z":{"_placeholder":true,"num":1}}`, []string{"a", "z"}},
		{"map of args renumbered", map[string]any{"a": Binary([]byte("1")), "b": Binary([]byte("2"))}, `{"a":{"_placeholder":true,"num":0},"b":{"_placeholder":true,"num":1}}`, []string{"1", "2"}},
		{"NaN in a slice", []any{math.NaN()}, `[null]`, nil},
		{"NaN in a map", map[string]any{"x": math.NaN()}, `{"x":null}`, nil},
		{"surrogate in a map", map[string]any{"s": "\xed\xa0\x80"}, `{"s":"\ud800"}`, nil},
		{"U+2028 in a map", map[string]any{"s": "\u2028<"}, "{\"s\":\"\u2028<\"}", nil},
		{"key escaped", map[string]any{"a\"b": 1}, `{"a\"b":1}`, nil},
		{"struct with encoding/json, HTML not escaped", point{1, 2, "<&>"}, `{"X":1,"Y":2,"tag":"<&>"}`, nil},
		{"[]string", []string{"a", "<"}, `["a","<"]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ToArg(tt.in)
			if err != nil {
				t.Fatalf("ToArg(%#v): %v", tt.in, err)
			}
			var bins []string
			for _, b := range a.Attachments {
				bins = append(bins, string(b))
			}
			if string(a.JSON) != tt.wantJSON || fmt.Sprint(bins) != fmt.Sprint(tt.wantBins) {
				t.Errorf("ToArg(%#v) = %s %q, want %s %q", tt.in, a.JSON, bins, tt.wantJSON, tt.wantBins)
			}
			checkCanonical(t, a)
			if err := validValue(a.JSON); err != nil {
				t.Errorf("ToArg(%#v) = %s, not valid JSON: %v", tt.in, a.JSON, err)
			}
		})
	}
	for _, bad := range []any{json.RawMessage(`{`), json.RawMessage(``), make(chan int), map[string]any{"f": func() {}}} {
		if a, err := ToArg(bad); err == nil {
			t.Errorf("ToArg(%#v) = %s, want an error", bad, a.JSON)
		}
	}
}

func TestArgDecode(t *testing.T) {
	a := Arg{JSON: []byte(`{"n":1,"b":{"_placeholder":true,"num":0},"l":[{"_placeholder":true,"num":1}]}`), Attachments: [][]byte{[]byte("x"), []byte("y")}}
	var v any
	if err := a.Decode(&v); err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if string(m["b"].([]byte)) != "x" || string(m["l"].([]any)[0].([]byte)) != "y" || m["n"] != 1.0 {
		t.Errorf("Decode(*any) = %#v", v)
	}
	var b []byte
	if err := Binary([]byte("raw")).Decode(&b); err != nil || string(b) != "raw" {
		t.Errorf("Decode(*[]byte) = %q, %v", b, err)
	}
	if err := a.Decode(&b); err == nil {
		t.Error("Decode(*[]byte) of a non-binary argument succeeded")
	}
	var s struct{ N int }
	if err := a.Decode(&s); err != nil || s.N != 1 {
		t.Errorf("Decode(*struct) = %+v, %v", s, err)
	}
	if got, ok := Binary([]byte("q")).Bytes(); !ok || string(got) != "q" {
		t.Errorf("Bytes() = %q %v", got, ok)
	}
	if _, ok := a.Bytes(); ok {
		t.Error("Bytes() of an object succeeded")
	}
}

func TestArgSize(t *testing.T) {
	tests := []struct {
		a    Arg
		want int
	}{
		{Arg{JSON: []byte(`"hello"`)}, 7},
		{Binary(make([]byte, 100)), 100},
		{mustArg(t, []any{"ab", []byte("xyz"), []byte("12")}), len(`["ab",,]`) + 5},
	}
	for _, tt := range tests {
		if got := tt.a.Size(); got != tt.want {
			t.Errorf("Size(%s) = %d, want %d", tt.a.JSON, got, tt.want)
		}
	}
}

func TestArgMarshalJSON(t *testing.T) {
	b, err := json.Marshal(map[string]any{"a": Arg{JSON: []byte(`[1, 2]`)}, "n": Arg{}})
	if err != nil || string(b) != `{"a":[1,2],"n":null}` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
	if _, err := json.Marshal(Binary([]byte("x"))); err == nil {
		t.Error("Marshal of an Arg with attachments succeeded")
	}
}

// FuzzCanonicalArg rewrites the placeholders of arbitrary valid JSON: never
// a panic; the result is canonical, keeps everything but its
// placeholders, and reconstructs as Node would (or Node refuses it too).
func FuzzCanonicalArg(f *testing.F) {
	for _, s := range []string{
		`{"_placeholder":true,"num":0}`, `[{"num":1,"_placeholder":true},{"_placeholder":true,"num":0}]`,
		`{"num":{"_placeholder":true,"num":0}}`, `{"_placeholder":true,"num":0,"x":{"_placeholder":true,"num":9}}`,
		`{"\u005fplaceholder":true,"num":1.0}`, `{"_placeholder":false,"_placeholder":true,"num":0}`, `"x"`, `[1,[2,{}]]`,
	} {
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, b []byte, nbins uint8) {
		if validValue(b) != nil {
			return // canonicalArg gets what splitArray validated
		}
		b = bytes.TrimSpace(b) // and without surrounding whitespace
		bins := make([][]byte, nbins%(MaxAttachments+1))
		for i := range bins {
			bins[i] = fmt.Appendf(nil, "b%d", i)
		}
		a, err := canonicalArg(b, bins)
		want, wantErr := reconstruct(Arg{JSON: b, Attachments: bins})
		if err != nil {
			if !errors.Is(err, errIllegalAttachments) {
				t.Fatalf("canonicalArg(%s): %v", b, err)
			}
			if wantErr == nil && !fractionalNum(b) {
				t.Fatalf("canonicalArg(%s) refused what Node takes: %v", b, err)
			}
			return
		}
		checkCanonical(t, a)
		if err := validValue(a.JSON); err != nil {
			t.Fatalf("canonicalArg(%s) = %s: %v", b, a.JSON, err)
		}
		got, gotErr := reconstruct(a)
		if gotErr != nil || wantErr != nil {
			t.Fatalf("canonicalArg(%s) = %s %q: reconstructs with %v; Node's on the input: %v", b, a.JSON, a.Attachments, gotErr, wantErr)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("canonicalArg(%s) = %s %q: reconstructs as %v, want %v", b, a.JSON, a.Attachments, got, want)
		}
	})
}

// fractionalNum reports whether b may hold a placeholder with a num that
// is not an integer, which Node takes (undefined) and we refuse.
func fractionalNum(b []byte) bool {
	return bytes.Contains(b, []byte(".")) || bytes.ContainsAny(b, "eE")
}
