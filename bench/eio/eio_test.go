package eio

import (
	"bytes"
	"testing"
)

func TestMessageText(t *testing.T) {
	for _, tc := range []struct {
		pkt  string
		want string
		ok   bool
	}{
		{`42["message","0.1.2.3.xx"]`, "0.1.2.3.xx", true},
		{`42["message","hello"]`, "hello", true},
		{`42["message","a\"b"]`, "", false}, // escapes are not benchmark messages
		{`42["message",1]`, "", false},
		{`42["other","x"]`, "", false},
		{`40{"sid":"x"}`, "", false},
		{`42["message","unterminated`, "", false},
		{`42/n1,["message","in n1"]`, "in n1", true},
		{`42/n1["message","x"]`, "", false},
		{`42/n1,["other","x"]`, "", false},
	} {
		got, ok := MessageText([]byte(tc.pkt))
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("MessageText(%q) = %q, %v; want %q, %v", tc.pkt, got, ok, tc.want, tc.ok)
		}
	}
}

func TestAppendUserMessage(t *testing.T) {
	got := string(AppendUserMessage([]byte("x"), []byte("hi")))
	if want := `x42["user-message","hi"]`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	for nsp, want := range map[string]string{"": `42["user-message","hi"]`, "/": `42["user-message","hi"]`, "/n1": `42/n1,["user-message","hi"]`} {
		if got := string(AppendUserMessageIn(nil, nsp, []byte("hi"))); got != want {
			t.Errorf("AppendUserMessageIn(%q) = %q, want %q", nsp, got, want)
		}
	}
}

func TestSidFromJSON(t *testing.T) {
	sid, err := sidFromJSON([]byte(`{"sid":"abc-_1","upgrades":["websocket"],"pingInterval":25000}`))
	if err != nil || sid != "abc-_1" {
		t.Fatalf("sid = %q, %v", sid, err)
	}
	if _, err := sidFromJSON([]byte(`{"upgrades":[]}`)); err == nil {
		t.Fatal("no error for a payload without sid")
	}
}

// TestFrames round-trips masked client frames of each length encoding
// through the parser, including a fragmented message and a partial frame.
func TestFrames(t *testing.T) {
	var c RawConn
	var stream []byte
	sizes := []int{0, 5, 125, 126, 65535, 65536}
	for _, n := range sizes {
		stream = appendFrame(stream, opText, bytes.Repeat([]byte{'a' + byte(n%26)}, n))
	}
	// A message in two fragments: "hel" (text, not final) + "lo" (continuation, final).
	frag := appendFrame(nil, opText, []byte("hel"))
	frag[0] &^= 0x80
	stream = append(stream, frag...)
	stream = appendFrame(stream, opContinuation, []byte("lo"))
	stream = appendFrame(stream, opPing, []byte("p"))

	var got [][]byte
	var ops []byte
	h := func(op byte, p []byte) error {
		ops = append(ops, op)
		got = append(got, append([]byte(nil), p...))
		return nil
	}
	// Feed it in pieces, as reads would arrive.
	var pending []byte
	for i := 0; i < len(stream); i += 1000 {
		pending = append(pending, stream[i:min(i+1000, len(stream))]...)
		used, err := c.parse(pending, h)
		if err != nil {
			t.Fatal(err)
		}
		pending = pending[used:]
	}
	if len(pending) != 0 {
		t.Fatalf("%d bytes left unparsed", len(pending))
	}
	if len(got) != len(sizes)+2 {
		t.Fatalf("got %d messages, want %d", len(got), len(sizes)+2)
	}
	for i, n := range sizes {
		if len(got[i]) != n || (n > 0 && got[i][0] != 'a'+byte(n%26)) || ops[i] != opText {
			t.Errorf("message %d: op %d, %d bytes; want text of %d", i, ops[i], len(got[i]), n)
		}
	}
	if s := string(got[len(sizes)]); s != "hello" || ops[len(sizes)] != opText {
		t.Errorf("reassembled %q (op %d), want text hello", s, ops[len(sizes)])
	}
	if ops[len(ops)-1] != opPing || string(got[len(got)-1]) != "p" {
		t.Errorf("last frame op %d %q, want ping p", ops[len(ops)-1], got[len(got)-1])
	}
}
