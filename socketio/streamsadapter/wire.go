package streamsadapter

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// The wire format is the one of Node's @socket.io/redis-streams-adapter
// 0.3.1 (node_modules/@socket.io/redis-streams-adapter/dist/adapter.js) on
// socket.io-adapter 2.5's ClusterAdapter:
//
//   - broadcasts and the room requests (socketsJoin, socketsLeave,
//     disconnectSockets) are entries of the stream (XADD MAXLEN ~ maxLen)
//     with the fields uid, nsp, type (the message type as decimal text) and
//     data: JSON.stringify(data), or, when data holds binary, the base64 of
//     its msgpack;
//   - a broadcast's data is {packet: {type: 2, data: [event, ...args]},
//     opts: {rooms, except, flags}} (socket.io's packet has no nsp yet when
//     the adapter publishes it: the entry's nsp field names the namespace);
//   - the messages that need an answer (fetchSockets, serverSideEmit,
//     broadcasts with acknowledgements) and their answers go through pub/sub,
//     msgpack maps {type, data, uid, nsp} on "<prefix>#<nsp>#" (requests)
//     and "<prefix>#<nsp>#<uid>#" (answers to the node uid);
//   - a session is SET at "sio:session:<pid>", PX the recovery window: the
//     base64 of the msgpack of {sid, pid, rooms, data}.

// Message types of socket.io-adapter's ClusterAdapter.
const (
	typeBroadcast            = 3
	typeSocketsJoin          = 4
	typeSocketsLeave         = 5
	typeDisconnectSockets    = 6
	typeFetchSockets         = 7
	typeFetchSocketsResponse = 8
	typeServerSideEmit       = 9
	typeServerSideEmitResp   = 10
	typeBroadcastClientCount = 11
	typeBroadcastAck         = 12
)

// newUID is a node id as socket.io-adapter's randomId(): 8 random bytes in hex.
func newUID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// hashCode is Java's String.hashCode over UTF-16 code units, as the Node
// adapter computes it to pick a namespace's stream.
func hashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			h = h*31 + int32(0xd800+(r>>10))
			h = h*31 + int32(0xdc00+(r&0x3ff))
			continue
		}
		h = h*31 + int32(r)
	}
	return h
}

// streamName is the stream of a namespace: the stream name, or with several
// streams "<name>-<hashCode(nsp) % count>" (JavaScript's remainder, which
// can be negative, as in Node).
func streamName(name string, count int, nsp string) string {
	if count <= 1 {
		return name
	}
	return name + "-" + strconv.Itoa(int(hashCode(nsp)%int32(count)))
}

// entryID is a stream entry id "ms-seq", comparable.
type entryID struct{ ms, seq uint64 }

func parseID(s string) (entryID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return entryID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return entryID{ms, seq}, err1 == nil && err2 == nil
}

func (a entryID) less(b entryID) bool {
	return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq)
}

