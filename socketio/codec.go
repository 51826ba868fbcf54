package socketio

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/chatio/socketio-chat/engineio"
)

// Parser is how Socket.IO packets are written on the wire: Node's `parser`
// option. The server speaks JSONParser (socket.io-parser, the default of
// every client), MsgpackParser (socket.io-msgpack-parser), or, with
// AutoParser, whichever each connection speaks.
//
// Whatever the parser, handlers see arguments as Arg: JSON text with
// binary attachments. A msgpack client's arguments are transcoded to that
// form on arrival, and back to msgpack on the way out (notepack.io's rules,
// see internal/notepack), so that recovery, history, the Redis adapters
// and the Admin UI see one representation, and a JSON client and a msgpack
// client can chat together.
type Parser interface {
	// Name is the parser's name: "json", "msgpack" or "auto".
	Name() string
	kind() parserKind
}

// parserKind is one wire format.
type parserKind uint32

const (
	kindJSON    parserKind = iota // socket.io-parser: text packets, binary attachments
	kindMsgpack                   // socket.io-msgpack-parser: one binary message per packet
	numKinds
	kindAuto = numKinds // not a wire format: chosen per connection
)

type namedParser struct {
	name string
	k    parserKind
}

func (p namedParser) Name() string     { return p.name }
func (p namedParser) kind() parserKind { return p.k }
func (p namedParser) String() string   { return p.name }

var (
	// JSONParser is socket.io-parser's format, the default: a packet is a
	// text message (JSON), followed by one binary message per attachment.
	JSONParser Parser = namedParser{"json", kindJSON}
	// MsgpackParser is the format of socket.io-msgpack-parser 3.0.2: a
	// packet is one binary message, a msgpack map {type, nsp, data, id}
	// written as notepack.io writes it. Clients need the same parser (the
	// socket.io.msgpack.min.js bundle, or the npm package).
	MsgpackParser Parser = namedParser{"msgpack", kindMsgpack}
	// AutoParser serves clients of both parsers: each connection's parser
	// is recognised from its first packet (msgpack packets are binary
	// messages, JSON ones text), and every broadcast is encoded once for
	// each parser in use among its recipients. Engine.IO v3 clients are
	// JSON clients.
	AutoParser Parser = namedParser{"auto", kindAuto}
)

