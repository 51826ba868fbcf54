package engineio

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"
)

// pk is a packet as the tests write it.
func pk(typ byte, data string) packet { return packet{typ: typ, data: []byte(data)} }

func bin(typ byte, data string) packet { return packet{typ: typ, data: []byte(data), binary: true} }

// samePackets compares packets, an empty data equal to a nil one.
func samePackets(got, want []packet) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].typ != want[i].typ || got[i].binary != want[i].binary || !bytes.Equal(got[i].data, want[i].data) {
			return false
		}
	}
	return true
}

func fmtPackets(ps []packet) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		if p.binary {
			fmt.Fprintf(&b, "bin(%c,%q)", p.typ, p.data)
		} else {
			fmt.Fprintf(&b, "pk(%c,%q)", p.typ, p.data)
		}
	}
	return "[" + b.String() + "]"
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestDecodePayloadV4(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []packet
		wantErr bool
	}{
		{"one message", "4hello", []packet{pk('4', "hello")}, false},
		{"empty message", "4", []packet{pk('4', "")}, false},
		{"every type", "0\x1e1\x1e2\x1e3\x1e4x\x1e5\x1e6", []packet{pk('0', ""), pk('1', ""), pk('2', ""), pk('3', ""), pk('4', "x"), pk('5', ""), pk('6', "")}, false},
		{"ping probe", "2probe", []packet{pk('2', "probe")}, false},
		{"separator only in between", "4a\x1e4b\x1e4c", []packet{pk('4', "a"), pk('4', "b"), pk('4', "c")}, false},
		{"binary as b and base64", "b" + b64("\x00\x01\xff"), []packet{bin('4', "\x00\x01\xff")}, false},
		{"empty binary", "b", []packet{bin('4', "")}, false},
		{"text then binary", "4a\x1eb" + b64("xyz"), []packet{pk('4', "a"), bin('4', "xyz")}, false},
		{"utf-8 text", "4é😀", []packet{pk('4', "é😀")}, false},
		{"text may hold ':' and digits", "410:4x", []packet{pk('4', "10:4x")}, false},

		{"empty body", "", nil, true},
		{"unknown type", "7", nil, true},
		{"type not a digit", "x", nil, true},
		{"trailing separator", "4a\x1e", []packet{pk('4', "a")}, true},
		{"leading separator", "\x1e4a", nil, true},
		{"two separators", "4a\x1e\x1e4b", []packet{pk('4', "a")}, true},
		{"bad base64", "b!!!!", nil, true},
		{"base64 without padding", "b" + strings.TrimRight(b64("x"), "="), nil, true},
		{"error after good packets", "4a\x1e4b\x1e9", []packet{pk('4', "a"), pk('4', "b")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePayloadV4([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodePayloadV4(%q) error = %v, want error %v", tt.body, err, tt.wantErr)
			}
			if !samePackets(got, tt.want) {
				t.Errorf("decodePayloadV4(%q) = %s, want %s", tt.body, fmtPackets(got), fmtPackets(tt.want))
			}
		})
	}
}

func TestAppendPayloadV4(t *testing.T) {
	tests := []struct {
		name string
		msgs []Message
		want string
	}{
		{"one", []Message{TextMessage([]byte("4hi"))}, "4hi"},
		{"separated", []Message{pingMessage, TextMessage([]byte("4a")), noopMessage}, "2\x1e4a\x1e6"},
		{"binary", []Message{BinaryMessage([]byte{0, 1, 2}), closeMessage}, "bAAEC\x1e1"},
		{"empty binary", []Message{BinaryMessage(nil)}, "b"},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendPayloadV4(nil, tt.msgs)); got != tt.want {
				t.Errorf("appendPayloadV4 = %q, want %q", got, tt.want)
			}
		})
	}
}

// jsLen is the length of s in UTF-16 code units, as JavaScript counts.
func jsLen(s string) int { return len(utf16.Encode([]rune(s))) }

