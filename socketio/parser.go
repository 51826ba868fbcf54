package socketio

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/internal/jsontext"
)

// Socket.IO packet types (protocol v5).
const (
	typeConnect      = 0
	typeDisconnect   = 1
	typeEvent        = 2
	typeAck          = 3
	typeConnectError = 4
	typeBinaryEvent  = 5
	typeBinaryAck    = 6
)

// Limits of the decoder, as in Node's socket.io-parser.
const (
	// MaxAttachments is the most binary attachments one packet may announce.
	MaxAttachments = 10
	// maxNamespaceLength bounds a namespace name.
	maxNamespaceLength = 256
	// maxID bounds an acknowledgement id: Number.MAX_SAFE_INTEGER, the
	// largest integer JavaScript holds exactly (beyond it socket.io-parser
	// rounds the id, and the client could not match the ack).
	maxID = 1<<53 - 1
)

// reservedEvents may not be sent by a client (socket.io-parser's list).
var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

var (
	errUnknownType    = errors.New("unknown packet type")
	errAttachments    = errors.New("illegal attachments")
	errTooManyAttach  = errors.New("too many attachments")
	errNamespace      = errors.New("illegal namespace")
	errID             = errors.New("illegal ack id")
	errPayload        = errors.New("invalid payload")
	errReservedEvent  = errors.New("reserved event name")
	errPlainInBinary  = errors.New("got plaintext data when reconstructing a packet")
	errUnexpectedBin  = errors.New("got binary data when not reconstructing a packet")
	errAttachmentSize = errors.New("attachments too large")
)

// packet is a decoded Socket.IO packet.
type packet struct {
	typ         int
	nsp         string
	id          int64 // -1: none
	attachments int
	data        []byte   // the JSON payload, nil when there is none
	args        [][]byte // EVENT and ACK: the payload array's elements
	bins        [][]byte // the attachments of a binary packet
}

