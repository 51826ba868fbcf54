package jsontext

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// validTests: whether JSON.parse accepts the text once Node has decoded it
// as UTF-8 (TestValidTableIsNode asks node). The scanner keeps the bytes:
// ill-formed UTF-8 inside a string is accepted, as Node accepts the
// U+FFFD it reads there.
var validTests = []struct {
	in    string
	valid bool
}{
	{`0`, true}, {`-0`, true}, {`1.5e+3`, true}, {`1E-2`, true}, {`-12.50`, true},
	{`123456789012345678901234567890`, true}, {`1e400`, true},
	{`"a"`, true}, {`""`, true}, {`true`, true}, {`false`, true}, {`null`, true},
	{`[]`, true}, {`{}`, true}, {" \t\n\r[1 , 2]\r\n\t ", true},
	{`{"a":[{"b":null}],"a":2}`, true}, {`[[[[]]]]`, true},
	{`"\u00e9\uD83D\ude00\ud800"`, true}, {`"\/\b\f\n\r\t\"\\"`, true},
	{"\"a\x7fb\u2028\"", true}, {"\"\xff\xed\xa0\x80\"", true},
	{``, false}, {` `, false}, {`01`, false}, {`-`, false}, {`-a`, false}, {`1.`, false},
	{`.5`, false}, {`+1`, false}, {`1e`, false}, {`1e+`, false}, {`0x10`, false},
	{`1_000`, false}, {`NaN`, false}, {`Infinity`, false}, {`tru`, false}, {`nul`, false},
	{`True`, false}, {`[1,]`, false}, {`[,1]`, false}, {`[1 2]`, false}, {`[1`, false},
	{`[1]]`, false}, {`[1] [2]`, false}, {`[1]x`, false}, {`{"a"}`, false},
	{`{"a":1,}`, false}, {`{a:1}`, false}, {`{"a":1 "b":2}`, false}, {`{1:2}`, false},
	{`'a'`, false}, {`"\x"`, false}, {`"\u12"`, false}, {`"\u12g4"`, false}, {`"\U0041"`, false},
	{"\"a\nb\"", false}, {"\"\x00\"", false}, {"\"\x1f\"", false}, {`"abc`, false}, {`"\`, false},
	{"[1]\v", false}, {"[1]\f", false}, {"[1]\u00a0", false}, {"\ufeff[1]", false},
	{"[1]\xff", false}, {`/**/1`, false},
}

func TestValid(t *testing.T) {
	for _, tt := range validTests {
		if err := Valid([]byte(tt.in)); (err == nil) != tt.valid {
			t.Errorf("Valid(%q) = %v, want valid %v", tt.in, err, tt.valid)
		}
		if std := json.Valid([]byte(tt.in)); std != tt.valid {
			t.Errorf("encoding/json.Valid(%q) = %v: the table is wrong", tt.in, std)
		}
		if _, err := Count([]byte(tt.in), nil, nil); (err == nil) != tt.valid {
			t.Errorf("Count(%q): %v, want valid %v", tt.in, err, tt.valid)
		}
	}
}

func TestValidTableIsNode(t *testing.T) {
	cases := make([]nodeCase, len(validTests))
	for i, tt := range validTests {
		cases[i] = nodeCase{Op: "valid", Hex: hexOf(tt.in)}
	}
	for i, got := range askNode(t, cases) {
		if tt := validTests[i]; got != map[bool]string{true: "true", false: "false"}[tt.valid] {
			t.Errorf("JSON.parse(%q): node says valid %s, the table %v", tt.in, got, tt.valid)
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
		{` [ "x" , {"a" : [1, 2]} ,null,-1.5e3 ] `, []string{`"x"`, `{"a" : [1, 2]}`, `null`, `-1.5e3`}, nil},
		{`{}`, nil, ErrNotArray},
		{`"x"`, nil, ErrNotArray},
		{``, nil, ErrNotArray},
		{`[1,]`, nil, ErrSyntax},
		{`[1`, nil, ErrSyntax},
		{`[1] x`, nil, ErrSyntax},
	}
	for _, tt := range tests {
		got, err := SplitArray([]byte(tt.in))
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("SplitArray(%q) error %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		var gs []string
		for _, g := range got {
			gs = append(gs, string(g))
		}
		if !slices.Equal(gs, tt.want) {
			t.Errorf("SplitArray(%q) = %q, want %q", tt.in, gs, tt.want)
		}
	}
}

// placeholder takes {"_placeholder":true,"num":0} whole, as
// internal/notepack does.
func placeholder(b []byte, i int) (int, bool) {
	const p = `{"_placeholder":true,"num":0}`
	if bytes.HasPrefix(b[i:], []byte(p)) {
		return i + len(p), true
	}
	return 0, false
}

func TestCount(t *testing.T) {
	tests := []struct {
		in   string
		leaf func([]byte, int) (int, bool)
		want []int32
	}{
		{`1`, nil, nil},
		{`[]`, nil, []int32{0}},
		{`[1,[2,3],{"a":{},"b":[]},"x"]`, nil, []int32{4, 2, 2, 0, 0}},
		{`{"a":{"b":{"c":[1,2,3]}}}`, nil, []int32{1, 1, 1, 3}},
		{`[{"_placeholder":true,"num":0},{"x":1}]`, nil, []int32{2, 2, 1}},
		{`[{"_placeholder":true,"num":0},{"x":1}]`, placeholder, []int32{2, 1}},
		{`{"_placeholder":true,"num":0}`, placeholder, nil},
	}
	for _, tt := range tests {
		got, err := Count([]byte(tt.in), []int32{-1}, tt.leaf)
		if err != nil || !slices.Equal(got, append([]int32{-1}, tt.want...)) {
			t.Errorf("Count(%s) = %v, %v; want [-1 %v]", tt.in, got, err, tt.want)
		}
	}
}

func TestMaxDepth(t *testing.T) {
	nest := func(n int) []byte { return []byte(strings.Repeat("[", n) + strings.Repeat("]", n)) }
	objs := func(n int) []byte { return []byte(strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)) }
	for name, f := range map[string]func([]byte) error{
		"Valid":      Valid,
		"SplitArray": func(b []byte) error { _, err := SplitArray(b); return err },
		"Count":      func(b []byte) error { _, err := Count(b, nil, nil); return err },
		"SkipValue":  func(b []byte) error { _, err := SkipValue(b, 0); return err },
	} {
		if err := f(nest(MaxDepth)); err != nil {
			t.Errorf("%s: %d levels of arrays: %v", name, MaxDepth, err)
		}
		if err := f(nest(MaxDepth + 1)); !errors.Is(err, ErrTooDeep) {
			t.Errorf("%s: %d levels of arrays: %v, want ErrTooDeep", name, MaxDepth+1, err)
		}
		if name == "SplitArray" {
			continue
		}
		if err := f(objs(MaxDepth)); err != nil {
			t.Errorf("%s: %d levels of objects: %v", name, MaxDepth, err)
		}
		if err := f(objs(MaxDepth + 1)); !errors.Is(err, ErrTooDeep) {
			t.Errorf("%s: %d levels of objects: %v, want ErrTooDeep", name, MaxDepth+1, err)
		}
	}
	wide := []byte("[" + strings.Repeat("[1],", 10000) + "[1]]")
	if err := Valid(wide); err != nil {
		t.Errorf("10001 siblings: %v", err)
	}
}

// stdCounts counts the elements and members of each container of valid
// JSON with encoding/json's tokenizer.
func stdCounts(b []byte) ([]int32, error) {
	type frame struct {
		idx    int
		tokens int32
		object bool
	}
	var counts []int32
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return counts, nil
		}
		if err != nil {
			return nil, err
		}
		if d, ok := tok.(json.Delim); ok && (d == ']' || d == '}') {
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if f.object {
				f.tokens /= 2
			}
			counts[f.idx] = f.tokens
			continue
		}
		if len(stack) > 0 {
			stack[len(stack)-1].tokens++
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, frame{idx: len(counts), object: d == '{'})
			counts = append(counts, 0)
		}
	}
}

// FuzzScan: the scanner against encoding/json (MaxDepth aside): Valid
// against json.Valid, SplitArray against json.Unmarshal into
// []json.RawMessage, Count against encoding/json's tokens.
func FuzzScan(f *testing.F) {
	for _, tt := range validTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Valid(b)
		if errors.Is(err, ErrTooDeep) {
			return
		}
		if want := json.Valid(b); (err == nil) != want {
			t.Fatalf("Valid(%q) = %v, encoding/json.Valid = %v", b, err, want)
		}
		counts, cerr := Count(b, nil, nil)
		if (cerr == nil) != (err == nil) {
			t.Fatalf("Count(%q): %v, Valid: %v", b, cerr, err)
		}
		if err == nil {
			want, serr := stdCounts(b)
			if serr != nil || !slices.Equal(counts, want) {
				t.Fatalf("Count(%q) = %v, encoding/json %v (%v)", b, counts, want, serr)
			}
			if end, err := SkipValue(b, SkipSpace(b, 0)); err != nil || SkipSpace(b, end) != len(b) {
				t.Fatalf("SkipValue(%q) = %d, %v", b, end, err)
			}
		}
		elems, err := SplitArray(b)
		var std []json.RawMessage
		stdErr := json.Unmarshal(b, &std)
		switch {
		case err == nil && stdErr != nil:
			t.Fatalf("SplitArray(%q) accepted, encoding/json: %v", b, stdErr)
		case err == nil:
			if len(elems) != len(std) {
				t.Fatalf("SplitArray(%q) = %d elements, encoding/json %d", b, len(elems), len(std))
			}
			for i := range elems {
				if !bytes.Equal(elems[i], bytes.TrimSpace(std[i])) {
					t.Fatalf("element %d = %q, encoding/json %q", i, elems[i], std[i])
				}
			}
		case stdErr == nil && std != nil && !errors.Is(err, ErrTooDeep):
			t.Fatalf("SplitArray(%q): %v, encoding/json accepts it", b, err)
		}
	})
}