func TestDecodePayloadV3Text(t *testing.T) {
	emoji := "4😀" // two UTF-16 units for the emoji
	tests := []struct {
		name    string
		body    string
		want    []packet
		wantErr bool
	}{
		{"one", "6:4hello", []packet{pk('4', "hello")}, false},
		{"two", "2:4a3:2bc", []packet{pk('4', "a"), pk('2', "bc")}, false},
		{"emoji counts two units", fmt.Sprintf("%d:%s", jsLen(emoji), emoji), []packet{pk('4', "😀")}, false},
		{"two-byte and three-byte runes count one", "3:4é€", []packet{pk('4', "é€")}, false},
		{"escaped lone surrogate is six units", `7:4\ud800`, []packet{pk('4', `\ud800`)}, false},
		{"replacement character counts one", "2:4\uFFFD", []packet{pk('4', "\uFFFD")}, false},
		{"empty packet skipped", "0:2:4a", []packet{pk('4', "a")}, false},
		{"binary b4 base64 with right length", fmt.Sprintf("%d:b4%s", 2+len(b64("hi")), b64("hi")), []packet{bin('4', "hi")}, false},
		{"binary b of another type", fmt.Sprintf("%d:b2%s", 2+len(b64("p")), b64("p")), []packet{bin('2', "p")}, false},
		{"plus sign as Number() takes it", "+6:4hello", []packet{pk('4', "hello")}, false},

		{"empty body", "", nil, true},
		{"no colon", "64hello", nil, true},
		{"colon first", ":4hello", nil, true},
		{"length not a number", "x:4", nil, true},
		{"negative length", "-1:4", nil, true},
		{"length too long for the body", "7:4hello", nil, true},
		{"length cuts an emoji in half", fmt.Sprintf("%d:%s", jsLen(emoji)-1, emoji), nil, true},
		{"length in bytes, not units", fmt.Sprintf("%d:%s", len(emoji), emoji), nil, true},
		{"length with 21 digits", strings.Repeat("0", 20) + "1:4", nil, true},
		{"bad packet type", "1:9", nil, true},
		{"bad binary type", "3:b9A", nil, true},
		{"bad base64", "3:b4!", nil, true},
		{"good then bad", "2:4a2:9b", []packet{pk('4', "a")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePayloadV3Text([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodePayloadV3Text(%q) error = %v, want error %v", tt.body, err, tt.wantErr)
			}
			if !tt.wantErr && !samePackets(got, tt.want) {
				t.Errorf("decodePayloadV3Text(%q) = %s, want %s", tt.body, fmtPackets(got), fmtPackets(tt.want))
			}
		})
	}
}

func TestAppendPayloadV3Text(t *testing.T) {
	tests := []struct {
		name string
		msgs []Message
		want string
	}{
		{"ascii", []Message{TextMessage([]byte("4hello"))}, "6:4hello"},
		{"emoji", []Message{TextMessage([]byte("4😀!"))}, "4:4😀!"},
		{"accents", []Message{TextMessage([]byte("4é€"))}, "3:4é€"},
		// WTF-8 of a lone surrogate is not UTF-8: a decoder sees three
		// invalid bytes, three U+FFFD, three units.
		{"wtf-8 surrogate bytes", []Message{TextMessage([]byte("4\xed\xa0\x80"))}, "4:4\xed\xa0\x80"},
		{"escaped surrogate", []Message{TextMessage([]byte(`4"\ud800"`))}, `9:4"\ud800"`},
		{"binary", []Message{BinaryMessage([]byte("hi"))}, "6:b4aGk="},
		{"several", []Message{pingMessage, TextMessage([]byte("4a"))}, "1:22:4a"},
		{"none", nil, "0:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendPayloadV3Text(nil, tt.msgs)); got != tt.want {
				t.Errorf("appendPayloadV3Text = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUTF16Len(t *testing.T) {
	for _, s := range []string{"", "a", "é", "€", "😀", "a😀b", "\U0010FFFF", "日本語", "\uFFFD"} {
		if got, want := utf16Len([]byte(s)), jsLen(s); got != want {
			t.Errorf("utf16Len(%q) = %d, want %d", s, got, want)
		}
		if n, ok := utf16Prefix([]byte(s), jsLen(s)); !ok || n != len(s) {
			t.Errorf("utf16Prefix(%q, %d) = %d, %v; want %d, true", s, jsLen(s), n, ok, len(s))
		}
	}
}

// v3bin builds a v3 binary payload entry: kind (0 text, 1 binary), the
// length as one digit per byte, 255, the packet.
func v3bin(kind byte, packet string) string {
	b := []byte{kind}
	for _, d := range fmt.Sprint(len(packet)) {
		b = append(b, byte(d-'0'))
	}
	b = append(b, 255)
	return string(b) + packet
}

func TestDecodePayloadV3Binary(t *testing.T) {
	long := strings.Repeat("x", 1234)
	tests := []struct {
		name    string
		body    string
		want    []packet
		wantErr bool
	}{
		{"text", v3bin(0, "4hello"), []packet{pk('4', "hello")}, false},
		{"binary", v3bin(1, "\x04\x00\xff"), []packet{bin('4', "\x00\xff")}, false},
		{"binary ping type", v3bin(1, "\x02x"), []packet{bin('2', "x")}, false},
		{"mixed", v3bin(0, "2") + v3bin(1, "\x04ab") + v3bin(0, "4"+long), []packet{pk('2', ""), bin('4', "ab"), pk('4', long)}, false},
		{"empty body", "", nil, false},

		{"bad kind", "\x02\x01\xff4", nil, true},
		{"no length", "\x00\xff4", nil, true},
		{"digit over 9", "\x00\x0a\xff4", nil, true},
		{"no 255", "\x00\x01", nil, true},
		{"too many digits", "\x00" + strings.Repeat("\x01", 11) + "\xff4", nil, true},
		{"length over the body", "\x00\x05\xff4ab", nil, true},
		{"empty binary packet", "\x01\x00\xff", nil, true},
		{"binary type over 6", v3bin(1, "\x07"), nil, true},
		{"text bad type", v3bin(0, "x"), nil, true},
		{"empty text packet", "\x00\x00\xff", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePayloadV3Binary([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodePayloadV3Binary(%q) error = %v, want error %v", tt.body, err, tt.wantErr)
			}
			if !tt.wantErr && !samePackets(got, tt.want) {
				t.Errorf("decodePayloadV3Binary(%q) = %s, want %s", tt.body, fmtPackets(got), fmtPackets(tt.want))
			}
		})
	}
}

func TestAppendPayloadV3Binary(t *testing.T) {
	msgs := []Message{TextMessage([]byte("4hello")), BinaryMessage([]byte{1, 2, 3}), pingMessage}
	want := v3bin(0, "4hello") + v3bin(1, "\x04\x01\x02\x03") + v3bin(0, "2")
	if got := string(appendPayloadV3Binary(nil, msgs)); got != want {
		t.Errorf("appendPayloadV3Binary = %q, want %q", got, want)
	}
	long := BinaryMessage(bytes.Repeat([]byte{7}, 12345))
	got, err := decodePayloadV3Binary(appendPayloadV3Binary(nil, []Message{long}))
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].data, long.b) {
		t.Errorf("round trip of a 12345-byte binary message: %v", err)
	}
}

func TestDecodeText(t *testing.T) {
	tests := []struct {
		in       string
		protocol int
		want     packet
		wantErr  bool
	}{
		{"4x", 4, pk('4', "x"), false},
		{"b" + b64("x"), 4, bin('4', "x"), false},
		{"b4" + b64("x"), 3, bin('4', "x"), false},
		{"b2" + b64("x"), 3, bin('2', "x"), false},
		{"b", 3, packet{}, true},
		{"b7", 3, packet{}, true},
		{"", 4, packet{}, true},
		{"/", 4, packet{}, true},
		{"7", 4, packet{}, true},
	}
	for _, tt := range tests {
		got, err := decodeText([]byte(tt.in), tt.protocol)
		if (err != nil) != tt.wantErr || (!tt.wantErr && !samePackets([]packet{got}, []packet{tt.want})) {
			t.Errorf("decodeText(%q, v%d) = %s, %v; want %s, error %v", tt.in, tt.protocol,
				fmtPackets([]packet{got}), err, fmtPackets([]packet{tt.want}), tt.wantErr)
		}
	}
}

func TestDecodeBinaryFrame(t *testing.T) {
	if p, err := decodeBinaryFrame([]byte{9, 9}, 4); err != nil || !samePackets([]packet{p}, []packet{bin('4', "\x09\x09")}) {
		t.Errorf("v4 binary frame = %s, %v", fmtPackets([]packet{p}), err)
	}
	if p, err := decodeBinaryFrame([]byte{4, 9}, 3); err != nil || !samePackets([]packet{p}, []packet{bin('4', "\x09")}) {
		t.Errorf("v3 binary frame = %s, %v", fmtPackets([]packet{p}), err)
	}
	for _, b := range [][]byte{nil, {7}, {'4'}} {
		if _, err := decodeBinaryFrame(b, 3); err == nil {
			t.Errorf("v3 binary frame %q decoded, want an error", b)
		}
	}
}

func TestTextMessagePanicsWithoutType(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("TextMessage without '4' did not panic")
		}
	}()
	TextMessage([]byte("hello"))
}

