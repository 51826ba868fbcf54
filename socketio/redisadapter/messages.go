package redisadapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatio/socketio-chat/internal/notepack"
	"github.com/chatio/socketio-chat/socketio"
)

// The requests and responses between nodes, as Node's adapter writes and
// reads them: JSON written as JSON.stringify writes it (keys in Node's
// order), except the broadcast-with-ack request and its acks, which are
// msgpack. Parsers accept either form, as Node does (JSON when the message
// starts with '{').

// request is a request of another node, read from JSON or msgpack.
type request struct {
	typ       int
	uid       string
	requestID string
	hasID     bool
	opts      *socketio.BroadcastOptions
	rooms     []string
	close     bool
	sid, room string
	data      []socketio.Arg // SERVER_SIDE_EMIT: the event's arguments
	event     string
	hasEvent  bool
	packet    *socketio.BroadcastPacket // BROADCAST
}

// response is another node's answer, read from JSON or msgpack.
type response struct {
	typ         int
	requestID   string
	clientCount int
	hasCount    bool
	packet      socketio.Arg // BROADCAST_ACK
	hasPacket   bool
	data        socketio.Arg // SERVER_SIDE_EMIT
	hasData     bool
	sockets     []json.RawMessage // REMOTE_FETCH
	hasSockets  bool
}

// JSON requests and responses, written as JSON.stringify writes Node's.

func (a *nsAdapter) fetchRequest(id string, opts socketio.BroadcastOptions) []byte {
	b := append([]byte(`{"uid":`), appendQuotedString(nil, a.uid)...)
	b = append(b, `,"requestId":`...)
	b = appendQuotedString(b, id)
	b = fmt.Appendf(b, `,"type":%d,"opts":`, reqRemoteFetch)
	b = appendRoomOpts(b, opts)
	return append(b, '}')
}

func (a *nsAdapter) roomsRequest(typ int, opts socketio.BroadcastOptions, rooms []string) []byte {
	b := append([]byte(`{"uid":`), appendQuotedString(nil, a.uid)...)
	b = fmt.Appendf(b, `,"type":%d,"opts":`, typ)
	b = appendRoomOpts(b, opts)
	b = append(b, `,"rooms":`...)
	b = appendStringList(b, unique(rooms))
	return append(b, '}')
}

func (a *nsAdapter) disconnectRequest(opts socketio.BroadcastOptions, close bool) []byte {
	b := append([]byte(`{"uid":`), appendQuotedString(nil, a.uid)...)
	b = fmt.Appendf(b, `,"type":%d,"opts":`, reqRemoteDisconnect)
	b = appendRoomOpts(b, opts)
	b = fmt.Appendf(b, `,"close":%t}`, close)
	return b
}

// serverSideEmitRequest is {uid[, requestId], type, data: [event, ...args]}.
func (a *nsAdapter) serverSideEmitRequest(id, event string, args []socketio.Arg) []byte {
	b := append([]byte(`{"uid":`), appendQuotedString(nil, a.uid)...)
	if id != "" {
		b = append(b, `,"requestId":`...)
		b = appendQuotedString(b, id)
	}
	b = fmt.Appendf(b, `,"type":%d,"data":[`, reqServerSideEmit)
	b = appendQuotedString(b, event)
	for _, arg := range args {
		b = append(b, ',')
		b = appendArgJSON(b, arg)
	}
	return append(b, "]}"...)
}

func appendRoomOpts(b []byte, opts socketio.BroadcastOptions) []byte {
	b = append(b, `{"rooms":`...)
	b = appendStringList(b, unique(opts.Rooms))
	b = append(b, `,"except":`...)
	b = appendStringList(b, unique(opts.Except))
	return append(b, '}')
}

func appendStringList(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQuotedString(b, s)
	}
	return append(b, ']')
}

// appendArgJSON appends an argument as JSON.stringify writes it in a JSON
// request: a Buffer is {"type":"Buffer","data":[bytes...]}. An argument
// that is not JSON is null.
func appendArgJSON(b []byte, arg socketio.Arg) []byte {
	js := []byte(arg.JSON)
	if len(js) == 0 || !json.Valid(js) {
		return append(b, "null"...)
	}
	if len(arg.Attachments) == 0 {
		return append(b, js...)
	}
	for {
		i := bytes.Index(js, []byte(notepack.PlaceholderPrefix))
		if i < 0 {
			return append(b, js...)
		}
		num, end, ok := notepack.PlaceholderAt(js, i, len(arg.Attachments))
		if !ok {
			b = append(b, js[:i+1]...)
			js = js[i+1:]
			continue
		}
		b = append(b, js[:i]...)
		b = append(b, `{"type":"Buffer","data":[`...)
		for k, c := range arg.Attachments[num] {
			if k > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(c), 10)
		}
		b = append(b, "]}"...)
		js = js[end:]
	}
}

