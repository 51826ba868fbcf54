package redisadapter

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/chatio/socketio-chat/internal/jsontext"
	"github.com/chatio/socketio-chat/internal/notepack"
	"github.com/chatio/socketio-chat/socketio"
)

// nodeTranscode is how Node turns arguments into msgpack and msgpack into
// what its clients receive (testdata/gen-node-transcode.mjs).
type nodeTranscode struct {
	Values []struct {
		Name       string
		Msgpack    string
		Client     nodeClient
		DecodeOnly bool
		NodeBug    bool
	}
	Raw []struct {
		Text    string
		Msgpack string
		Client  nodeClient
	}
	Msgpack []struct {
		Name   string
		Hex    string
		Client *nodeClient
		Wtf8   bool
		Error  bool
	}
}

// nodeClient is a packet as socket.io-parser writes it for a client.
type nodeClient struct {
	Text string
	Bins []string
}

func loadNodeTranscode(t *testing.T) *nodeTranscode {
	t.Helper()
	b, err := os.ReadFile("testdata/node-transcode.json")
	if err != nil {
		t.Fatal(err)
	}
	var f nodeTranscode
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// args splits a client packet (type, attachment count, JSON array) into
// its event and arguments, each with its own attachments.
func (c nodeClient) args(t *testing.T) (string, []socketio.Arg) {
	t.Helper()
	text := c.Text
	if text[0] == '5' {
		text = text[strings.IndexByte(text, '-')+1:]
	} else {
		text = text[1:]
	}
	bins := make([][]byte, len(c.Bins))
	for i, h := range c.Bins {
		bins[i], _ = hex.DecodeString(h)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal([]byte(text), &elems); err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	event, _ := jsonString(elems[0])
	var args []socketio.Arg
	for _, e := range elems[1:] {
		var a socketio.Arg
		rest := []byte(e)
		for {
			i := bytes.Index(rest, []byte(notepack.PlaceholderPrefix))
			if i < 0 {
				a.JSON = append(a.JSON, rest...)
				break
			}
			j := i + len(notepack.PlaceholderPrefix)
			k := j + bytes.IndexByte(rest[j:], '}')
			num, _ := strconv.Atoi(string(rest[j:k]))
			a.JSON = append(a.JSON, rest[:j]...)
			a.JSON = strconv.AppendInt(a.JSON, int64(len(a.Attachments)), 10)
			a.JSON = append(a.JSON, '}')
			a.Attachments = append(a.Attachments, bins[num])
			rest = rest[k+1:]
		}
		args = append(args, a)
	}
	return event, args
}

// encodeData is what a Go node publishes as the data of a broadcast.
func encodeData(event string, args []socketio.Arg) ([]byte, error) {
	var e encoder
	e.ArrayHeader(1 + len(args))
	e.String(event)
	for _, a := range args {
		if err := e.arg(a); err != nil {
			return nil, err
		}
	}
	return e.Buf, nil
}

// decodeData is what a Go node delivers for the data of a broadcast.
func decodeData(b []byte) (*socketio.BroadcastPacket, error) {
	d := newDecoder(b)
	p := &socketio.BroadcastPacket{}
	if err := d.data(p); err != nil {
		return nil, err
	}
	return p, d.End()
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Arguments as Node's clients write them are published as Node publishes
// them, and Node's msgpack is delivered as Node delivers it.
func TestTranscodeLikeNodeValues(t *testing.T) {
	for _, c := range loadNodeTranscode(t).Values {
		t.Run(c.Name, func(t *testing.T) {
			event, args := c.Client.args(t)
			if c.NodeBug {
				// notepack.io garbles this value; a Go node keeps it.
				for _, a := range args {
					roundTrip(t, string(a.JSON), a.Attachments...)
				}
				return
			}
			want := mustHex(t, c.Msgpack)
			p, err := decodeData(want)
			if err != nil {
				t.Fatal(err)
			}
			if p.Event != event {
				t.Errorf("event %q, want %q", p.Event, event)
			}
			checkArgs(t, p.Args, args)
			if c.DecodeOnly {
				return
			}
			got, err := encodeData(event, args)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoded\n got %.400x\nwant %.400x", got, want)
			}
		})
	}
}

// JSON as a client may write it (any key order, repeated keys, number
// spellings, escapes) is published as Node publishes what JSON.parse makes
// of it, and comes back as JSON.stringify writes that.
func TestTranscodeLikeNodeRawJSON(t *testing.T) {
	for _, c := range loadNodeTranscode(t).Raw {
		t.Run(c.Text, func(t *testing.T) {
			got, err := encodeData("m", []socketio.Arg{js(c.Text)})
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, c.Msgpack); !bytes.Equal(got, want) {
				t.Errorf("encoded\n got %x\nwant %x", got, want)
			}
			p, err := decodeData(got)
			if err != nil {
				t.Fatal(err)
			}
			_, args := c.Client.args(t)
			checkArgs(t, p.Args, args)
		})
	}
}

// msgpack from any node (undefined, repeated keys, numeric keys, floats,
// timestamps, extensions, ill-formed UTF-8) reaches clients as Node's
// clients get it, and what notepack.io refuses is refused.
func TestTranscodeLikeNodeMsgpack(t *testing.T) {
	for _, c := range loadNodeTranscode(t).Msgpack {
		t.Run(c.Name, func(t *testing.T) {
			in := append([]byte{0x92, 0xa1, 'm'}, mustHex(t, c.Hex)...)
			p, err := decodeData(in)
			if c.Error {
				if err == nil {
					t.Fatalf("accepted %s: %s", c.Hex, p.Args[0].JSON)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Wtf8 {
				return // see TestTranscodeWTF8
			}
			_, args := c.Client.args(t)
			checkArgs(t, p.Args, args)
		})
	}
}

// What notepack.io garbles (lone surrogates, integers beyond 64 bits)
// goes from Go to Go intact.
func TestTranscodeKeepsWhatNodeGarbles(t *testing.T) {
	for _, text := range []string{`"\ud800x"`, `"\udc00\ud800"`, `"a\udbff"`, `1e+21`, `-1e+21`, `18446744073709552000`, `-9223372036854778000`, `1.7976931348623157e+308`} {
		roundTrip(t, text)
	}
}

// Lone surrogates travel as WTF-8: Node reads them as U+FFFD, Go as they
// were sent.
func TestTranscodeWTF8(t *testing.T) {
	got, err := encodeData("m", []socketio.Arg{js(`"\ud800x\udc00"`)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x92, 0xa1, 'm', 0xa7, 0xed, 0xa0, 0x80, 'x', 0xed, 0xb0, 0x80}; !bytes.Equal(got, want) {
		t.Errorf("encoded %x, want %x", got, want)
	}
	// A high and a low surrogate in WTF-8 are one character, as in
	// JavaScript.
	p, err := decodeData([]byte{0x92, 0xa1, 'm', 0xa6, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.Args[0].JSON); got != `"😀"` {
		t.Errorf("pair = %s", got)
	}
}

// roundTrip checks that canonical JSON (JSON.stringify's) goes through
// msgpack and back byte for byte, attachments included.
func roundTrip(t *testing.T, text string, atts ...[]byte) {
	t.Helper()
	in := socketio.Arg{JSON: []byte(text), Attachments: atts}
	b, err := encodeData("ev\xed\xa0\x80", []socketio.Arg{in})
	if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	p, err := decodeData(b)
	if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	if p.Event != "ev\xed\xa0\x80" {
		t.Errorf("event %q", p.Event)
	}
	checkArgs(t, p.Args, []socketio.Arg{in})
}

// A message that goes Go → Redis → Go arrives byte for byte as sent, when
// the client sent what JSON.stringify writes.
func TestTranscodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		json string
		atts [][]byte
	}{
		{"lone surrogate", `"\ud800x"`, nil},
		{"surrogates everywhere", `{"\udfff":["\ud83d","😀","\ud83d\ud83d"],"k":"\u001f\"\\"}`, nil},
		{"key order", `{"1":0,"7":1,"4294967294":2,"z":3,"a":4,"01":5,"4294967295":6,"":7,"-1":8,"__proto__":9}`, nil},
		{"many keys", `{` + manyKeys(40) + `}`, nil},
		{"numbers", `[0,1,-1,127,128,-33,65536,4294967296,9007199254740992,1.5,0.1,1e-7,5e-7,1e+21,1.7976931348623157e+308,5e-324,-1e-300,123456789012,0.30000000000000004,100000000000000000000]`, nil},
		{"literals", `[true,false,null,"",{},[]]`, nil},
		{"nested binary", `{"a":[{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}}],"c":{"_placeholder":true,"num":2}}`,
			[][]byte{{1, 2}, {}, bytes.Repeat([]byte{7}, 70000)}},
		{"binary alone", `{"_placeholder":true,"num":0}`, [][]byte{{0, 255}}},
		{"placeholder text without attachments", `{"_placeholder":true,"num":0}`, nil},
		{"strings", `["é✓😀","` + "\u2028" + `","` + strings.Repeat("x", 70000) + `"]`, nil},
		{"deep", strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), nil},
		{"long array", "[" + strings.Repeat("1,", 70000) + "2]", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { roundTrip(t, tt.json, tt.atts...) })
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote("k" + strconv.Itoa((i*7)%n)))
		b.WriteString(":")
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}

func TestTranscodeRefusesBadJSON(t *testing.T) {
	for _, text := range []string{``, `{`, `[1,]`, `{"a"}`, `01`, `1.`, `"\x"`, "\"\x01\"", `nul`, `[1] 2`, `"\u12"`,
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)} {
		var e encoder
		if err := e.arg(js(text)); err == nil {
			t.Errorf("accepted %q: %x", text, e.Buf)
		}
		if len(e.Buf) != 0 {
			t.Errorf("%q: left %x behind", text, e.Buf)
		}
	}
}

// Numbers are written as JavaScript writes them.
func TestJSNumber(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {-1, "-1"}, {1.5, "1.5"}, {0.1, "0.1"},
		{1e21, "1e+21"}, {1e20, "100000000000000000000"}, {123456789e13, "1.23456789e+21"},
		{5e-7, "5e-7"}, {1e-6, "0.000001"}, {1.25e-6, "0.00000125"}, {1e-7, "1e-7"}, {1.5e-7, "1.5e-7"},
		{math.MaxFloat64, "1.7976931348623157e+308"}, {5e-324, "5e-324"}, {-1e-300, "-1e-300"},
		{math.Pow(2, 63), "9223372036854776000"}, {math.Pow(2, 64), "18446744073709552000"},
		{123e-20, "1.23e-18"}, {math.NaN(), "null"}, {math.Inf(1), "null"}, {1e15, "1000000000000000"},
		{999999999999999.9, "999999999999999.9"}, {0.000001234, "0.000001234"},
	}
	for _, tt := range tests {
		if got := string(notepack.AppendJSNumber(nil, tt.f)); got != tt.want {
			t.Errorf("%v: got %s, want %s", tt.f, got, tt.want)
		}
	}
	if got := jsNumberString(math.Inf(-1)); got != "-Infinity" {
		t.Errorf("-Inf = %s", got)
	}
}