// ParserByName returns the parser named "json", "msgpack" or "auto".
func ParserByName(name string) (Parser, error) {
	for _, p := range []Parser{JSONParser, MsgpackParser, AutoParser} {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("socketio: unknown parser %q (json, msgpack or auto)", name)
}

// parserUse counts the sessions of each wire format, so that a broadcast
// is encoded ahead (outside the order lock) for the formats in use only.
type parserUse [numKinds]atomic.Int64

// inUse reports whether some session speaks k.
func (u *parserUse) inUse(k parserKind) bool { return u[k].Load() > 0 }

// encodeEventFor encodes an EVENT packet in wire format k.
func encodeEventFor(k parserKind, nsp string, id int64, name string, args []Arg) []engineio.Message {
	if k == kindMsgpack {
		return []engineio.Message{encodeMsgpackPacket(typeEvent, nsp, id, name, true, args, nil)}
	}
	return encodeEvent(nsp, id, name, args)
}

// encodeAckFor encodes an ACK packet in wire format k.
func encodeAckFor(k parserKind, nsp string, id int64, args []Arg) []engineio.Message {
	if k == kindMsgpack {
		return []engineio.Message{encodeMsgpackPacket(typeAck, nsp, id, "", false, args, nil)}
	}
	return encodeAck(nsp, id, args)
}

// encodeControlFor encodes a CONNECT, DISCONNECT or CONNECT_ERROR packet,
// with an optional JSON payload, in wire format k.
func encodeControlFor(k parserKind, typ int, nsp string, payload []byte) engineio.Message {
	if k == kindMsgpack {
		return encodeMsgpackPacket(typ, nsp, -1, "", false, nil, payload)
	}
	return encodeControl(typ, nsp, payload)
}

// multiEncoded is one EVENT packet for recipients of several wire formats:
// each format is encoded once, on first need (or ahead, with encodeAhead),
// and the recipients of each share its messages. It belongs to the
// goroutine that broadcasts; under the order lock when it encodes there.
type multiEncoded struct {
	nsp    string
	id     int64
	event  string
	args   []Arg
	msgs   [numKinds][]engineio.Message
	out    [numKinds][]engineio.Message // msgs with the last one tracked
	track  *engineio.Delivery
	share  int  // the recipients selected, among whom the payload is shared
	nocomp bool // sent uncompressed (BroadcastOptions.NoCompress)
}

// get returns the encoding in format k.
func (m *multiEncoded) get(k parserKind) []engineio.Message {
	if m.msgs[k] == nil {
		m.msgs[k] = encodeEventFor(k, m.nsp, m.id, m.event, m.args)
	}
	return m.msgs[k]
}

// forRecipient returns the messages a recipient in format k is sent: the
// encoding, marked as shared by the fan-out's recipients (for the engine's
// queue budget) and its last message tracked when the fan-out is followed.
func (m *multiEncoded) forRecipient(k parserKind) []engineio.Message {
	if m.track == nil && m.share < 2 && !m.nocomp {
		return m.get(k)
	}
	if m.out[k] == nil {
		out := slices.Clone(m.get(k)) // the recovery log keeps the plain ones
		for i := range out {
			if m.share > 1 {
				out[i] = out[i].Shared(m.share)
			}
			if m.nocomp {
				out[i] = out[i].Uncompressed()
			}
		}
		if m.track != nil {
			out[len(out)-1] = out[len(out)-1].Tracked(m.track)
		}
		m.out[k] = out
	}
	return m.out[k]
}

// encodeAhead encodes the formats in use by the server's sessions: JSON
// always unless the server speaks msgpack only (what hooks measure, and
// the one encoding of a JSON server, as before parsers), msgpack when a
// session speaks it.
func (m *multiEncoded) encodeAhead(s *Server) {
	for k := range numKinds {
		if s.parsers.inUse(k) || (k == kindJSON && s.parserKind() != kindMsgpack) {
			m.get(k)
		}
	}
}

// sizeMsgs is an encoding to measure the event by (hooks' EventSent): the
// JSON one, which EventReceived measures too.
func (m *multiEncoded) sizeMsgs() []engineio.Message { return m.get(kindJSON) }

// transcodeLogged returns the msgpack encoding of a logged JSON EVENT
// packet (a broadcast kept for recovery, as encodeEvent wrote it).
func transcodeLogged(msgs []engineio.Message) []engineio.Message {
	p, err := decodePacket(msgs[0].Payload())
	if err != nil {
		return nil
	}
	for _, m := range msgs[1:] {
		p.bins = append(p.bins, m.Payload())
	}
	args, err := p.argsFrom(1)
	if err != nil {
		return nil
	}
	return encodeEventFor(kindMsgpack, p.nsp, p.id, p.eventName(), args)
}

// parserKind is the wire format of the server's sessions (kindAuto: each
// its own).
func (s *Server) parserKind() parserKind {
	if s.opts.Parser == nil {
		return kindJSON
	}
	return s.opts.Parser.kind()
}

// initWire sets the client's wire format from the server's parser, on the
// handshake's goroutine; with AutoParser it is left to the first packet,
// except for Engine.IO v3 clients (Socket.IO v2), which speak JSON.
func (c *client) initWire() {
	k := c.srv.parserKind()
	if k == kindAuto && c.conn.Protocol() == 3 {
		k = kindJSON
	}
	c.setKind(k)
}

// The client's wire field: its parserKind, and wireEnded once it is no
// longer counted in use.
const wireEnded = 1 << 8

// setKind fixes the client's wire format and counts it in use.
func (c *client) setKind(k parserKind) {
	c.wire.Store(uint32(k))
	if k < numKinds {
		c.srv.parsers[k].Add(1)
	}
}

// kind is the client's wire format for what it is sent (JSON until an
// AutoParser client's first packet); safe from any goroutine.
func (c *client) kind() parserKind {
	k := parserKind(c.wire.Load() &^ wireEnded)
	if k >= numKinds {
		return kindJSON
	}
	return k
}

// endWire stops counting the closed client's wire format. It runs once,
// from OnClose; the client keeps its format for its last packets.
func (c *client) endWire() {
	w := c.wire.Load()
	if w&wireEnded != 0 {
		return
	}
	if k := parserKind(w); k < numKinds {
		c.srv.parsers[k].Add(-1)
	}
	c.wire.Store(w | wireEnded)
}

// wireMessage handles a message of a msgpack client, and recognises the
// parser of an AutoParser client from its first message: binary for
// msgpack, text for JSON. It reports whether it handled the message (false:
// it is one of a JSON client, for OnMessage's decoder). It runs on the
// session's handler calls.
func (c *client) wireMessage(data []byte, binary bool) bool {
	w := c.wire.Load()
	switch parserKind(w &^ wireEnded) {
	case kindJSON:
		return false
	case kindAuto:
		if w&wireEnded != 0 {
			return false // closed before its first packet: not counted
		}
		if !binary {
			c.setKind(kindJSON)
			return false
		}
		c.setKind(kindMsgpack)
	}
	if !binary {
		c.refuse(errMsgpackText)
		return true
	}
	p, err := decodeMsgpackPacket(data)
	if err != nil {
		c.refuse(err)
		return true
	}
	c.handle(p)
	return true
}

// uncompressed marks msgs, a packet of ours, to be sent uncompressed.
func uncompressed(msgs []engineio.Message) {
	for i := range msgs {
		msgs[i] = msgs[i].Uncompressed()
	}
}
