package socketio

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/chatio/socketio-chat/engineio"
)

// TestDecodePacket is the accept/refuse table of the decoder, checked
// against Node's socket.io-parser 4.2.7 (Decoder.add on the same text).
// Where the two differ, node says what Node's parser does and why we do
// otherwise.
func TestDecodePacket(t *testing.T) {
	long := "/" + strings.Repeat("n", maxNamespaceLength) // 257 bytes
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		in      string
		wantErr error // nil: accepted
		typ     int
		nsp     string
		id      int64
		att     int
		args    []string // EVENT and ACK
		data    string   // CONNECT
		node    string   // Node's outcome when it differs
	}{
		// CONNECT
		{in: "0", typ: 0, nsp: "/", id: -1},
		{in: "0/admin,", typ: 0, nsp: "/admin", id: -1},
		{in: "0/admin", typ: 0, nsp: "/admin", id: -1},
		{in: `0{"token":"x"}`, typ: 0, nsp: "/", id: -1, data: `{"token":"x"}`},
		{in: `0/admin,{"a":1}`, typ: 0, nsp: "/admin", id: -1, data: `{"a":1}`},
		{in: `0{} `, typ: 0, nsp: "/", id: -1, data: `{} `},
		{in: `0/admin,1{}`, typ: 0, nsp: "/admin", id: 1, data: `{}`},
		{in: `0[]`, wantErr: errPayload},
		{in: `0"str"`, wantErr: errPayload},
		{in: `0null`, wantErr: errPayload},
		{in: `0{`, wantErr: errPayload},
		{in: `0 {}`, typ: 0, nsp: "/", id: -1, data: ` {}`, node: "id 0: Number(' ') == ' ' makes a space an id digit"},
		// DISCONNECT
		{in: "1", typ: 1, nsp: "/", id: -1},
		{in: "1/admin,", typ: 1, nsp: "/admin", id: -1},
		{in: "1{}", wantErr: errPayload},
		{in: `1["x"]`, wantErr: errPayload},
		{in: "1/admin,[]", wantErr: errPayload},
		// EVENT
		{in: `2["msg"]`, typ: 2, nsp: "/", id: -1, args: []string{`"msg"`}},
		{in: `2["msg",1,{"a":[]}]`, typ: 2, nsp: "/", id: -1, args: []string{`"msg"`, `1`, `{"a":[]}`}},
		{in: `2[ "msg" , 1 ]`, typ: 2, nsp: "/", id: -1, args: []string{`"msg"`, `1`}},
		{in: `2[1]`, typ: 2, nsp: "/", id: -1, args: []string{`1`}},
		{in: `2[-1.5e3]`, typ: 2, nsp: "/", id: -1, args: []string{`-1.5e3`}},
		{in: `2["Connect"]`, typ: 2, nsp: "/", id: -1, args: []string{`"Connect"`}},
		{in: `2["connection"]`, typ: 2, nsp: "/", id: -1, args: []string{`"connection"`}},
		{in: `2/admin,["x"]`, typ: 2, nsp: "/admin", id: -1, args: []string{`"x"`}},
		{in: `21["x"]`, typ: 2, nsp: "/", id: 1, args: []string{`"x"`}},
		{in: `2/admin,12["x"]`, typ: 2, nsp: "/admin", id: 12, args: []string{`"x"`}},
		{in: `2123456789012345["x"]`, typ: 2, nsp: "/", id: 123456789012345, args: []string{`"x"`}},
		{in: `2["x"] `, typ: 2, nsp: "/", id: -1, args: []string{`"x"`}},
		{in: "2[\"x\"]\n", typ: 2, nsp: "/", id: -1, args: []string{`"x"`}},
		{in: `2["\ud800"]`, typ: 2, nsp: "/", id: -1, args: []string{`"\ud800"`}},
		{in: `2["x",-0,1E+2,"\/"]`, typ: 2, nsp: "/", id: -1, args: []string{`"x"`, `-0`, `1E+2`, `"\/"`}},
		{in: `2 ["x"]`, typ: 2, nsp: "/", id: -1, args: []string{`"x"`}, node: "id 0 (a space as an id digit)"},
		{in: `2[]`, wantErr: errPayload},
		{in: `2[null]`, wantErr: errPayload},
		{in: `2[true]`, wantErr: errPayload},
		{in: `2[{"a":1}]`, wantErr: errPayload},
		{in: `2[["a"]]`, wantErr: errPayload},
		{in: `2["connect"]`, wantErr: errReservedEvent},
		{in: `2["connect_error"]`, wantErr: errReservedEvent},
		{in: `2["disconnect"]`, wantErr: errReservedEvent},
		{in: `2["disconnecting"]`, wantErr: errReservedEvent},
		{in: `2["newListener"]`, wantErr: errReservedEvent},
		{in: `2["removeListener"]`, wantErr: errReservedEvent},
		{in: `2["\u0063onnect"]`, wantErr: errReservedEvent},
		{in: `2-1["x"]`, wantErr: errPayload},
		{in: `21.5["x"]`, wantErr: errPayload},
		{in: `2["x"]x`, wantErr: errPayload},
		{in: `2["x",01]`, wantErr: errPayload},
		{in: `2["x",1.]`, wantErr: errPayload},
		{in: `2["x",.5]`, wantErr: errPayload},
		{in: `2["x",-]`, wantErr: errPayload},
		{in: `2["x","\u00zz"]`, wantErr: errPayload},
		{in: "2[\"x\",\"a\tb\"]", wantErr: errPayload},
		{in: `2["x",NaN]`, wantErr: errPayload},
		{in: `2["x",undefined]`, wantErr: errPayload},
		{in: `2['x']`, wantErr: errPayload},
		{in: `2["x",]`, wantErr: errPayload},
		{in: `2["x"`, wantErr: errPayload},
		{in: `2["x",{"a":1,}]`, wantErr: errPayload},
		{in: `2["x",{a:1}]`, wantErr: errPayload},
		{in: `2["x","\x41"]`, wantErr: errPayload},
		{in: `2["x",tru]`, wantErr: errPayload},
		{in: `2["x",` + deep(MaxDepth-1) + `]`, typ: 2, nsp: "/", id: -1, args: []string{`"x"`, deep(MaxDepth - 1)}},
		{in: `2["x",` + deep(MaxDepth) + `]`, wantErr: errPayload, node: "accepted: JSON.parse has no depth limit (MaxDepth)"},
		{in: "2", wantErr: errPayload, node: "accepted as an EVENT without data, which the server ignores"},
		{in: "2/admin", wantErr: errPayload, node: "accepted as an EVENT without data"},
		{in: `2/admin["x"]`, wantErr: errPayload, node: `accepted as an EVENT without data in namespace '/admin["x"]'`},
		// Ack ids: every integer JavaScript holds exactly, up to
		// Number.MAX_SAFE_INTEGER, as socket.io-parser reads them (with
		// Number(), leading zeros and all). Beyond it, Node (socket.io 4.8.4)
		// rounds: 9007199254740993 is acked as 9007199254740992,
		// 99999999999999999999 as 100000000000000000000 and 400 nines as
		// "Infinity", ids no client can match; we refuse them instead.
		{in: `21234567890123456["x"]`, typ: 2, nsp: "/", id: 1234567890123456, args: []string{`"x"`}},
		{in: `29007199254740991["x"]`, typ: 2, nsp: "/", id: 9007199254740991, args: []string{`"x"`}},
		{in: `2/admin,9007199254740991["x"]`, typ: 2, nsp: "/admin", id: 9007199254740991, args: []string{`"x"`}},
		{in: `39007199254740991[]`, typ: 3, nsp: "/", id: 9007199254740991, args: []string{}},
		{in: `20000000000000000000000000001["x"]`, typ: 2, nsp: "/", id: 1, args: []string{`"x"`}},
		{in: `29007199254740992["x"]`, wantErr: errID, node: "accepted, acked with the id 9007199254740992"},
		{in: `29007199254740993["x"]`, wantErr: errID, node: "accepted, acked with the id 9007199254740992 (rounded)"},
		{in: `299999999999999999999["x"]`, wantErr: errID, node: "accepted, acked with the id 100000000000000000000"},
		{in: `2` + strings.Repeat("9", 400) + `["x"]`, wantErr: errID, node: `accepted, acked with the id "Infinity"`},
		{in: `2` + long + `,["x"]`, wantErr: errNamespace, node: "accepted: namespaces are bounded to 256 bytes"},
		// ACK
		{in: `3["x"]`, typ: 3, nsp: "/", id: -1, args: []string{`"x"`}},
		{in: `31[]`, typ: 3, nsp: "/", id: 1, args: []string{}},
		{in: `3/admin,7[1,2]`, typ: 3, nsp: "/admin", id: 7, args: []string{`1`, `2`}},
		{in: `3{}`, wantErr: errPayload},
		{in: `3"x"`, wantErr: errPayload},
		{in: "3", wantErr: errPayload, node: "accepted as an ACK without data"},
		{in: "31", wantErr: errPayload, node: "accepted as an ACK without data (the callback gets no arguments)"},
		{in: "3/admin,", wantErr: errPayload, node: "accepted as an ACK without data"},
		// BINARY_EVENT, BINARY_ACK
		{in: `51-["x",{"_placeholder":true,"num":0}]`, typ: 5, nsp: "/", id: -1, att: 1, args: []string{`"x"`, `{"_placeholder":true,"num":0}`}},
		{in: `510-["x"]`, typ: 5, nsp: "/", id: -1, att: 10, args: []string{`"x"`}},
		{in: `5001-["x"]`, typ: 5, nsp: "/", id: -1, att: 1, args: []string{`"x"`}},
		{in: `51-/admin,3["x"]`, typ: 5, nsp: "/admin", id: 3, att: 1, args: []string{`"x"`}},
		{in: `61-[{"_placeholder":true,"num":0}]`, typ: 6, nsp: "/", id: -1, att: 1, args: []string{`{"_placeholder":true,"num":0}`}},
		{in: `61-/admin,5[1]`, typ: 6, nsp: "/admin", id: 5, att: 1, args: []string{`1`}},
		{in: `50-["x"]`, wantErr: errAttachments},
		{in: `5-["x"]`, wantErr: errAttachments},
		{in: `6-[]`, wantErr: errAttachments},
		{in: `511-["x"]`, wantErr: errTooManyAttach},
		{in: `5a-["x"]`, wantErr: errAttachments},
		{in: `51["x"]`, wantErr: errAttachments},
		{in: `51-["connect"]`, wantErr: errReservedEvent},
		{in: `51-[]`, wantErr: errPayload},
		{in: `61-{}`, wantErr: errPayload},
		{in: `5 1-["x"]`, wantErr: errAttachments, node: "accepted: the count is read with Number(), which takes ' 1', '1.0', '+1', '1e0', '000001'"},
		{in: `51.0-["x"]`, wantErr: errAttachments, node: "accepted (Number('1.0') is 1)"},
		{in: `5+1-["x"]`, wantErr: errAttachments, node: "accepted (Number('+1') is 1)"},
		{in: `51e0-["x"]`, wantErr: errAttachments, node: "accepted (Number('1e0') is 1)"},
		{in: `5000001-["x"]`, wantErr: errAttachments, node: "accepted: counts are bounded to 5 digits"},
		{in: `51-`, wantErr: errPayload, node: "accepted as a BINARY_EVENT without data"},
		// CONNECT_ERROR and unknown types
		{in: `4{"message":"x"}`, wantErr: errUnknownType, node: "parsed, then the server closes the client (invalid state)"},
		{in: `4"x"`, wantErr: errUnknownType, node: "parsed, then the server closes the client (invalid state)"},
		{in: "7", wantErr: errUnknownType},
		{in: "9", wantErr: errUnknownType},
		{in: "x", wantErr: errUnknownType},
		{in: "/", wantErr: errUnknownType},
		{in: "-", wantErr: errUnknownType},
		{in: "", wantErr: errUnknownType, node: "a CONNECT to '/' (Number('') is 0)"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		t.Run(name, func(t *testing.T) {
			p, err := decodePacket([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("decodePacket(%q) = %v, want error %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodePacket(%q): %v", tt.in, err)
			}
			if p.typ != tt.typ || p.nsp != tt.nsp || p.id != tt.id || p.attachments != tt.att {
				t.Errorf("decodePacket(%q) = type %d nsp %q id %d attachments %d; want %d %q %d %d",
					tt.in, p.typ, p.nsp, p.id, p.attachments, tt.typ, tt.nsp, tt.id, tt.att)
			}
			if tt.args != nil {
				var got []string
				for _, a := range p.args {
					got = append(got, string(a))
				}
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.args) {
					t.Errorf("args = %q, want %q", got, tt.args)
				}
			}
			if tt.typ == typeConnect && string(p.data) != tt.data {
				t.Errorf("data = %q, want %q", p.data, tt.data)
			}
		})
	}
}

