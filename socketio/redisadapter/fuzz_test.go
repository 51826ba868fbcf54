package redisadapter

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/chatio/socketio-chat/internal/jsontext"
	"github.com/chatio/socketio-chat/internal/notepack"
	"github.com/chatio/socketio-chat/socketio"
)

// Everything read from Redis is untrusted: the fuzz targets feed the
// transcoders and the message parsers arbitrary bytes. Their seed corpus
// is in testdata/fuzz; a crasher found later belongs there too.

// checkArg checks what the decoder made of msgpack: valid JSON in valid
// UTF-8, one attachment per placeholder, and stable: encoding it and
// decoding it again gives it back.
func checkArg(t *testing.T, a socketio.Arg) {
	t.Helper()
	if !json.Valid(a.JSON) || !utf8.Valid(a.JSON) {
		t.Fatalf("invalid JSON: %q", a.JSON)
	}
	if n := bytes.Count(a.JSON, []byte(notepack.PlaceholderPrefix)); n != len(a.Attachments) {
		if n > len(a.Attachments) {
			return // a map that looks like a placeholder: ambiguous, as in Node
		}
		t.Fatalf("%d placeholders, %d attachments: %s", n, len(a.Attachments), a.JSON)
	}
	var e encoder
	if err := e.arg(a); err != nil {
		t.Fatalf("cannot encode %s: %v", a.JSON, err)
	}
	d := newDecoder(e.Buf)
	b, err := d.arg()
	if err != nil {
		t.Fatalf("cannot decode %x: %v", e.Buf, err)
	}
	if !bytes.Equal(a.JSON, b.JSON) || len(a.Attachments) != len(b.Attachments) {
		t.Fatalf("unstable: %s became %s", a.JSON, b.JSON)
	}
	for i := range a.Attachments {
		if !bytes.Equal(a.Attachments[i], b.Attachments[i]) {
			t.Fatalf("attachment %d changed", i)
		}
	}
}

func FuzzMsgpackToJSON(f *testing.F) {
	f.Add([]byte{0x82, 0xa1, 'b', 0x01, 0xa1, '1', 0xc4, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDecoder(data)
		a, err := d.arg()
		if err != nil || d.End() != nil {
			return
		}
		checkArg(t, a)
	})
}

func FuzzJSONToMsgpack(f *testing.F) {
	f.Add([]byte(`{"b":1,"a":[1.5,"\ud800x",{"_placeholder":true,"num":0}]}`), uint8(1))
	f.Fuzz(func(t *testing.T, text []byte, nbins uint8) {
		bins := make([][]byte, nbins%4)
		for i := range bins {
			bins[i] = bytes.Repeat([]byte{byte(i)}, i)
		}
		var e encoder
		if err := e.arg(socketio.Arg{JSON: text, Attachments: bins}); err != nil {
			if len(e.Buf) != 0 {
				t.Fatal("output left after an error")
			}
			return
		}
		if !json.Valid(text) {
			t.Fatalf("accepted invalid JSON %q", text)
		}
		a, err := newDecoder(e.Buf).arg()
		if err != nil {
			t.Fatalf("cannot decode %x: %v", e.Buf, err)
		}
		checkArg(t, a)
	})
}

func FuzzBroadcast(f *testing.F) {
	f.Add([]byte{0x93, 0xa1, 'x', 0x83, 0xa4, 't', 'y', 'p', 'e', 0x02, 0xa4, 'd', 'a', 't', 'a', 0x92, 0xa1, 'm', 0x01,
		0xa3, 'n', 's', 'p', 0xa1, '/', 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := newDecoder(data).broadcast("me")
		if err != nil || p == nil {
			return
		}
		for _, a := range p.Args {
			checkArg(t, a)
		}
		if !utf8.ValidString(p.Event) && !validWTF8(p.Event) {
			t.Fatalf("event %q", p.Event)
		}
		var e encoder
		if err := e.broadcast("me", p); err != nil {
			t.Fatalf("cannot encode %+v: %v", p, err)
		}
	})
}

// validWTF8 reports whether s is UTF-8 with lone surrogates at most.
func validWTF8(s string) bool { return jsontext.ValidWTF8([]byte(s)) }

func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"uid":"x","requestId":"r","type":6,"data":["ping",1,{"a":"\ud800"}]}`))
	_, local := localServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req request
		var resp response
		if len(data) > 0 && data[0] == '{' {
			_ = req.fromJSON(data)
			_ = resp.fromJSON(data)
		} else {
			_ = req.fromMsgpack(data)
			_ = resp.fromMsgpack(data)
		}
		for _, a := range append(req.data, resp.data, resp.packet) {
			if len(a.JSON) > 0 && !json.Valid(a.JSON) {
				t.Fatalf("invalid argument %q", a.JSON)
			}
		}
		for _, raw := range resp.sockets {
			a := &nsAdapter{local: local}
			_, _ = a.socketFromWire(raw)
		}
	})
}
