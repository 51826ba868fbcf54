package redisadapter

import (
	"github.com/chatio/socketio-chat/internal/jsontext"
	"github.com/chatio/socketio-chat/internal/notepack"
	"github.com/chatio/socketio-chat/socketio"
)

// The msgpack codec with notepack.io's rules lives in internal/notepack,
// shared with socketio's msgpack parser; encoder and decoder add the
// adapter's wire format (wire.go, messages.go) to it.

// maxDepth bounds the nesting of arrays and objects inside one argument.
const maxDepth = socketio.MaxDepth

// decoder reads the adapter's messages. Attachments it returns alias its
// input.
type decoder struct{ notepack.Decoder }

func newDecoder(b []byte) *decoder { return &decoder{*notepack.NewDecoder(b)} }

// arg transcodes the next item into an argument.
func (d *decoder) arg() (socketio.Arg, error) {
	json, bins, err := d.Arg()
	if err != nil {
		return socketio.Arg{}, err
	}
	return socketio.Arg{JSON: json, Attachments: bins}, nil
}

// encoder writes the adapter's messages. Its buffers are reused from one
// message to the next; it is not safe for concurrent use.
type encoder struct {
	notepack.Encoder
	spans [][3]int // the publisher's: where each encoded broadcast lies in Buf
}

// arg transcodes one argument. On error, Buf is left as it was.
func (e *encoder) arg(a socketio.Arg) error { return e.JSON(a.JSON, a.Attachments) }

// JavaScript text helpers (see internal/jsontext and internal/notepack).
var (
	appendQuotedString = jsontext.AppendQuote[string]
	jsDateString       = notepack.JSDateString
	decodeJSONString   = jsontext.AppendUnquoted
	jsNumberString     = notepack.JSNumberString
	jsString           = jsontext.JSString
)