func TestEventName(t *testing.T) {
	for in, want := range map[string]string{
		`2["chat message"]`:                      "chat message",
		`2["\u0063hat"]`:                         "chat",
		`2[42]`:                                  "42",
		`2[-1.5e3]`:                              "-1.5e3",
		`2["a\"b"]`:                              `a"b`,
		`2["\ud83d\ude00!"]`:                     "😀!",
		`2["\ud800"]`:                            "\xed\xa0\x80",
		`51-["f",{"_placeholder":true,"num":0}]`: "f",
	} {
		p, err := decodePacket([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := p.eventName(); got != want {
			t.Errorf("eventName of %q = %q, want %q", in, got, want)
		}
	}
}

// texts returns the Engine.IO messages as the tests write them: text
// packets as is, binary ones as bin(…).
func texts(msgs []engineio.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		if m.IsBinary() {
			out[i] = fmt.Sprintf("bin(%x)", m.Payload())
		} else {
			out[i] = "4" + string(m.Payload())
		}
	}
	return out
}

func mustArg(tb testing.TB, v any) Arg {
	tb.Helper()
	a, err := ToArg(v)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func TestEncode(t *testing.T) {
	hi := mustArg(t, "hi")
	obj := Arg{JSON: []byte(`{"b":1, "a":"keep me as I am"}`)}
	twoBins := mustArg(t, []any{[]byte{1}, map[string]any{"x": []byte{2}}})
	tests := []struct {
		name string
		got  []engineio.Message
		want []string
	}{
		{"event", encodeEvent("/", -1, "chat", []Arg{hi}), []string{`42["chat","hi"]`}},
		{"event without args", encodeEvent("/", -1, "ping", nil), []string{`42["ping"]`}},
		{"event in a namespace with an ack id", encodeEvent("/admin", 5, "chat", []Arg{hi, obj}), []string{`42/admin,5["chat","hi",{"b":1, "a":"keep me as I am"}]`}},
		{"event name escaped", encodeEvent("/", -1, "a\"b\n", nil), []string{`42["a\"b\n"]`}},
		{"ack", encodeAck("/", 3, []Arg{hi}), []string{`433["hi"]`}},
		{"ack without args", encodeAck("/", 0, nil), []string{`430[]`}},
		{"ack in a namespace", encodeAck("/admin", 12, []Arg{obj}), []string{`43/admin,12[{"b":1, "a":"keep me as I am"}]`}},
		{"binary event", encodeEvent("/", -1, "file", []Arg{Binary([]byte{0xca, 0xfe})}),
			[]string{`451-["file",{"_placeholder":true,"num":0}]`, "bin(cafe)"}},
		{"binary args renumbered", encodeEvent("/", -1, "files", []Arg{Binary([]byte{1}), hi, twoBins}),
			[]string{`453-["files",{"_placeholder":true,"num":0},"hi",[{"_placeholder":true,"num":1},{"x":{"_placeholder":true,"num":2}}]]`, "bin(01)", "bin(01)", "bin(02)"}},
		{"binary ack", encodeAck("/admin", 7, []Arg{Binary([]byte{9})}),
			[]string{`461-/admin,7[{"_placeholder":true,"num":0}]`, "bin(09)"}},
		{"connect", []engineio.Message{encodeControl(typeConnect, "/admin", []byte(`{"sid":"x"}`))}, []string{`40/admin,{"sid":"x"}`}},
		{"connect to /", []engineio.Message{encodeControl(typeConnect, "/", []byte(`{"sid":"x"}`))}, []string{`40{"sid":"x"}`}},
		{"disconnect", []engineio.Message{encodeControl(typeDisconnect, "/", nil)}, []string{`41`}},
		{"disconnect in a namespace", []engineio.Message{encodeControl(typeDisconnect, "/chat", nil)}, []string{`41/chat,`}},
		{"connect error", []engineio.Message{encodeControl(typeConnectError, "/", errorPayload(&ConnectError{Message: "no", Data: map[string]any{"code": 7}}, 4))},
			[]string{`44{"data":{"code":7},"message":"no"}`}},
		{"connect error v3", []engineio.Message{encodeControl(typeConnectError, "/", errorPayload(errors.New("no"), 3))}, []string{`44"no"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := texts(tt.got); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestEncodeDecodeRoundTrip: what the server encodes, the decoder reads
// back with the same arguments (attachments included).
func TestEncodeDecodeRoundTrip(t *testing.T) {
	args := []Arg{mustArg(t, "a"), Binary([]byte("bin")), mustArg(t, map[string]any{"n": 1.5, "b": []byte("nested")})}
	msgs := encodeEvent("/ns", 9, "ev", args)
	p, err := decodePacket(msgs[0].Payload())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs[1:] {
		p.bins = append(p.bins, m.Payload())
	}
	if p.attachments != 2 || p.nsp != "/ns" || p.id != 9 || p.eventName() != "ev" {
		t.Fatalf("decoded %+v", p)
	}
	got, err := p.argsFrom(1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range args {
		if string(got[i].JSON) != string(args[i].JSON) || fmt.Sprintf("%q", got[i].Attachments) != fmt.Sprintf("%q", args[i].Attachments) {
			t.Errorf("arg %d = %s %q, want %s %q", i, got[i].JSON, got[i].Attachments, args[i].JSON, args[i].Attachments)
		}
	}
}

// FuzzDecodePacket decodes arbitrary packets: never a panic; what is
// accepted has a known type, a namespace and arguments that are valid
// JSON, and its event name, arguments and attachments can be read.
func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{
		`2["chat message","hi"]`, `0/admin,{"token":"x"}`, "1/admin,", `21["x"]`, `3/admin,7[1,2]`,
		`51-["x",{"_placeholder":true,"num":0}]`, `62-/a,4[{"_placeholder":true,"num":1},{"num":0,"_placeholder":true}]`,
		`2["x",` + strings.Repeat("[", 130) + `]`, `2["\ud800",{"\u005fplaceholder":true}]`, `5 1-[1]`, "", "4{}",
	} {
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, b []byte, nbins uint8) {
		p, err := decodePacket(b)
		if err != nil {
			if p != nil {
				t.Fatalf("error %v with a packet", err)
			}
			return
		}
		if p.typ < typeConnect || p.typ > typeBinaryAck || p.typ == typeConnectError {
			t.Fatalf("accepted type %d", p.typ)
		}
		if p.nsp == "" || p.nsp[0] != '/' || len(p.nsp) > maxNamespaceLength {
			t.Fatalf("namespace %q", p.nsp)
		}
		if (p.attachments > 0) != (p.typ == typeBinaryEvent || p.typ == typeBinaryAck) || p.attachments > MaxAttachments {
			t.Fatalf("type %d with %d attachments", p.typ, p.attachments)
		}
		for _, a := range p.args {
			if err := validValue(a); err != nil {
				t.Fatalf("argument %q: %v", a, err)
			}
		}
		if p.typ == typeEvent || p.typ == typeBinaryEvent {
			if name := p.eventName(); reservedEvents[name] {
				t.Fatalf("reserved event %q accepted", name)
			}
		}
		// The client hands a binary packet on once all its attachments
		// came; nbins varies their contents.
		for i := range p.attachments {
			p.bins = append(p.bins, []byte{byte(i), nbins})
		}
		args, err := p.argsFrom(0)
		if err != nil {
			if !errors.Is(err, errIllegalAttachments) {
				t.Fatalf("argsFrom: %v", err)
			}
			return
		}
		if p.attachments == 0 {
			return // a plain packet's placeholder-like objects are data, as in Node
		}
		for _, a := range args {
			checkCanonical(t, a)
		}
	})
}

// BenchmarkDecodeEvent decodes a chat event as it arrives.
func BenchmarkDecodeEvent(b *testing.B) {
	in := []byte(`2["chat message",{"from":"alice","text":"hello, everyone","at":1712345678901}]`)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := decodePacket(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.argsFrom(1); err != nil {
			b.Fatal(err)
		}
		_ = p.eventName()
	}
}

// BenchmarkEncodeBroadcast encodes a broadcast as Namespace.Emit does:
// Go values to Args, then the packet.
func BenchmarkEncodeBroadcast(b *testing.B) {
	msg := map[string]any{"from": "alice", "text": "hello, everyone", "at": int64(1712345678901)}
	received := Arg{JSON: []byte(`{"from":"alice","text":"hello, everyone","at":1712345678901}`)}
	b.Run("go-value", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			args, _, err := encodeArgs([]any{msg})
			if err != nil {
				b.Fatal(err)
			}
			_ = encodeEvent("/", -1, "chat message", args)
		}
	})
	b.Run("received-arg", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			args, _, err := encodeArgs([]any{received})
			if err != nil {
				b.Fatal(err)
			}
			_ = encodeEvent("/", -1, "chat message", args)
		}
	})
	b.Run("binary", func(b *testing.B) {
		bin := make([]byte, 1024)
		b.ReportAllocs()
		for b.Loop() {
			args, _, err := encodeArgs([]any{"photo", bin})
			if err != nil {
				b.Fatal(err)
			}
			_ = encodeEvent("/", -1, "file", args)
		}
	})
}
