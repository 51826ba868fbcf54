package main

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
)

// rawDecode feeds one text packet to a fresh rawDecoder and returns what it
// emitted.
func rawDecode(t *testing.T, d *rawDecoder, packet string) (*parser.Packet, error) {
	t.Helper()
	var got *parser.Packet
	_ = d.On("decoded", func(args ...any) { got = args[0].(*parser.Packet) })
	defer d.RemoveAllListeners("decoded")
	err := d.Add(packet)
	return got, err
}

func TestRawDecoderKeepsArgumentsAsSent(t *testing.T) {
	tests := []struct {
		in       string
		wantNsp  string
		wantID   uint64 // 0: none
		wantName any
		wantArgs []string
	}{
		{`2["user-message",{"zeta":1,"alpha":[1.50,"x"]}]`, "/", 0, "user-message", []string{`{"zeta":1,"alpha":[1.50,"x"]}`}},
		{`2["user-message","hi",null,true]`, "/", 0, "user-message", []string{`"hi"`, `null`, `true`}},
		{`2/chat,12["m",1e3]`, "/chat", 12, "m", []string{`1e3`}},
		{`27[42]`, "/", 7, 42.0, nil},
		{`2["only-name"]`, "/", 0, "only-name", nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := rawDecode(t, &rawDecoder{Decoder: parser.NewDecoder()}, tt.in)
			if err != nil || p == nil {
				t.Fatalf("decode: %v (packet %v)", err, p)
			}
			if p.Nsp != tt.wantNsp {
				t.Errorf("nsp = %q, want %q", p.Nsp, tt.wantNsp)
			}
			if (p.Id == nil) != (tt.wantID == 0) || (p.Id != nil && *p.Id != tt.wantID) {
				t.Errorf("id = %v, want %d", p.Id, tt.wantID)
			}
			data := p.Data.([]any)
			if data[0] != tt.wantName {
				t.Errorf("event = %#v, want %#v", data[0], tt.wantName)
			}
			if len(data)-1 != len(tt.wantArgs) {
				t.Fatalf("%d arguments, want %d", len(data)-1, len(tt.wantArgs))
			}
			for i, want := range tt.wantArgs {
				if got := string(data[i+1].(rawJSON)); got != want {
					t.Errorf("argument %d = %s, want %s", i, got, want)
				}
			}
		})
	}
}

func TestRawDecoderRefusesInvalidEvents(t *testing.T) {
	long := make([]byte, 600)
	for i := range long {
		long[i] = 'a'
	}
	for _, in := range []string{
		`2`, `2abc`, `2{}`, `2[]`, `2[null]`, `2[{}]`, `2["connect"]`, `2["disconnect",1]`,
		`2["a"]trailing`, `2["a"`, `2123456789012345678901["a"]`, `2/` + string(long) + `,["a"]`,
	} {
		if p, err := rawDecode(t, &rawDecoder{Decoder: parser.NewDecoder()}, in); err == nil {
			t.Errorf("%q decoded to %v, want an error", in, p)
		}
	}
}

func TestRawDecoderRateLimitsOnArrival(t *testing.T) {
	d := rawParser{rate: 1, burst: 2}.NewDecoder().(*rawDecoder)
	var names []any
	_ = d.On("decoded", func(args ...any) { names = append(names, args[0].(*parser.Packet).Data.([]any)[0]) })
	for i := 0; i < 4; i++ {
		if err := d.Add(`2["m","x"]`); err != nil {
			t.Fatal(err)
		}
	}
	// A binary event over the limit is dropped with its attachment.
	if err := d.Add(`51-["m",{"_placeholder":true,"num":0}]`); err != nil {
		t.Fatal(err)
	}
	if err := d.Add([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	want := []any{"m", "m", limitedEvent, limitedEvent, limitedEvent}
	if len(names) != len(want) {
		t.Fatalf("decoded %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("decoded %v, want %v", names, want)
		}
	}
	// Text in the middle of a refused binary event is a protocol error, as in the library.
	if err := d.Add(`51-["m",{"_placeholder":true,"num":0}]`); err != nil {
		t.Fatal(err)
	}
	if err := d.Add(`2["m"]`); !errors.Is(err, parser.ErrPlaintextDuringReconstruction) {
		t.Errorf("text during a dropped binary event: %v, want ErrPlaintextDuringReconstruction", err)
	}
}

// FuzzRawEvent: no input makes the event decoder panic, and whatever it
// accepts is an event whose arguments are valid JSON.
func FuzzRawEvent(f *testing.F) {
	for _, seed := range []string{`["user-message","hi"]`, `/chat,1["m",{"a":[1,2]}]`, `12[3]`, `[`, `/,`, `99999999999999999999999["a"]`, `["a",{"_placeholder":true,"num":0}]`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := decodeRawEvent(s)
		if err != nil {
			return
		}
		data := p.Data.([]any)
		if len(data) == 0 {
			t.Fatal("accepted an event without a name")
		}
		for _, a := range data[1:] {
			if !jsonValid(a.(rawJSON)) {
				t.Fatalf("accepted invalid JSON argument %q", a)
			}
		}
	})
}

func jsonValid(b []byte) bool { return json.Valid(b) }

func TestRawDecoderRefusesDeepNesting(t *testing.T) {
	nest := func(n int) string {
		b := make([]byte, 0, 2*n)
		for i := 0; i < n; i++ {
			b = append(b, '[')
		}
		for i := 0; i < n; i++ {
			b = append(b, ']')
		}
		return string(b)
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"at the limit", `2["m",` + nest(maxEventDepth-1) + `]`, true},
		{"one deeper", `2["m",` + nest(maxEventDepth) + `]`, false},
		{"9000 levels, under Go's own limit", `2["m",` + nest(9000) + `]`, false},
		{"brackets inside strings do not count", `2["m","` + nest(500) + `\"[["]`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rawDecode(t, &rawDecoder{Decoder: parser.NewDecoder()}, tt.in)
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