func TestMessagePayload(t *testing.T) {
	if got := string(TextMessage([]byte("4abc")).Payload()); got != "abc" {
		t.Errorf("text Payload = %q", got)
	}
	m := BinaryMessage([]byte("abc"))
	if got := string(m.Payload()); got != "abc" || !m.IsBinary() {
		t.Errorf("binary Payload = %q, IsBinary %v", got, m.IsBinary())
	}
}

// payloadDecoders are the polling payload formats, for the fuzz target.
var payloadDecoders = []struct {
	name   string
	decode func([]byte) ([]packet, error)
	encode func([]byte, []Message) []byte
	// encodable reports whether p can be sent by the server (its encoder
	// writes every binary packet as a MESSAGE).
	encodable func(packet) bool
}{
	{"v4", decodePayloadV4, appendPayloadV4, func(packet) bool { return true }},
	{"v3text", decodePayloadV3Text, appendPayloadV3Text, func(p packet) bool { return !p.binary || p.typ == typeMessage }},
	{"v3binary", decodePayloadV3Binary, appendPayloadV3Binary, func(p packet) bool { return !p.binary || p.typ == typeMessage }},
}

// asMessages turns decoded packets into the messages that encode them.
func asMessages(ps []packet) []Message {
	out := make([]Message, len(ps))
	for i, p := range ps {
		if p.binary {
			out[i] = BinaryMessage(p.data)
		} else {
			out[i] = Message{b: append([]byte{p.typ}, p.data...)}
		}
	}
	return out
}