func idResponse(id string) []byte {
	return append(appendQuotedString([]byte(`{"requestId":`), id), '}')
}

func listResponse(id, key string, list []string) []byte {
	b := appendQuotedString([]byte(`{"requestId":`), id)
	b = append(b, `,"`+key+`":`...)
	b = appendStringList(b, list)
	return append(b, '}')
}

func clientCountResponse(id string, n int) []byte {
	b := fmt.Appendf(nil, `{"type":%d,"requestId":`, reqBroadcastClientCount)
	b = appendQuotedString(b, id)
	return fmt.Appendf(b, `,"clientCount":%d}`, n)
}

// serverSideEmitResponse carries the first argument of the handler's ack;
// with none, data is left out (undefined in Node).
func serverSideEmitResponse(id string, args []socketio.Arg) []byte {
	b := fmt.Appendf(nil, `{"type":%d,"requestId":`, reqServerSideEmit)
	b = appendQuotedString(b, id)
	if len(args) > 0 {
		b = append(b, `,"data":`...)
		b = appendArgJSON(b, args[0])
	}
	return append(b, '}')
}

// ackResponse is the msgpack {type, requestId, packet} of one recipient's
// acknowledgement of a broadcast.
func ackResponse(id string, arg socketio.Arg) ([]byte, error) {
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.Buf = e.Buf[:0]
	e.MapHeader(3)
	e.String("type")
	e.Uint(reqBroadcastAck)
	e.String("requestId")
	e.String(id)
	e.String("packet")
	if err := e.arg(arg); err != nil {
		return nil, err
	}
	return bytes.Clone(e.Buf), nil
}

// fetchResponse lists sockets as Node does: {id, handshake, rooms, data}.
func fetchResponse(id string, sockets []*socketio.RemoteSocket) []byte {
	b := appendQuotedString([]byte(`{"requestId":`), id)
	b = append(b, `,"sockets":[`...)
	for i, s := range sockets {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendSocketJSON(b, s)
	}
	return append(b, "]}"...)
}

// AppendSocketJSON appends a socket as Node's adapters describe one in a
// fetchSockets answer: {id, handshake, rooms, data}, as JSON.stringify
// writes it. (Exported for socketio/shardedadapter, whose answers carry the
// same sockets.)
func AppendSocketJSON(b []byte, s *socketio.RemoteSocket) []byte {
	b = append(b, `{"id":`...)
	b = appendQuotedString(b, s.ID)
	b = append(b, `,"handshake":`...)
	b = appendHandshake(b, s.Handshake)
	b = append(b, `,"rooms":`...)
	b = appendStringList(b, s.Rooms)
	b = append(b, `,"data":`...)
	b = appendData(b, s.Data)
	return append(b, '}')
}

// SocketFromJSON reads a socket of another node's fetchSockets answer
// (AppendSocketJSON's format, Go's or Node's) as a socket of local's namespace. Its Data
// is its JSON (a json.RawMessage), its Handshake.Time the handshake's
// issued. (Exported for socketio/shardedadapter.)
func SocketFromJSON(local socketio.LocalNamespace, raw json.RawMessage) (*socketio.RemoteSocket, error) {
	return readSocket(local, raw)
}