func (a entryID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// hasBinary reports whether a broadcast carries binary attachments.
func hasBinary(args []socketio.Arg) bool {
	for _, a := range args {
		if len(a.Attachments) > 0 {
			return true
		}
	}
	return false
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

func appendJSONStrings(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// flagsJSON is a broadcast's flags as Node's BroadcastOperator has them.
func flagsJSON(b []byte, o socketio.BroadcastOptions) []byte {
	b = append(b, '{')
	if o.Volatile {
		b = append(b, `"volatile":true`...)
	}
	if o.Timeout > 0 {
		if o.Volatile {
			b = append(b, ',')
		}
		b = append(b, `"timeout":`...)
		b = strconv.AppendFloat(b, float64(o.Timeout)/float64(time.Millisecond), 'f', -1, 64)
	}
	return append(b, '}')
}

// optsJSON is encodeOptions(opts): {rooms, except[, flags]}.
func optsJSON(b []byte, o socketio.BroadcastOptions, withFlags bool) []byte {
	b = append(b, `{"rooms":`...)
	b = appendJSONStrings(b, unique(o.Rooms))
	b = append(b, `,"except":`...)
	b = appendJSONStrings(b, unique(o.Except))
	if withFlags {
		b = append(b, `,"flags":`...)
		b = flagsJSON(b, o)
	}
	return append(b, '}')
}

// broadcastData is the data field of a broadcast entry: JSON, or the
// base64 of its msgpack when an argument is binary (as Node).
func broadcastData(p *socketio.BroadcastPacket) (string, error) {
	if hasBinary(p.Args) {
		var e mpEncoder
		e.map_(2)
		e.str("packet")
		if err := packetMsgpack(&e, p); err != nil {
			return "", err
		}
		e.str("opts")
		optsMsgpack(&e, p.Opts)
		return b64.EncodeToString(e.buf), nil
	}
	b := append([]byte(nil), `{"packet":{"type":2,"data":[`...)
	b = appendJSONString(b, p.Event)
	for _, a := range p.Args {
		if !json.Valid(a.JSON) {
			return "", errors.New("an argument is not JSON")
		}
		b = append(append(b, ','), a.JSON...)
	}
	b = append(b, `]},"opts":`...)
	b = optsJSON(b, p.Opts, true)
	return string(append(b, '}')), nil
}

// packetMsgpack writes {type: 2, data: [event, ...args]}: the packet of
// socket.io's BroadcastOperator.emit, published before the adapter gives
// it its nsp (and, with an ack, its id).
func packetMsgpack(e *mpEncoder, p *socketio.BroadcastPacket) error {
	e.map_(2)
	e.str("type")
	e.int_(2)
	e.str("data")
	e.array(1 + len(p.Args))
	e.str(p.Event)
	for _, a := range p.Args {
		if err := e.json(a.JSON, a.Attachments); err != nil {
			return err
		}
	}
	return nil
}

func optsMsgpack(e *mpEncoder, o socketio.BroadcastOptions) {
	e.map_(3)
	e.str("rooms")
	_ = e.value(unique(o.Rooms))
	e.str("except")
	_ = e.value(unique(o.Except))
	e.str("flags")
	n := 0
	if o.Volatile {
		n++
	}
	if o.Timeout > 0 {
		n++
	}
	e.map_(n)
	if o.Volatile {
		e.str("volatile")
		e.bool_(true)
	}
	if o.Timeout > 0 {
		e.str("timeout")
		e.number(float64(o.Timeout) / float64(time.Millisecond))
	}
}

// roomsData is the data of a SOCKETS_JOIN / SOCKETS_LEAVE entry.
func roomsData(o socketio.BroadcastOptions, rooms []string) string {
	b := append([]byte(nil), `{"opts":`...)
	b = optsJSON(b, o, false)
	b = append(b, `,"rooms":`...)
	b = appendJSONStrings(b, rooms)
	return string(append(b, '}'))
}

// disconnectData is the data of a DISCONNECT_SOCKETS entry.
func disconnectData(o socketio.BroadcastOptions, close bool) string {
	b := append([]byte(nil), `{"opts":`...)
	b = optsJSON(b, o, false)
	b = append(b, `,"close":`...)
	b = strconv.AppendBool(b, close)
	return string(append(b, '}'))
}

// message is an entry or a pub/sub message, decoded.
type message struct {
	uid, nsp string
	typ      int
	data     *object // a msgpack data map
	packet   *socketio.BroadcastPacket
	opts     socketio.BroadcastOptions
	hasOpts  bool
	rooms    []string
	close    bool
	reqID    string
}

// jsonData is a JSON data field, arguments kept as their text.
type jsonData struct {
	Packet *struct {
		Type int               `json:"type"`
		Data []json.RawMessage `json:"data"`
		Nsp  *string           `json:"nsp"`
		ID   *float64          `json:"id"`
	} `json:"packet"`
	Opts      *jsonOpts `json:"opts"`
	Rooms     []any     `json:"rooms"`
	Close     bool      `json:"close"`
	RequestID *string   `json:"requestId"`
}

type jsonOpts struct {
	Rooms  []any          `json:"rooms"`
	Except []any          `json:"except"`
	Flags  map[string]any `json:"flags"`
}

func roomList(v []any) []string {
	var out []string
	for _, r := range v {
		switch r := r.(type) {
		case string:
			out = append(out, r)
		case float64:
			out = append(out, strconv.FormatFloat(r, 'f', -1, 64))
		}
	}
	return unique(out)
}

func (o *jsonOpts) options() socketio.BroadcastOptions {
	var out socketio.BroadcastOptions
	if o == nil {
		return out
	}
	out.Rooms, out.Except = roomList(o.Rooms), roomList(o.Except)
	if v, ok := o.Flags["volatile"]; ok && v != nil && v != false {
		out.Volatile = true
	}
	if t, ok := o.Flags["timeout"].(float64); ok && t > 0 && t < 1e12 {
		out.Timeout = time.Duration(t * float64(time.Millisecond))
	}
	return out
}

// decodeEntry reads the fields of a stream entry.
func decodeEntry(fields map[string]any) (*message, error) {
	str := func(k string) string { s, _ := fields[k].(string); return s }
	m := &message{uid: str("uid"), nsp: str("nsp")}
	t, err := strconv.Atoi(str("type"))
	if err != nil {
		return nil, fmt.Errorf("type %q", str("type"))
	}
	m.typ = t
	data := str("data")
	if data == "" {
		return m, nil
	}
	if strings.HasPrefix(data, "{") {
		return m, m.fromJSON([]byte(data))
	}
	raw, err := b64.DecodeString(data)
	if err != nil {
		return nil, err
	}
	v, err := decodeMsgpack(raw)
	if err != nil {
		return nil, err
	}
	d := asObject(v)
	if d == nil {
		return nil, errMsgpack
	}
	return m, m.fromMap(d)
}

func (m *message) fromJSON(b []byte) error {
	var d jsonData
	if err := json.Unmarshal(b, &d); err != nil {
		return err
	}
	if d.Packet != nil {
		if len(d.Packet.Data) == 0 {
			return errors.New("no event")
		}
		var ev string
		if err := json.Unmarshal(d.Packet.Data[0], &ev); err != nil {
			return errors.New("event name is not a string")
		}
		p := &socketio.BroadcastPacket{Nsp: m.nsp, Event: ev, ID: -1}
		for _, a := range d.Packet.Data[1:] {
			p.Args = append(p.Args, socketio.Arg{JSON: a})
		}
		if d.Packet.ID != nil {
			p.ID = int64(*d.Packet.ID)
		}
		m.packet = p
	}
	if d.Opts != nil {
		m.opts, m.hasOpts = d.Opts.options(), true
	}
	m.rooms = roomList(d.Rooms)
	m.close = d.Close
	if d.RequestID != nil {
		m.reqID = *d.RequestID
	}
	return nil
}

// fromMap reads a msgpack data map.
func (m *message) fromMap(d *object) error {
	m.data = d
	if pk := asObject(d.get("packet")); pk != nil {
		list, _ := pk.get("data").([]any)
		if len(list) == 0 {
			return errors.New("no event")
		}
		ev, ok := list[0].(string)
		if !ok {
			return errors.New("event name is not a string")
		}
		p := &socketio.BroadcastPacket{Nsp: m.nsp, Event: ev, ID: -1}
		for _, v := range list[1:] {
			a, err := argOf(v)
			if err != nil {
				return err
			}
			p.Args = append(p.Args, a)
		}
		if id, ok := pk.get("id").(float64); ok {
			p.ID = int64(id)
		}
		m.packet = p
	}
	if o := asObject(d.get("opts")); o != nil {
		jo := &jsonOpts{}
		jo.Rooms, _ = o.get("rooms").([]any)
		jo.Except, _ = o.get("except").([]any)
		jo.Flags, _ = plain(o.get("flags")).(map[string]any)
		m.opts, m.hasOpts = jo.options(), true
	}
	if r, ok := d.get("rooms").([]any); ok {
		m.rooms = roomList(r)
	}
	m.close, _ = d.get("close").(bool)
	m.reqID, _ = d.get("requestId").(string)
	return nil
}

// argOf is a decoded msgpack value as an argument.
func argOf(v any) (socketio.Arg, error) {
	j, att, err := toArg(v)
	return socketio.Arg{JSON: j, Attachments: att}, err
}

// unique returns rooms without repetitions (Node's rooms are a Set).
func unique(rooms []string) []string {
	out := rooms[:0:0]
	for _, r := range rooms {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// includes is Node's shouldIncludePacket: a session in rooms was a
// recipient of a broadcast with o.
func includes(rooms []string, o socketio.BroadcastOptions) bool {
	included := len(o.Rooms) == 0
	for _, r := range rooms {
		if slices.Contains(o.Except, r) {
			return false
		}
		if !included && slices.Contains(o.Rooms, r) {
			included = true
		}
	}
	return included
}
