package shardedadapter

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/chatio/socketio-chat/internal/jsontext"
	"github.com/chatio/socketio-chat/internal/notepack"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/chatio/socketio-chat/socketio/redisadapter"
)

// The messages of socket.io-adapter's ClusterAdapter (2.5.x), as
// @socket.io/redis-adapter's ShardedRedisAdapter (8.3.0) publishes them:
// {type, data, uid, nsp}, written by JSON.stringify, or by notepack.io
// (msgpack) when the message may carry binary data and does (broadcasts,
// acks, fetchSockets answers, server-side events and their answers).
// A reader tells them apart by the first byte: '{' is JSON.
const (
	msgBroadcast              = 3
	msgSocketsJoin            = 4
	msgSocketsLeave           = 5
	msgDisconnectSockets      = 6
	msgFetchSockets           = 7
	msgFetchSocketsResponse   = 8
	msgServerSideEmit         = 9
	msgServerSideEmitResponse = 10
	msgBroadcastClientCount   = 11
	msgBroadcastAck           = 12
)

// packetEvent is socket.io-parser's EVENT.
const packetEvent = 2

// newUID is an id as ClusterAdapter's randomId: 8 random bytes in hex. It
// names a node's namespace adapter and its requests.
func newUID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// looksLikeASocketID is Node's test: a socket's own room has 20 characters.
func looksLikeASocketID(room string) bool { return utf16Len(room) == 20 }

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n++
		}
		n++
	}
	return n
}

// message builds one message: JSON text whose arguments' placeholders are
// numbered across the whole message, and their attachments.
type message struct {
	b    []byte
	bins [][]byte
}

func (m *message) raw(s string) { m.b = append(m.b, s...) }
func (m *message) str(s string) { m.b = jsontext.AppendQuote(m.b, s) }
func (m *message) int(n int64)  { m.b = strconv.AppendInt(m.b, n, 10) }
func (m *message) strings(l []string) {
	m.b = append(m.b, '[')
	for i, s := range l {
		if i > 0 {
			m.b = append(m.b, ',')
		}
		m.str(s)
	}
	m.b = append(m.b, ']')
}

// arg appends an argument; an argument that is not JSON is null.
func (m *message) arg(a socketio.Arg) {
	js := []byte(a.JSON)
	if len(js) == 0 || !json.Valid(js) {
		m.raw("null")
		return
	}
	if len(a.Attachments) == 0 {
		m.b = append(m.b, js...)
		return
	}
	base := len(m.bins)
	m.bins = append(m.bins, a.Attachments...)
	for {
		i := bytes.Index(js, []byte(notepack.PlaceholderPrefix))
		if i < 0 {
			m.b = append(m.b, js...)
			return
		}
		num, end, ok := notepack.PlaceholderAt(js, i, len(a.Attachments))
		if !ok {
			m.b = append(m.b, js[:i+1]...)
			js = js[i+1:]
			continue
		}
		m.b = append(m.b, js[:i]...)
		m.raw(notepack.PlaceholderPrefix)
		m.int(int64(base + num))
		m.raw("}")
		js = js[end:]
	}
}

func (m *message) opts(o socketio.BroadcastOptions) {
	m.raw(`{"rooms":`)
	m.strings(unique(o.Rooms))
	m.raw(`,"except":`)
	m.strings(unique(o.Except))
	m.raw(`,"flags":{`)
	if o.Volatile {
		m.raw(`"volatile":true`)
	}
	if o.Timeout > 0 {
		if o.Volatile {
			m.raw(",")
		}
		m.raw(`"timeout":`)
		m.int(o.Timeout.Milliseconds())
	}
	m.raw("}}")
}

// event appends [event, ...args].
func (m *message) event(event string, args []socketio.Arg) {
	m.raw("[")
	m.str(event)
	for _, a := range args {
		m.raw(",")
		m.arg(a)
	}
	m.raw("]")
}

// begin starts {"type":typ,"data":; end closes it with uid and nsp and
// returns the payload: the JSON, or its msgpack when it carries binary.
func (m *message) begin(typ int) {
	m.raw(`{"type":`)
	m.int(int64(typ))
	m.raw(`,"data":`)
}

func (m *message) end(uid, nsp string) ([]byte, error) {
	m.raw(`,"uid":`)
	m.str(uid)
	m.raw(`,"nsp":`)
	m.str(nsp)
	m.raw("}")
	if len(m.bins) == 0 {
		return m.b, nil
	}
	var e notepack.Encoder
	if err := e.JSON(m.b, m.bins); err != nil {
		return nil, err
	}
	return e.Buf, nil
}

