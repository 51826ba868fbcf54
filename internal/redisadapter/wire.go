package redisadapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The wire format is the one of Node's @socket.io/redis-adapter 8.x
// (node_modules/@socket.io/redis-adapter/dist/index.js), so that Go and
// Node.js nodes can share one Redis:
//
//   - broadcasts are published on "<prefix>#<nsp>#" or, when they target
//     exactly one room, "<prefix>#<nsp>#<room>#"; every node PSUBSCRIBEs to
//     "<prefix>#<nsp>#*" and ignores its own messages by uid;
//   - a broadcast is the msgpack (notepack.io) array
//     [uid, {type, data, nsp[, id]}, {rooms: [...], except: [...], flags: {...}}];
//   - requests go to "<prefix>-request#<nsp>#" and responses to
//     "<prefix>-response#<nsp>#" (or "<prefix>-response#<nsp>#<uid>#"), as JSON
//     objects, except the broadcast-with-ack request and its ack responses,
//     which are msgpack maps.

// Request types, numbered as Node's RequestType enum.
const (
	reqSockets              = 0
	reqAllRooms             = 1
	reqRemoteJoin           = 2
	reqRemoteLeave          = 3
	reqRemoteDisconnect     = 4
	reqRemoteFetch          = 5
	reqServerSideEmit       = 6
	reqBroadcast            = 7
	reqBroadcastClientCount = 8
	reqBroadcastAck         = 9
)

// channels are the Redis channel names of one namespace.
type channels struct {
	broadcast        string // prefix#nsp#
	request          string // prefix-request#nsp#
	response         string // prefix-response#nsp#
	specificResponse string // prefix-response#nsp#uid#
}

func newChannels(prefix, nsp, uid string) channels {
	c := channels{
		broadcast: prefix + "#" + nsp + "#",
		request:   prefix + "-request#" + nsp + "#",
		response:  prefix + "-response#" + nsp + "#",
	}
	c.specificResponse = c.response + uid + "#"
	return c
}

// pattern is the PSUBSCRIBE pattern matching every broadcast channel of the
// namespace, with the glob characters of the prefix and name escaped.
func (c channels) pattern() string {
	var b strings.Builder
	for _, r := range c.broadcast {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('*')
	return b.String()
}

// broadcastChannel is where a broadcast to rooms is published: the room's own
// channel when there is exactly one room, as Node does.
func (c channels) broadcastChannel(rooms []string) string {
	if len(rooms) == 1 {
		return c.broadcast + rooms[0] + "#"
	}
	return c.broadcast
}

// roomOf returns the room named by a broadcast channel ("" for the
// namespace's own channel, the broadcast to everyone) and whether the
// channel belongs to the namespace at all. This is Node's
// `channel.slice(this.channel.length, -1)`: the empty room is accepted.
func (c channels) roomOf(channel string) (room string, ok bool) {
	rest, ok := strings.CutPrefix(channel, c.broadcast)
	if !ok {
		return "", false
	}
	if rest == "" {
		return "", true
	}
	return rest[:len(rest)-1], true
}

// broadcastMessage is one decoded broadcast.
type broadcastMessage struct {
	uid    string
	packet *parser.Packet
	opts   *socket.BroadcastOptions
}

// encodeBroadcast returns the msgpack bytes Node's adapter would publish for
// this broadcast. It copies what it needs from packet and opts, so they may
// be changed afterwards.
func encodeBroadcast(uid string, packet *parser.Packet, opts *socket.BroadcastOptions) ([]byte, error) {
	return marshal([]any{uid, packetToWire(packet), optsToWire(opts)})
}

// decodeBroadcast parses a message published by encodeBroadcast or by Node.
func decodeBroadcast(b []byte) (*broadcastMessage, error) {
	dec := newDecoder(b)
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, fmt.Errorf("broadcast: %w", err)
	}
	if n < 3 {
		return nil, fmt.Errorf("broadcast: array of %d elements, want 3", n)
	}
	var fields [3]any
	for i := range fields {
		if fields[i], err = dec.DecodeInterface(); err != nil {
			return nil, fmt.Errorf("broadcast element %d: %w", i, err)
		}
		fields[i] = normalize(fields[i])
	}
	uid, ok := fields[0].(string)
	if !ok {
		return nil, fmt.Errorf("broadcast: uid is %T, want string", fields[0])
	}
	pm, ok := fields[1].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("broadcast: packet is %T, want map", fields[1])
	}
	om, _ := fields[2].(map[string]any)
	return &broadcastMessage{uid: uid, packet: packetFromWire(pm), opts: optsFromWire(om)}, nil
}

// packetToWire is a Socket.IO packet as Node's adapter publishes it. A
// binary event is published as a plain event, as in Node, where the
// parser decides on the binary type when it encodes for a client.
func packetToWire(p *parser.Packet) orderedMap {
	typ := p.Type
	switch typ {
	case parser.BINARY_EVENT:
		typ = parser.EVENT
	case parser.BINARY_ACK:
		typ = parser.ACK
	}
	m := orderedMap{{"type", int(typ)}}
	if p.Data != nil {
		m = append(m, kv{"data", valueToWire(p.Data)})
	}
	m = append(m, kv{"nsp", p.Nsp})
	if p.Id != nil {
		m = append(m, kv{"id", *p.Id})
	}
	return m
}

func packetFromWire(m map[string]any) *parser.Packet {
	p := &parser.Packet{Nsp: "/"}
	if t, ok := toInt64(m["type"]); ok {
		p.Type = parser.PacketType(t)
	}
	if nsp, ok := m["nsp"].(string); ok {
		p.Nsp = nsp
	}
	p.Data = m["data"]
	if id, ok := toInt64(m["id"]); ok && id >= 0 {
		u := uint64(id)
		p.Id = &u
	}
	return p
}

