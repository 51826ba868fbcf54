package main

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// rawJSON is one event argument kept as the JSON text the client sent. It is
// forwarded as is, so a chat message keeps its object key order and number
// spelling, as Node's server (which never changes what it forwards) does.
// It is a named type, not []byte, so it is never taken for binary.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// rawParser is the library's Socket.IO parser, except that the arguments of
// text EVENT packets are not decoded into Go maps and slices but kept as
// rawJSON. Everything else (CONNECT, ACK, binary events) is the library's.
type rawParser struct{}

var _ parser.Parser = rawParser{}

func (rawParser) NewEncoder() parser.Encoder { return parser.NewEncoder() }
func (rawParser) NewDecoder() parser.Decoder { return &rawDecoder{Decoder: parser.NewDecoder()} }

// rawDecoder decodes one connection's packets. Like the library's decoder it
// is fed by one goroutine at a time (the connection's reader).
type rawDecoder struct {
	parser.Decoder
	// attachments is the number of binary attachments the library's decoder
	// still waits for; text packets then go to it, which refuses them.
	attachments int
}

// Add decodes one Engine.IO message: text EVENT packets here, anything else
// by the library's decoder.
func (d *rawDecoder) Add(data any) error {
	var s string
	switch v := data.(type) {
	case string:
		s = v
	case *types.StringBuffer:
		s = v.String() // does not consume the buffer
	default:
		if d.attachments > 0 {
			d.attachments--
		}
		return d.Decoder.Add(data)
	}
	if d.attachments > 0 || len(s) == 0 || s[0] != byte('0'+parser.EVENT) {
		if len(s) > 1 && (s[0] == byte('0'+parser.BINARY_EVENT) || s[0] == byte('0'+parser.BINARY_ACK)) {
			if i := strings.IndexByte(s, '-'); i > 1 {
				if n, err := strconv.Atoi(s[1:i]); err == nil && n > 0 && n <= int(parser.DefaultMaxAttachments) {
					d.attachments = n
				}
			}
		}
		return d.Decoder.Add(data)
	}
	p, err := decodeRawEvent(s[1:])
	if err != nil {
		return err
	}
	d.Emit("decoded", p)
	return nil
}

// decodeRawEvent parses what follows the type of an EVENT packet:
// [/namespace,][id]["event", args...], with the library's limits.
func decodeRawEvent(s string) (*parser.Packet, error) {
	p := &parser.Packet{Type: parser.EVENT, Nsp: "/"}
	if strings.HasPrefix(s, "/") {
		end := strings.IndexByte(s, ',')
		if end < 0 {
			end = len(s)
		}
		if end > parser.DefaultMaxNamespaceLength {
			return nil, parser.ErrIllegalNamespace
		}
		p.Nsp, s = s[:end], s[min(end+1, len(s)):]
	}
	digits := 0
	for digits < len(s) && s[digits] >= '0' && s[digits] <= '9' {
		digits++
	}
	if digits > 0 {
		if digits > parser.DefaultMaxPacketIDLength {
			return nil, parser.ErrIllegalID
		}
		id, err := strconv.ParseUint(s[:digits], 10, 64)
		if err != nil {
			return nil, parser.ErrIllegalID
		}
		p.Id, s = &id, s[digits:]
	}
	var args []json.RawMessage
	if err := json.Unmarshal([]byte(s), &args); err != nil || len(args) == 0 {
		return nil, parser.ErrInvalidPayload
	}
	data := make([]any, len(args))
	switch args[0][0] {
	case '"':
		var name string
		if json.Unmarshal(args[0], &name) != nil || parser.ReservedEvents.Has(name) {
			return nil, parser.ErrInvalidPayload
		}
		data[0] = name
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var num float64
		if json.Unmarshal(args[0], &num) != nil {
			return nil, parser.ErrInvalidPayload
		}
		data[0] = num
	default:
		return nil, parser.ErrInvalidPayload
	}
	for i, a := range args[1:] {
		data[i+1] = rawJSON(a)
	}
	p.Data = data
	return p, nil
}

// decodeRaw turns rawJSON arguments back into Go values, for the paths that
// need them (a cluster adapter encodes packets with msgpack).
func decodeRaw(v any) any {
	raw, ok := v.(rawJSON)
	if !ok {
		return v
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil
	}
	return out
}