// Strings read as Node reads UTF-8: U+FFFD for each maximal ill-formed
// subpart.
func TestJSString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", `"abc"`},
		{"\xff\xfeA", `"��A"`},
		{"\xe2\x82A", `"�A"`},
		{"\xc0\x80", `"��"`},
		{"\xf4\x90\x80\x80", `"����"`},
		{"\xf0\x90\x80A", `"�A"`},
		{"\xed\xa0\x80x", `"\ud800x"`},
		{"\xed\xa0\xbd\xed\xb8\x80", `"😀"`},
		{"\xed\xb8\x80\xed\xa0\xbd", `"\ude00\ud83d"`},
		{"\x00\x1f\"\\\u2028\x7f", `"\u0000\u001f\"\\` + "\u2028\x7f" + `"`},
	}
	for _, tt := range tests {
		if got := string(jsontext.AppendQuote(nil, tt.in)); got != tt.want {
			t.Errorf("%q: got %s, want %s", tt.in, got, tt.want)
		}
	}
}

// The encoder and decoder keep no state from one message to the next.
func TestTranscodeReuse(t *testing.T) {
	var e encoder
	for _, text := range []string{`{"b":1,"a":2,"b":3}`, `[1,{"x":[2]}]`, `{"1":1,"0":0}`} {
		e.Buf = e.Buf[:0]
		if err := e.arg(js(text)); err != nil {
			t.Fatal(err)
		}
		var fresh encoder
		_ = fresh.arg(js(text))
		if !bytes.Equal(e.Buf, fresh.Buf) {
			t.Errorf("%s: reused %x, fresh %x", text, e.Buf, fresh.Buf)
		}
	}
}

func BenchmarkEncodeBroadcast(b *testing.B) {
	p := &socketio.BroadcastPacket{Nsp: "/", Event: "chat message", ID: -1, Args: []socketio.Arg{
		js(`{"user":"ann","text":"Hello, world! How is everyone doing today?","ts":1700000000123,"tags":["a","b"]}`),
	}}
	var e encoder
	b.ReportAllocs()
	for b.Loop() {
		e.Buf = e.Buf[:0]
		if err := e.broadcast("abcdef", p); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(e.Buf)))
}

func BenchmarkDecodeBroadcast(b *testing.B) {
	p := &socketio.BroadcastPacket{Nsp: "/", Event: "chat message", ID: -1, Args: []socketio.Arg{
		js(`{"user":"ann","text":"Hello, world! How is everyone doing today?","ts":1700000000123,"tags":["a","b"]}`),
	}}
	var e encoder
	if err := e.broadcast("abcdef", p); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(e.Buf)))
	for b.Loop() {
		if _, err := newDecoder(e.Buf).broadcast("me"); err != nil {
			b.Fatal(err)
		}
	}
}
