package engineio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Engine.IO packet types, as the first character of a text packet (v4 and
// v3) or the first byte of a v3 binary packet.
const (
	typeOpen    = '0'
	typeClose   = '1'
	typePing    = '2'
	typePong    = '3'
	typeMessage = '4'
	typeUpgrade = '5'
	typeNoop    = '6'
)

// recordSeparator separates the packets of a v4 polling payload.
const recordSeparator = 0x1e

// errParse is what a malformed packet or payload decodes to; the session
// that sent it is closed with the reason "parse error", as in Node.
var errParse = errors.New("parser error")

// packet is one decoded incoming Engine.IO packet. For a message, data is
// the payload (text without the type character, or the binary bytes); it is
// owned by the receiver.
type packet struct {
	typ    byte
	data   []byte
	binary bool
}

// Message is an Engine.IO MESSAGE packet, encoded once and sent to any
// number of sessions, over any transport and protocol version. Its bytes are
// shared between those sessions and never modified.
type Message struct {
	b      []byte // text: '4' and the payload; binary: the payload
	binary bool
	share  uint32    // the number of queues sharing b (a broadcast's recipients); 0 or 1: not shared
	nocomp bool      // never compressed (Uncompressed)
	track  *Delivery // told when the message was written or dropped; nil when untracked
}

// Shared returns m marked as one of n copies sharing its payload: the
// recipients of one broadcast. Each session's own bound
// (Options.MaxQueuedBytes) still counts the whole payload, which is what
// that client has to receive; the process-wide budget (Options.QueueBudget)
// counts 1/n of it per queue, since the payload is held once whatever the
// number of queues it waits in. n < 2 means not shared.
func (m Message) Shared(n int) Message {
	m.share = uint32(min(max(int64(n), 0), 1<<31))
	return m
}

// TextMessage returns the MESSAGE packet whose encoding is b: the type
// character '4' followed by the text payload. It does not copy b, which the
// caller must not modify afterwards. It panics if b does not start with '4'.
func TextMessage(b []byte) Message {
	if len(b) == 0 || b[0] != typeMessage {
		panic("engineio: TextMessage wants the encoded packet, starting with '4'")
	}
	return Message{b: b}
}

// BinaryMessage returns a binary MESSAGE packet with payload b, which it
// does not copy.
func BinaryMessage(b []byte) Message { return Message{b: b, binary: true} }

// Uncompressed returns m, marked to be sent without compression on a
// WebSocket that negotiated permessage-deflate (Node's
// socket.compress(false)). Polling responses are gzipped as before
// (Options.CompressionThreshold).
func (m Message) Uncompressed() Message {
	m.nocomp = true
	return m
}

// IsBinary reports whether m is a binary message.
func (m Message) IsBinary() bool { return m.binary }

// Payload is m's payload (without the type character of a text message).
func (m Message) Payload() []byte {
	if m.binary {
		return m.b
	}
	return m.b[1:]
}

// size is what m costs in a send queue.
func (m Message) size() int { return len(m.b) }

// control packets the server sends, encoded once.
var (
	pingMessage  = Message{b: []byte{typePing}}
	pongMessage  = Message{b: []byte{typePong}}
	noopMessage  = Message{b: []byte{typeNoop}}
	closeMessage = Message{b: []byte{typeClose}}
	probeMessage = Message{b: []byte("3probe")}
)

// decodeText decodes one text packet (a WebSocket text frame, or one packet
// of a polling payload). A v4 polling payload may carry binary packets as
// 'b' and base64; v3 ones as 'b', the type, and base64.
func decodeText(s []byte, protocol int) (packet, error) {
	if len(s) == 0 {
		return packet{}, errParse
	}
	if s[0] == 'b' {
		rest := s[1:]
		if protocol == 3 {
			if len(rest) == 0 || rest[0] < '0' || rest[0] > '6' {
				return packet{}, errParse
			}
			typ := rest[0]
			data, err := decodeBase64(rest[1:])
			if err != nil {
				return packet{}, errParse
			}
			return packet{typ: typ, data: data, binary: true}, nil
		}
		data, err := decodeBase64(rest)
		if err != nil {
			return packet{}, errParse
		}
		return packet{typ: typeMessage, data: data, binary: true}, nil
	}
	if s[0] < '0' || s[0] > '6' {
		return packet{}, errParse
	}
	return packet{typ: s[0], data: s[1:]}, nil
}

// decodeBinaryFrame decodes a WebSocket binary frame: a v4 binary message
// is the frame's payload; a v3 one starts with the packet type as a byte.
func decodeBinaryFrame(b []byte, protocol int) (packet, error) {
	if protocol == 3 {
		if len(b) == 0 || b[0] > 6 {
			return packet{}, errParse
		}
		return packet{typ: '0' + b[0], data: b[1:], binary: true}, nil
	}
	return packet{typ: typeMessage, data: b, binary: true}, nil
}

func decodeBase64(b []byte) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(out, b)
	return out[:n], err
}