// appendHandshake writes a handshake as Node's socket.handshake:
// {headers, time, address, xdomain, secure, issued, url, query, auth}.
// Header names are in lower case (sorted: Go does not keep their order),
// repeated ones joined as Node joins them; the address has no port.
func appendHandshake(b []byte, h socketio.Handshake) []byte {
	b = append(b, `{"headers":{`...)
	names := make([]string, 0, len(h.Headers))
	for k := range h.Headers {
		names = append(names, k)
	}
	slices.SortFunc(names, func(x, y string) int { return strings.Compare(strings.ToLower(x), strings.ToLower(y)) })
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		lk := strings.ToLower(k)
		b = appendQuotedString(b, lk)
		b = append(b, ':')
		switch vals := h.Headers[k]; lk {
		case "set-cookie":
			b = appendStringList(b, vals)
		case "cookie":
			b = appendQuotedString(b, strings.Join(vals, "; "))
		default:
			b = appendQuotedString(b, strings.Join(vals, ", "))
		}
	}
	b = append(b, `},"time":`...)
	issued := h.Time
	if issued.IsZero() {
		issued = time.Now()
	}
	b = appendQuotedString(b, jsDateString(issued.In(time.Local)))
	addr := h.Address
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	b = append(b, `,"address":`...)
	b = appendQuotedString(b, addr)
	b = fmt.Appendf(b, `,"xdomain":%t,"secure":%t,"issued":%d,"url":`, h.XDomain, h.Secure, issued.UnixMilli())
	b = appendQuotedString(b, h.URL)
	b = append(b, `,"query":{`...)
	keys := make([]string, 0, len(h.Query))
	for k := range h.Query {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQuotedString(b, k)
		b = append(b, ':')
		if vals := h.Query[k]; len(vals) == 1 {
			b = appendQuotedString(b, vals[0])
		} else {
			b = appendStringList(b, vals)
		}
	}
	b = append(b, `},"auth":`...)
	if len(h.Auth) > 0 && json.Valid(h.Auth) {
		b = append(b, h.Auth...)
	} else {
		b = append(b, "{}"...)
	}
	return append(b, '}')
}

// appendData writes a socket's data; a socket without data shows {}, as in
// Node, where socket.data starts as an empty object.
func appendData(b []byte, v any) []byte {
	switch d := v.(type) {
	case nil:
		return append(b, "{}"...)
	case json.RawMessage:
		if json.Valid(d) {
			return append(b, d...)
		}
		return append(b, "null"...)
	}
	arg, err := socketio.ToArg(v)
	if err != nil {
		return append(b, "null"...)
	}
	return appendArgJSON(b, arg)
}

// wireSocket is a socket in another node's REMOTE_FETCH answer.
type wireSocket struct {
	ID        json.RawMessage `json:"id"`
	Handshake struct {
		Headers map[string]json.RawMessage `json:"headers"`
		Address json.RawMessage            `json:"address"`
		XDomain bool                       `json:"xdomain"`
		Secure  bool                       `json:"secure"`
		Issued  float64                    `json:"issued"`
		URL     json.RawMessage            `json:"url"`
		Query   map[string]json.RawMessage `json:"query"`
		Auth    json.RawMessage            `json:"auth"`
	} `json:"handshake"`
	Rooms []json.RawMessage `json:"rooms"`
	Data  json.RawMessage   `json:"data"`
}

// socketFromWire reads a socket of another node. Its Data is its JSON
// (a json.RawMessage), its Handshake.Time the handshake's issued.
func (a *nsAdapter) socketFromWire(raw json.RawMessage) (*socketio.RemoteSocket, error) {
	return readSocket(a.local, raw)
}

func readSocket(local socketio.LocalNamespace, raw json.RawMessage) (*socketio.RemoteSocket, error) {
	var w wireSocket
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, err
	}
	id, ok := jsonString(w.ID)
	if !ok {
		return nil, errors.New("socket without id")
	}
	h := socketio.Handshake{
		XDomain: w.Handshake.XDomain,
		Secure:  w.Handshake.Secure,
	}
	h.Address, _ = jsonString(w.Handshake.Address)
	h.URL, _ = jsonString(w.Handshake.URL)
	if w.Handshake.Issued != 0 && !math.IsNaN(w.Handshake.Issued) {
		h.Time = time.UnixMilli(int64(w.Handshake.Issued))
	}
	if len(w.Handshake.Headers) > 0 {
		h.Headers = make(http.Header, len(w.Handshake.Headers))
		for k, v := range w.Handshake.Headers {
			ck := http.CanonicalHeaderKey(k)
			h.Headers[ck] = append(h.Headers[ck], jsonStrings(v)...)
		}
	}
	if len(w.Handshake.Query) > 0 {
		h.Query = make(url.Values, len(w.Handshake.Query))
		for k, v := range w.Handshake.Query {
			h.Query[k] = append(h.Query[k], jsonStrings(v)...)
		}
	}
	if len(w.Handshake.Auth) > 0 && string(w.Handshake.Auth) != "null" {
		h.Auth = bytes.Clone(w.Handshake.Auth)
	}
	var rooms []string
	for _, r := range w.Rooms {
		if s, ok := jsonRoom(r); ok {
			rooms = append(rooms, s)
		}
	}
	var data any
	if len(w.Data) > 0 {
		data = json.RawMessage(bytes.Clone(w.Data))
	}
	return local.NewRemoteSocket(id, h, rooms, data), nil
}

