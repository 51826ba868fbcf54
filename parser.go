package main

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

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
// rawJSON, and that incoming events are rate limited as they arrive.
// Everything else (CONNECT, ACK, binary events) is the library's.
type rawParser struct {
	// rate and burst configure each connection's eventLimiter; rate 0 is no limit.
	rate  float64
	burst int
}

var _ parser.Parser = rawParser{}

func (rawParser) NewEncoder() parser.Encoder { return parser.NewEncoder() }

func (p rawParser) NewDecoder() parser.Decoder {
	d := &rawDecoder{Decoder: parser.NewDecoder()}
	if p.rate > 0 {
		d.limit = newEventLimiter(p.rate, p.burst, time.Now())
	}
	return d
}

// limitedEvent is the name a rawDecoder gives an event it refused for going
// over the rate limit; limitEvents drops it, logs, and disconnects floods.
// Judging the rate here, when packets arrive, and not where they are handled,
// keeps a server that falls behind (and then handles a backlog in a burst)
// from taking its own delay for a client's flood.
const limitedEvent = "\x00rate-limited"

// rawDecoder decodes one connection's packets. Like the library's decoder it
// is fed by one goroutine at a time (the connection's reader).
type rawDecoder struct {
	parser.Decoder
	limit *eventLimiter // nil: no limit
	// attachments is the number of binary attachments the library's decoder
	// still waits for; text packets then go to it, which refuses them.
	attachments int
	// skip is the number of attachments of a refused binary event still to
	// discard; skipNsp is that event's namespace.
	skip    int
	skipNsp string
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
		if d.skip > 0 {
			if d.skip--; d.skip == 0 {
				d.refused(d.skipNsp)
			}
			return nil
		}
		if d.attachments > 0 {
			d.attachments--
		}
		return d.Decoder.Add(data)
	}
	if d.skip > 0 {
		return parser.ErrPlaintextDuringReconstruction
	}
	if d.attachments > 0 || len(s) == 0 {
		return d.Decoder.Add(data)
	}
	switch s[0] {
	case byte('0' + parser.EVENT):
		if d.limit != nil && !d.limit.allow(time.Now()) {
			d.refused(packetNsp(s[1:]))
			return nil
		}
		p, err := decodeRawEvent(s[1:])
		if err != nil {
			return err
		}
		d.Emit("decoded", p)
		return nil
	case byte('0' + parser.BINARY_EVENT), byte('0' + parser.BINARY_ACK):
		n := -1
		if i := strings.IndexByte(s, '-'); i > 1 {
			if v, err := strconv.Atoi(s[1:i]); err == nil && v > 0 && v <= int(parser.DefaultMaxAttachments) {
				n = v
			}
		}
		if n > 0 && s[0] == byte('0'+parser.BINARY_EVENT) && d.limit != nil && !d.limit.allow(time.Now()) {
			d.skip, d.skipNsp = n, packetNsp(s[strings.IndexByte(s, '-')+1:])
			return nil
		}
		if n > 0 {
			d.attachments = n
		}
	}
	return d.Decoder.Add(data)
}

// refused hands limitEvents a marker for an event dropped by the rate limit.
func (d *rawDecoder) refused(nsp string) {
	d.Emit("decoded", &parser.Packet{Type: parser.EVENT, Nsp: nsp, Data: []any{limitedEvent}})
}

// packetNsp is the namespace at the start of s ("/" when there is none).
func packetNsp(s string) string {
	if !strings.HasPrefix(s, "/") {
		return "/"
	}
	if end := strings.IndexByte(s, ','); end >= 0 {
		return s[:end]
	}
	return s
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
	if jsonDepth(s) > maxEventDepth {
		return nil, errTooDeep
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

// maxEventDepth bounds the nesting of an event's JSON (the argument array is
// level 1). Go's decoder stops at 10 000 levels; forwarding thousands of
// levels would still hand every recipient a parser stress test (it is what
// overflows the stack of Node's tutorial server), and no chat needs them.
const maxEventDepth = 128

var errTooDeep = errors.New("event JSON nested too deeply")

// jsonDepth is the deepest nesting of arrays and objects in s, strings
// skipped. It does not validate s; the decoder does that afterwards.
func jsonDepth(s string) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
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