// decodePacket parses the text of a Socket.IO packet with Node's rules.
func decodePacket(b []byte) (*packet, error) {
	if len(b) == 0 || b[0] < '0' || b[0] > '6' {
		return nil, errUnknownType
	}
	p := &packet{typ: int(b[0] - '0'), nsp: "/", id: -1}
	i := 1
	if p.typ == typeBinaryEvent || p.typ == typeBinaryAck {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == i || j >= len(b) || b[j] != '-' || j-i > 5 {
			return nil, errAttachments
		}
		n, _ := strconv.Atoi(string(b[i:j]))
		if n < 1 {
			return nil, errAttachments
		}
		if n > MaxAttachments {
			return nil, errTooManyAttach
		}
		p.attachments = n
		i = j + 1
	}
	if i < len(b) && b[i] == '/' {
		j := i
		for j < len(b) && b[j] != ',' {
			j++
		}
		if j-i > maxNamespaceLength {
			return nil, errNamespace
		}
		p.nsp = string(b[i:j])
		i = j
		if i < len(b) {
			i++ // the comma
		}
	}
	if i < len(b) && b[i] >= '0' && b[i] <= '9' {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		id, err := strconv.ParseInt(string(b[i:j]), 10, 64) // leading zeros and all, as Number() reads them
		if err != nil || id > maxID {
			return nil, errID
		}
		p.id = id
		i = j
	}
	if i < len(b) {
		p.data = b[i:]
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// validate checks the payload against the packet type (socket.io-parser's
// isPayloadValid), splitting event and ack arguments.
func (p *packet) validate() error {
	switch p.typ {
	case typeConnect:
		if p.data == nil {
			return nil
		}
		if err := validValue(p.data); err != nil {
			return fmt.Errorf("%w: %v", errPayload, err)
		}
		if !isObject(p.data) {
			return errPayload
		}
	case typeDisconnect:
		if p.data != nil {
			return errPayload
		}
	case typeEvent, typeBinaryEvent, typeAck, typeBinaryAck:
		if p.data == nil {
			return errPayload
		}
		args, err := splitArray(p.data)
		if err != nil {
			return fmt.Errorf("%w: %v", errPayload, err)
		}
		if p.typ == typeEvent || p.typ == typeBinaryEvent {
			if len(args) == 0 {
				return errPayload
			}
			switch c := args[0][0]; {
			case c == '"':
				name, ok := unquote(args[0])
				if !ok {
					return errPayload
				}
				if reservedEvents[name] {
					return errReservedEvent
				}
			case c == '-' || (c >= '0' && c <= '9'):
			default:
				return errPayload
			}
		}
		p.args = args
	default: // CONNECT_ERROR comes from servers only
		return errUnknownType
	}
	return nil
}

func isObject(b []byte) bool {
	i := jsontext.SkipSpace(b, 0)
	return i < len(b) && b[i] == '{'
}

// eventName is the name of an event packet: its first argument, a string
// or a number (as JSON writes it).
func (p *packet) eventName() string {
	if name, ok := unquote(p.args[0]); ok {
		return name
	}
	return string(p.args[0])
}

// argsFrom returns the packet's arguments from index first, with their
// attachments.
func (p *packet) argsFrom(first int) ([]Arg, error) {
	if first >= len(p.args) {
		return nil, nil
	}
	out := make([]Arg, len(p.args)-first)
	for i, a := range p.args[first:] {
		if p.bins == nil {
			out[i] = Arg{JSON: a}
			continue
		}
		arg, err := canonicalArg(a, p.bins)
		if err != nil {
			return nil, err
		}
		out[i] = arg
	}
	return out, nil
}

// encoder builds the text of one outgoing packet.
type encoder struct {
	b    []byte
	bins [][]byte
}

// header writes the packet type, the attachment count (filled in by
// finish), the namespace and the ack id. The Engine.IO MESSAGE type '4'
// comes first, so that the bytes are the Engine.IO packet.
func (e *encoder) header(typ int, nsp string, id int64) {
	e.b = append(e.b[:0], '4', byte('0'+typ))
	if nsp != "/" && nsp != "" {
		e.b = append(e.b, nsp...)
		e.b = append(e.b, ',')
	}
	if id >= 0 {
		e.b = strconv.AppendInt(e.b, id, 10)
	}
}

// args writes the JSON array of an event (name first) or ack.
func (e *encoder) args(name string, withName bool, args []Arg) {
	e.b = append(e.b, '[')
	if withName {
		e.b = appendQuote(e.b, name)
	}
	for i, a := range args {
		if i > 0 || withName {
			e.b = append(e.b, ',')
		}
		e.b, e.bins = a.appendTo(e.b, e.bins)
	}
	e.b = append(e.b, ']')
}

// messages returns the Engine.IO messages of the packet: the text, turned
// into a binary type with its attachment count if it has attachments,
// followed by the attachments.
func (e *encoder) messages() []engineio.Message {
	if len(e.bins) == 0 {
		return []engineio.Message{engineio.TextMessage(e.b)}
	}
	// EVENT (2) → BINARY_EVENT (5), ACK (3) → BINARY_ACK (6), count and '-'.
	n := strconv.Itoa(len(e.bins))
	out := make([]byte, 0, len(e.b)+len(n)+1)
	out = append(out, '4', e.b[1]+3)
	out = append(out, n...)
	out = append(out, '-')
	out = append(out, e.b[2:]...)
	msgs := make([]engineio.Message, 0, 1+len(e.bins))
	msgs = append(msgs, engineio.TextMessage(out))
	for _, b := range e.bins {
		msgs = append(msgs, engineio.BinaryMessage(b))
	}
	return msgs
}

// encodeEvent encodes an EVENT (or BINARY_EVENT) packet.
func encodeEvent(nsp string, id int64, name string, args []Arg) []engineio.Message {
	var e encoder
	e.header(typeEvent, nsp, id)
	e.args(name, true, args)
	return e.messages()
}

// encodeAck encodes an ACK (or BINARY_ACK) packet.
func encodeAck(nsp string, id int64, args []Arg) []engineio.Message {
	var e encoder
	e.header(typeAck, nsp, id)
	e.args("", false, args)
	return e.messages()
}

// encodeControl encodes a CONNECT, DISCONNECT or CONNECT_ERROR packet with
// an optional JSON payload.
func encodeControl(typ int, nsp string, payload []byte) engineio.Message {
	var e encoder
	e.header(typ, nsp, -1)
	e.b = append(e.b, payload...)
	return engineio.TextMessage(e.b)
}