// decodePayloadV4 splits a v4 polling body into its packets. The packets'
// data alias body.
func decodePayloadV4(body []byte) ([]packet, error) {
	var out []packet
	for {
		i := bytes.IndexByte(body, recordSeparator)
		part := body
		if i >= 0 {
			part = body[:i]
		}
		p, err := decodeText(part, 4)
		if err != nil {
			return out, err
		}
		out = append(out, p)
		if i < 0 {
			return out, nil
		}
		body = body[i+1:]
	}
}

// decodePayloadV3Text splits a v3 text polling body ("<length>:<packet>"…,
// lengths in UTF-16 code units, as JavaScript counts them).
func decodePayloadV3Text(body []byte) ([]packet, error) {
	if len(body) == 0 {
		return nil, errParse
	}
	var out []packet
	for len(body) > 0 {
		colon := bytes.IndexByte(body, ':')
		if colon <= 0 || colon > 20 {
			return out, errParse
		}
		n, err := strconv.Atoi(string(body[:colon]))
		if err != nil || n < 0 {
			return out, errParse
		}
		body = body[colon+1:]
		size, ok := utf16Prefix(body, n)
		if !ok {
			return out, errParse
		}
		if size > 0 {
			p, err := decodeText(body[:size], 3)
			if err != nil {
				return out, err
			}
			out = append(out, p)
		}
		body = body[size:]
	}
	return out, nil
}

// utf16Prefix returns the length in bytes of the first n UTF-16 code units
// of the UTF-8 text b.
func utf16Prefix(b []byte, n int) (int, bool) {
	i := 0
	for n > 0 {
		if i >= len(b) {
			return 0, false
		}
		r, size := utf8.DecodeRune(b[i:])
		units := 1
		if r >= 0x10000 {
			units = 2
		}
		if units > n {
			return 0, false
		}
		n -= units
		i += size
	}
	return i, true
}

// utf16Len is the length of the UTF-8 text b in UTF-16 code units.
func utf16Len(b []byte) int {
	n := 0
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			n++
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
		i += size
	}
	return n
}

// decodePayloadV3Binary decodes a v3 binary polling body (XHR2): per
// packet a 0 (text) or 1 (binary) byte, the length as decimal digits one per
// byte, 255, and the packet.
func decodePayloadV3Binary(body []byte) ([]packet, error) {
	var out []packet
	for len(body) > 0 {
		isText := body[0] == 0
		if body[0] > 1 {
			return out, errParse
		}
		n, i := 0, 1
		for ; i < len(body) && body[i] != 255; i++ {
			if body[i] > 9 || i > 10 {
				return out, errParse
			}
			n = n*10 + int(body[i])
		}
		if i >= len(body) || i == 1 {
			return out, errParse
		}
		body = body[i+1:]
		if n > len(body) {
			return out, errParse
		}
		msg := body[:n]
		body = body[n:]
		var (
			p   packet
			err error
		)
		if isText {
			p, err = decodeText(msg, 3)
		} else {
			p, err = decodeBinaryFrame(msg, 3)
		}
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

// appendPayloadV4 appends the v4 polling encoding of msgs to dst.
func appendPayloadV4(dst []byte, msgs []Message) []byte {
	for i, m := range msgs {
		if i > 0 {
			dst = append(dst, recordSeparator)
		}
		if m.binary {
			dst = append(dst, 'b')
			dst = base64.StdEncoding.AppendEncode(dst, m.b)
		} else {
			dst = append(dst, m.b...)
		}
	}
	return dst
}

// appendPayloadV3Text appends the v3 text polling encoding of msgs:
// binary packets as "b4" and base64.
func appendPayloadV3Text(dst []byte, msgs []Message) []byte {
	if len(msgs) == 0 {
		return append(dst, "0:"...)
	}
	for _, m := range msgs {
		if m.binary {
			n := 2 + base64.StdEncoding.EncodedLen(len(m.b))
			dst = strconv.AppendInt(dst, int64(n), 10)
			dst = append(dst, ":b4"...)
			dst = base64.StdEncoding.AppendEncode(dst, m.b)
			continue
		}
		dst = strconv.AppendInt(dst, int64(utf16Len(m.b)), 10)
		dst = append(dst, ':')
		dst = append(dst, m.b...)
	}
	return dst
}

// appendPayloadV3Binary appends the v3 binary (XHR2) polling encoding.
func appendPayloadV3Binary(dst []byte, msgs []Message) []byte {
	for _, m := range msgs {
		n := len(m.b)
		if m.binary {
			dst = append(dst, 1)
			n++ // the type byte
		} else {
			dst = append(dst, 0)
		}
		for _, d := range strconv.Itoa(n) {
			dst = append(dst, byte(d-'0'))
		}
		dst = append(dst, 255)
		if m.binary {
			dst = append(dst, 4)
		}
		dst = append(dst, m.b...)
	}
	return dst
}