// Reading JSON fields (checked by encoding/json) as JavaScript does.

// jsonString decodes a JSON string, lone surrogates included (WTF-8).
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	return string(decodeJSONString(nil, raw[1:len(raw)-1])), true
}

// jsonStrings reads a string or an array of strings.
func jsonStrings(raw json.RawMessage) []string {
	if s, ok := jsonString(raw); ok {
		return []string{s}
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		if len(raw) > 0 && raw[0] != 'n' && raw[0] != '{' {
			return []string{string(raw)} // a number or a boolean, as String() writes it
		}
		return nil
	}
	var out []string
	for _, e := range list {
		if s, ok := jsonString(e); ok {
			out = append(out, s)
		}
	}
	return out
}

// jsonNumber reads a JSON number.
func jsonNumber(raw json.RawMessage) (float64, bool) {
	var f float64
	if len(raw) == 0 || json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return f, true
}

// jsonRoom reads a room: a string, or a number named as JavaScript names it.
func jsonRoom(raw json.RawMessage) (string, bool) {
	if s, ok := jsonString(raw); ok {
		return s, true
	}
	if f, ok := jsonNumber(raw); ok {
		return jsNumberString(f), true
	}
	return "", false
}

func jsonRooms(raw json.RawMessage) []string {
	var list []json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &list) != nil {
		return nil
	}
	var out []string
	for _, r := range list {
		if s, ok := jsonRoom(r); ok {
			out = append(out, s)
		}
	}
	return unique(out)
}

// jsonTruthy reads a JSON value as a JavaScript condition.
func jsonTruthy(raw json.RawMessage) bool {
	switch s := string(raw); {
	case s == "", s == "false", s == "null", s == `""`:
		return false
	case s[0] == '-' || s[0] >= '0' && s[0] <= '9':
		f, _ := jsonNumber(raw)
		return f != 0
	}
	return true
}

// jsonArg makes an argument of a JSON value from another node. Text that
// is not valid UTF-8 is read as JavaScript reads it (U+FFFD), so that
// clients get valid text.
func jsonArg(raw json.RawMessage) (socketio.Arg, error) {
	if utf8.Valid(raw) {
		return socketio.Arg{JSON: bytes.Clone(raw)}, nil
	}
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.Buf = e.Buf[:0]
	if err := e.JSON(raw, nil); err != nil {
		return socketio.Arg{}, err
	}
	return newDecoder(e.Buf).arg()
}

func (r *request) fromJSON(msg []byte) error {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(msg, &f); err != nil {
		return err
	}
	t, ok := jsonNumber(f["type"])
	if !ok {
		return errors.New("request without type")
	}
	r.typ = int(t)
	r.uid, _ = jsonString(f["uid"])
	if raw, ok := f["requestId"]; ok {
		r.hasID = true
		if r.requestID, ok = jsonString(raw); !ok {
			r.requestID = string(raw)
		}
	}
	if raw, ok := f["opts"]; ok && len(raw) > 0 && raw[0] == '{' {
		var o struct {
			Rooms, Except json.RawMessage
		}
		if err := json.Unmarshal(raw, &o); err == nil {
			r.opts = &socketio.BroadcastOptions{Rooms: jsonRooms(o.Rooms), Except: jsonRooms(o.Except)}
		}
	}
	r.rooms = jsonRooms(f["rooms"])
	r.close = jsonTruthy(f["close"])
	r.sid, _ = jsonString(f["sid"])
	r.room, _ = jsonRoom(f["room"])
	if raw, ok := f["data"]; ok && r.typ == reqServerSideEmit {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		if len(list) == 0 {
			return nil
		}
		if r.event, r.hasEvent = jsonString(list[0]); !r.hasEvent {
			return errNotEvent
		}
		for _, e := range list[1:] {
			a, err := jsonArg(e)
			if err != nil {
				return err
			}
			r.data = append(r.data, a)
		}
	}
	if raw, ok := f["packet"]; ok && r.typ == reqBroadcast {
		var pk struct {
			Type float64           `json:"type"`
			Data []json.RawMessage `json:"data"`
			Nsp  *json.RawMessage  `json:"nsp"`
		}
		if err := json.Unmarshal(raw, &pk); err != nil {
			return err
		}
		if len(pk.Data) == 0 {
			return errNotEvent
		}
		p := &socketio.BroadcastPacket{Nsp: "/", ID: -1}
		if pk.Nsp != nil {
			p.Nsp, _ = jsonString(*pk.Nsp)
		}
		var ok bool
		if p.Event, ok = jsonString(pk.Data[0]); !ok {
			return errNotEvent
		}
		for _, e := range pk.Data[1:] {
			a, err := jsonArg(e)
			if err != nil {
				return err
			}
			p.Args = append(p.Args, a)
		}
		r.packet = p
	}
	return nil
}