func unique(rooms []string) []string {
	out := rooms[:0:0]
	for _, r := range rooms {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// The messages a node publishes.

func encodeBroadcast(uid string, p *socketio.BroadcastPacket, requestID string) ([]byte, error) {
	var m message
	m.begin(msgBroadcast)
	m.raw(`{"packet":{"type":2,"data":`)
	m.event(p.Event, p.Args)
	m.raw("}")
	if requestID != "" {
		m.raw(`,"requestId":`)
		m.str(requestID)
	}
	m.raw(`,"opts":`)
	m.opts(p.Opts)
	m.raw("}")
	return m.end(uid, p.Nsp)
}

func encodeRooms(typ int, uid, nsp string, opts socketio.BroadcastOptions, rooms []string) ([]byte, error) {
	var m message
	m.begin(typ)
	m.raw(`{"opts":`)
	m.opts(opts)
	m.raw(`,"rooms":`)
	m.strings(unique(rooms))
	m.raw("}")
	return m.end(uid, nsp)
}

func encodeDisconnect(uid, nsp string, opts socketio.BroadcastOptions, close bool) ([]byte, error) {
	var m message
	m.begin(msgDisconnectSockets)
	m.raw(`{"opts":`)
	m.opts(opts)
	m.raw(`,"close":` + strconv.FormatBool(close) + "}")
	return m.end(uid, nsp)
}

func encodeServerSideEmit(uid, nsp, requestID, event string, args []socketio.Arg) ([]byte, error) {
	var m message
	m.begin(msgServerSideEmit)
	m.raw("{")
	if requestID != "" {
		m.raw(`"requestId":`)
		m.str(requestID)
		m.raw(",")
	}
	m.raw(`"packet":`)
	m.event(event, args)
	m.raw("}")
	return m.end(uid, nsp)
}

func encodeFetchSockets(uid, nsp, requestID string, opts socketio.BroadcastOptions) ([]byte, error) {
	var m message
	m.begin(msgFetchSockets)
	m.raw(`{"opts":`)
	m.opts(opts)
	m.raw(`,"requestId":`)
	m.str(requestID)
	m.raw("}")
	return m.end(uid, nsp)
}

// The answers. arg nil leaves the packet out (undefined in Node).

func encodeArgResponse(typ int, uid, nsp, requestID string, arg *socketio.Arg) ([]byte, error) {
	var m message
	m.begin(typ)
	m.raw(`{"requestId":`)
	m.str(requestID)
	if arg != nil {
		m.raw(`,"packet":`)
		m.arg(*arg)
	}
	m.raw("}")
	return m.end(uid, nsp)
}

func encodeClientCount(uid, nsp, requestID string, n int) ([]byte, error) {
	var m message
	m.begin(msgBroadcastClientCount)
	m.raw(`{"requestId":`)
	m.str(requestID)
	m.raw(`,"clientCount":`)
	m.int(int64(n))
	m.raw("}")
	return m.end(uid, nsp)
}

func encodeFetchResponse(uid, nsp, requestID string, sockets []*socketio.RemoteSocket) ([]byte, error) {
	var m message
	m.begin(msgFetchSocketsResponse)
	m.raw(`{"requestId":`)
	m.str(requestID)
	m.raw(`,"sockets":[`)
	for i, s := range sockets {
		if i > 0 {
			m.raw(",")
		}
		m.b = redisadapter.AppendSocketJSON(m.b, s)
	}
	m.raw("]}")
	return m.end(uid, nsp)
}

// Reading another node's message.

// decoded is a message of another node.
type decoded struct {
	typ  int
	uid  string
	nsp  string
	data wireData
	bins [][]byte // the attachments of a msgpack message
}

type wireData struct {
	Packet      json.RawMessage   `json:"packet"`
	RequestID   json.RawMessage   `json:"requestId"`
	Opts        *wireOpts         `json:"opts"`
	Rooms       []json.RawMessage `json:"rooms"`
	Close       json.RawMessage   `json:"close"`
	ClientCount float64           `json:"clientCount"`
	Sockets     []json.RawMessage `json:"sockets"`
}

type wireOpts struct {
	Rooms  []json.RawMessage          `json:"rooms"`
	Except []json.RawMessage          `json:"except"`
	Flags  map[string]json.RawMessage `json:"flags"`
}

var errFormat = errors.New("not a cluster message")

// decode reads a payload, JSON or msgpack. Text that is not valid UTF-8
// is read as JavaScript reads it (U+FFFD).
func decode(payload []byte) (*decoded, error) {
	var (
		js   []byte
		bins [][]byte
	)
	if len(payload) > 0 && payload[0] == '{' && utf8.Valid(payload) {
		js = payload
	} else {
		if len(payload) > 0 && payload[0] == '{' {
			var e notepack.Encoder
			if err := e.JSON(payload, nil); err != nil {
				return nil, err
			}
			payload = e.Buf
		}
		d := notepack.NewDecoder(payload)
		var err error
		if js, bins, err = d.Arg(); err != nil {
			return nil, err
		}
		if err := d.End(); err != nil {
			return nil, err
		}
	}
	var w struct {
		Type json.RawMessage `json:"type"`
		Data json.RawMessage `json:"data"`
		UID  json.RawMessage `json:"uid"`
		Nsp  json.RawMessage `json:"nsp"`
	}
	if err := json.Unmarshal(js, &w); err != nil {
		return nil, err
	}
	typ, err := strconv.Atoi(string(w.Type))
	if err != nil {
		return nil, errFormat
	}
	m := &decoded{typ: typ, bins: bins}
	m.uid, _ = jsonString(w.UID)
	m.nsp, _ = jsonString(w.Nsp)
	if len(w.Data) > 0 && w.Data[0] == '{' {
		if err := json.Unmarshal(w.Data, &m.data); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// room reads a room: a string, or a number as JavaScript names it.
func room(raw json.RawMessage) (string, bool) {
	if s, ok := jsonString(raw); ok {
		return s, true
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return notepack.JSNumberString(f), true
	}
	return "", false
}

func rooms(list []json.RawMessage) []string {
	var out []string
	for _, r := range list {
		if s, ok := room(r); ok && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func truthy(raw json.RawMessage) bool {
	switch s := string(raw); {
	case s == "", s == "false", s == "null", s == `""`, s == "0", s == "-0":
		return false
	}
	return true
}

func (m *decoded) requestID() (string, bool) { return jsonString(m.data.RequestID) }

func (m *decoded) opts() socketio.BroadcastOptions {
	if m.data.Opts == nil {
		return socketio.BroadcastOptions{}
	}
	o := socketio.BroadcastOptions{Rooms: rooms(m.data.Opts.Rooms), Except: rooms(m.data.Opts.Except)}
	o.Volatile = truthy(m.data.Opts.Flags["volatile"])
	var ms float64
	if t := m.data.Opts.Flags["timeout"]; len(t) > 0 && json.Unmarshal(t, &ms) == nil && ms > 0 {
		o.Timeout = time.Duration(ms * float64(time.Millisecond))
	}
	return o
}

// arg makes an argument of raw, taking its attachments out of the
// message's (renumbered from 0).
func (m *decoded) arg(raw json.RawMessage) (socketio.Arg, error) {
	if len(raw) == 0 {
		return socketio.Arg{JSON: json.RawMessage("null")}, nil
	}
	if len(m.bins) == 0 || !bytes.Contains(raw, []byte(notepack.PlaceholderPrefix)) {
		return socketio.Arg{JSON: bytes.Clone(raw)}, nil
	}
	var (
		out  []byte
		bins [][]byte
		js   = []byte(raw)
	)
	for {
		i := bytes.Index(js, []byte(notepack.PlaceholderPrefix))
		if i < 0 {
			out = append(out, js...)
			return socketio.Arg{JSON: out, Attachments: bins}, nil
		}
		num, end, ok := notepack.PlaceholderAt(js, i, len(m.bins))
		if !ok {
			out = append(out, js[:i+1]...)
			js = js[i+1:]
			continue
		}
		out = append(out, js[:i]...)
		out = fmt.Appendf(out, "%s%d}", notepack.PlaceholderPrefix, len(bins))
		bins = append(bins, bytes.Clone(m.bins[num]))
		js = js[end:]
	}
}

// event reads [event, ...args].
func (m *decoded) event(raw json.RawMessage) (string, []socketio.Arg, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", nil, err
	}
	if len(list) == 0 {
		return "", nil, errFormat
	}
	ev, ok := jsonString(list[0])
	if !ok {
		return "", nil, errFormat
	}
	args := make([]socketio.Arg, 0, len(list)-1)
	for _, r := range list[1:] {
		a, err := m.arg(r)
		if err != nil {
			return "", nil, err
		}
		args = append(args, a)
	}
	return ev, args, nil
}

// broadcast reads a BROADCAST's packet: {type: 2, data: [event, ...args]}.
func (m *decoded) broadcast() (*socketio.BroadcastPacket, error) {
	var pk struct {
		Type float64         `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(m.data.Packet, &pk); err != nil {
		return nil, err
	}
	if pk.Type != packetEvent && pk.Type != 5 { // EVENT, BINARY_EVENT
		return nil, errFormat
	}
	ev, args, err := m.event(pk.Data)
	if err != nil {
		return nil, err
	}
	return &socketio.BroadcastPacket{Nsp: m.nsp, Event: ev, Args: args, ID: -1, Opts: m.opts()}, nil
}