// valueToWire turns the library's buffers into plain bytes (msgpack bin,
// a Buffer in Node) and leaves JSON-like values as they are.
func valueToWire(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = valueToWire(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = valueToWire(e)
		}
		return out
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case *types.StringBuffer:
		return v.String()
	case types.BufferInterface:
		return bytes.Clone(v.Bytes())
	case json.Marshaler:
		// Raw JSON and other values that know their JSON: publish what
		// their JSON decodes to, as a client would have received it.
		b, err := v.MarshalJSON()
		if err != nil {
			return nil
		}
		var out any
		if json.Unmarshal(b, &out) != nil {
			return nil
		}
		return valueToWire(out)
	default:
		return v
	}
}

func optsToWire(opts *socket.BroadcastOptions) orderedMap {
	if opts == nil {
		opts = &socket.BroadcastOptions{}
	}
	return orderedMap{{"rooms", roomList(opts.Rooms)}, {"except", roomList(opts.Except)}, {"flags", flagsToWire(opts.Flags)}}
}

func optsFromWire(m map[string]any) *socket.BroadcastOptions {
	o := &socket.BroadcastOptions{
		Rooms:  types.NewSet(roomsFromWire(m["rooms"])...),
		Except: types.NewSet(roomsFromWire(m["except"])...),
	}
	if f, ok := m["flags"].(map[string]any); ok {
		o.Flags = flagsFromWire(f)
	}
	return o
}

// flagsToWire keeps the flags Node knows, with Node's names; timeout is in
// milliseconds there.
func flagsToWire(f *socket.BroadcastFlags) orderedMap {
	m := orderedMap{}
	if f == nil {
		return m
	}
	if f.Volatile {
		m = append(m, kv{"volatile", true})
	}
	if f.Compress != nil {
		m = append(m, kv{"compress", *f.Compress})
	}
	if f.Local {
		m = append(m, kv{"local", true})
	}
	if f.Broadcast {
		m = append(m, kv{"broadcast", true})
	}
	if f.Binary {
		m = append(m, kv{"binary", true})
	}
	if f.Timeout != nil {
		m = append(m, kv{"timeout", f.Timeout.Milliseconds()})
	}
	if f.ExpectSingleResponse {
		m = append(m, kv{"expectSingleResponse", true})
	}
	return m
}

// orderedMap is a msgpack map whose keys keep their order, so that what we
// publish is byte for byte what Node's adapter publishes for the same
// broadcast (Node objects keep their insertion order).
type orderedMap []kv

type kv struct {
	key   string
	value any
}

var _ msgpack.CustomEncoder = orderedMap(nil)

func (m orderedMap) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeMapLen(len(m)); err != nil {
		return err
	}
	for _, e := range m {
		if err := enc.EncodeString(e.key); err != nil {
			return err
		}
		if err := enc.Encode(e.value); err != nil {
			return err
		}
	}
	return nil
}

func flagsFromWire(m map[string]any) *socket.BroadcastFlags {
	f := &socket.BroadcastFlags{}
	f.Volatile, _ = m["volatile"].(bool)
	if c, ok := m["compress"].(bool); ok {
		f.Compress = &c
	}
	f.Local, _ = m["local"].(bool)
	f.Broadcast, _ = m["broadcast"].(bool)
	f.Binary, _ = m["binary"].(bool)
	if ms, ok := toInt64(m["timeout"]); ok {
		d := time.Duration(ms) * time.Millisecond
		f.Timeout = &d
	}
	f.ExpectSingleResponse, _ = m["expectSingleResponse"].(bool)
	return f
}

// roomList is a set of rooms as a JSON/msgpack array (never nil, as Node's
// `[...set]`).
func roomList(s *types.Set[socket.Room]) []string {
	out := []string{}
	if s == nil {
		return out
	}
	for _, r := range s.Keys() {
		out = append(out, string(r))
	}
	return out
}

// roomsFromWire reads an array of rooms. Node rooms are strings, but a
// number is tolerated and named as JavaScript would print it.
func roomsFromWire(v any) []socket.Room {
	list, _ := v.([]any)
	out := make([]socket.Room, 0, len(list))
	for _, e := range list {
		switch e := e.(type) {
		case string:
			out = append(out, socket.Room(e))
		case nil:
		default:
			if n, ok := toInt64(e); ok {
				out = append(out, socket.Room(fmt.Sprint(n)))
			} else {
				out = append(out, socket.Room(fmt.Sprint(e)))
			}
		}
	}
	return out
}

// toInt64 reads an integer from msgpack (int64, uint64) or JSON (float64).
func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	case int:
		return int64(n), true
	case float64:
		if n != math.Trunc(n) {
			return 0, false
		}
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	enc.UseCompactInts(true) // the smallest integer format, as notepack.io
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func newDecoder(b []byte) *msgpack.Decoder {
	return msgpack.NewDecoder(bytes.NewReader(b))
}

// normalize makes decoded msgpack look like decoded JSON with bytes: every
// integer an int64 (uint64 beyond), every float a float64, bin a []byte.
func normalize(v any) any {
	switch v := v.(type) {
	case []any:
		for i, e := range v {
			v[i] = normalize(e)
		}
		return v
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
		return v
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
		return v
	case float32:
		return float64(v)
	default:
		return v
	}
}

// decodeObject reads a request or response: JSON when it starts with '{',
// msgpack otherwise, as Node's adapter does.
func decodeObject(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, errors.New("empty message")
	}
	if b[0] == '{' {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		return m, nil
	}
	v, err := newDecoder(b).DecodeInterface()
	if err != nil {
		return nil, err
	}
	m, ok := normalize(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("message is %T, want a map", v)
	}
	return m, nil
}