func (r *request) fromMsgpack(msg []byte) error {
	d := newDecoder(msg)
	r.typ = -1
	err := d.Fields(func(key []byte) (err error) {
		switch string(key) {
		case "type":
			var f float64
			var ok bool
			if f, ok, err = d.OptNumber(); ok {
				r.typ = int(f)
			}
		case "uid":
			r.uid, err = d.optString()
		case "requestId":
			r.hasID = true
			r.requestID, err = d.optString()
		case "packet":
			p := &socketio.BroadcastPacket{Nsp: "/", ID: -1}
			var typ int
			if typ, err = d.packet(p); err == nil && (typ == packetEvent || typ == packetBinaryEvent) {
				r.packet = p
			}
		case "opts":
			var o socketio.BroadcastOptions
			if o, err = d.opts(); err == nil {
				r.opts = &o
			}
		case "rooms":
			r.rooms, err = d.rooms()
		case "close":
			r.close, err = d.Truthy()
		case "sid":
			r.sid, err = d.optString()
		case "room":
			r.room, err = d.optString()
		case "data":
			p := &socketio.BroadcastPacket{}
			if err = d.data(p); err == nil {
				r.event, r.data, r.hasEvent = p.Event, p.Args, true
			}
		default:
			_, err = d.Skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	if r.typ < 0 {
		return errors.New("request without type")
	}
	return d.End()
}

// optString reads a string, or skips another item ("").
func (d *decoder) optString() (string, error) {
	if !d.IsStr() {
		_, err := d.Skip()
		return "", err
	}
	s, err := d.Str()
	return jsString(s), err
}

func (r *response) fromJSON(msg []byte) error {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(msg, &f); err != nil {
		return err
	}
	r.typ = -1
	if t, ok := jsonNumber(f["type"]); ok {
		r.typ = int(t)
	}
	var ok bool
	if r.requestID, ok = jsonString(f["requestId"]); !ok {
		r.requestID = string(f["requestId"])
	}
	if n, ok := jsonNumber(f["clientCount"]); ok && n >= 0 && n < 1<<31 {
		r.clientCount, r.hasCount = int(n), true
	}
	if raw, ok := f["data"]; ok {
		a, err := jsonArg(raw)
		if err != nil {
			return err
		}
		r.data, r.hasData = a, true
	}
	if raw, ok := f["packet"]; ok {
		a, err := jsonArg(raw)
		if err != nil {
			return err
		}
		r.packet, r.hasPacket = a, true
	}
	if raw, ok := f["sockets"]; ok && len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &r.sockets); err != nil {
			return err
		}
		r.hasSockets = true
	}
	return nil
}

func (r *response) fromMsgpack(msg []byte) error {
	d := newDecoder(msg)
	r.typ = -1
	err := d.Fields(func(key []byte) error {
		switch string(key) {
		case "type":
			f, ok, err := d.OptNumber()
			if ok {
				r.typ = int(f)
			}
			return err
		case "requestId":
			var err error
			r.requestID, err = d.optString()
			return err
		case "clientCount":
			f, ok, err := d.OptNumber()
			if ok && f >= 0 && f < 1<<31 {
				r.clientCount, r.hasCount = int(f), true
			}
			return err
		case "packet", "data":
			mark := d.Pos()
			undef, err := d.Skip()
			if err != nil || undef {
				return err // undefined: as if absent
			}
			d.Seek(mark)
			a, err := d.arg()
			if err != nil {
				return err
			}
			if string(key) == "packet" {
				r.packet, r.hasPacket = a, true
			} else {
				r.data, r.hasData = a, true
			}
			return nil
		default:
			_, err := d.Skip()
			return err
		}
	})
	if err != nil {
		return err
	}
	return d.End()
}