// FuzzDecodePayload decodes arbitrary bodies in every polling format: it
// must never panic, and what decodes must encode back to a payload that
// decodes to the same packets.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{
		"4hello", "2probe\x1e4a\x1eb" + b64("bin"), "", "\x1e", "b", "b!!",
		"6:4hello", "2:4a3:2bc", "4:4😀", "0:", "1:9", "7:4\\ud800", "+6:4hello",
		v3bin(0, "4hello") + v3bin(1, "\x04\x01\x02"), "\x00\x01\xff", "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, d := range payloadDecoders {
			ps, err := d.decode(bytes.Clone(body))
			if err != nil {
				continue
			}
			var keep []packet
			for _, p := range ps {
				if d.encodable(p) {
					keep = append(keep, p)
				}
			}
			if len(keep) == 0 {
				continue
			}
			enc := d.encode(nil, asMessages(keep))
			again, err := d.decode(enc)
			if err != nil {
				t.Fatalf("%s: %q decodes to %s, which encodes to %q, which does not decode: %v", d.name, body, fmtPackets(keep), enc, err)
			}
			if !samePackets(again, keep) {
				t.Fatalf("%s: %q decodes to %s, re-encoded %q decodes to %s", d.name, body, fmtPackets(keep), enc, fmtPackets(again))
			}
		}
	})
}

func TestValidUTF8(t *testing.T) {
	tests := []struct{ in, want string }{
		{"4héllo", "4héllo"},
		{"4\xff", "4\uFFFD"},
		{"4\xed\xa0\x80x", "4\uFFFD\uFFFD\uFFFDx"}, // a WTF-8 surrogate: three bad bytes
		{"4\xf0\x9f\x98", "4\uFFFD"},               // a truncated sequence: one maximal subpart, as Node
		{"4\xf0\x9f\x98x\xc3", "4\uFFFDx\uFFFD"},
		{"4\xe0\x80\x80", "4\uFFFD\uFFFD\uFFFD"},           // overlong: E0 takes A0..BF only
		{"4\xf4\x90\x80\x80", "4\uFFFD\uFFFD\uFFFD\uFFFD"}, // past U+10FFFF
	}
	for _, tt := range tests {
		if got := string(validUTF8([]byte(tt.in))); got != tt.want {
			t.Errorf("validUTF8(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	in := []byte("4ok")
	if out := validUTF8(in); &out[0] != &in[0] {
		t.Error("validUTF8 copied valid input")
	}
}

func TestValidIDAndHeader(t *testing.T) {
	for _, id := range []string{newID(), NewID(), "abc-_=", strings.Repeat("a", 64)} {
		if !validID(id) {
			t.Errorf("validID(%q) = false", id)
		}
	}
	for _, id := range []string{"a b", "a/b", "a%00", strings.Repeat("a", 65), "é"} {
		if validID(id) {
			t.Errorf("validID(%q) = true", id)
		}
	}
	if id := newID(); len(id) != 20 {
		t.Errorf("newID() = %q, want 20 characters", id)
	}
	if !validHeaderValue("https://example.com\t") || validHeaderValue("a\x00b") || validHeaderValue("a\x7f") {
		t.Error("validHeaderValue")
	}
}

// sampleMessages is a typical polling response: a few chat events.
var sampleMessages = func() []Message {
	m := TextMessage([]byte(`42["chat message",{"from":"alice","text":"hello, everyone"}]`))
	return []Message{m, m, m, pingMessage, m, BinaryMessage(bytes.Repeat([]byte{1}, 64))}
}()

func BenchmarkEncodePayload(b *testing.B) {
	for _, d := range payloadDecoders {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf = d.encode(buf[:0], sampleMessages)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkDecodePayload(b *testing.B) {
	for _, d := range payloadDecoders {
		b.Run(d.name, func(b *testing.B) {
			body := d.encode(nil, sampleMessages)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
