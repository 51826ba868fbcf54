package redisadapter

import (
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/chatio/socketio-chat/internal/notepack"
	"github.com/chatio/socketio-chat/socketio"
)

// The wire format is the one of Node's @socket.io/redis-adapter 8.x
// (node_modules/@socket.io/redis-adapter/dist/index.js), so that Go and
// Node.js nodes can share one Redis:
//
//   - broadcasts are published on "<prefix>#<nsp>#" or, when they target
//     exactly one room, "<prefix>#<nsp>#<room>#"; every node PSUBSCRIBEs to
//     "<prefix>#<nsp>#*" and ignores its own messages by uid;
//   - a broadcast is the msgpack (notepack.io) array
//     [uid, {type, data, nsp}, {rooms: [...], except: [...], flags: {...}}]
//     where data is [event, ...args] (see encode.go and decode.go for how
//     arguments travel);
//   - requests go to "<prefix>-request#<nsp>#" and responses to
//     "<prefix>-response#<nsp>#" (Node also listens on
//     "<prefix>-response#<nsp>#<uid>#"), as JSON objects, except the
//     broadcast-with-ack request and its ack responses, which are msgpack
//     maps (see requests.go).

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

// Socket.IO packet types a broadcast can carry.
const (
	packetEvent       = 2
	packetBinaryEvent = 5
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

// newUID is an id as Node's uid2(6): 6 URL-safe characters.
func newUID() string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = chars[b[i]%64]
	}
	return string(b[:])
}

// unique returns rooms without repetitions (Node's rooms are a Set). It
// returns rooms itself when there are none.
func unique(rooms []string) []string {
	for i, r := range rooms {
		if slices.Contains(rooms[:i], r) {
			out := slices.Clone(rooms[:i])
			for _, r := range rooms[i:] {
				if !slices.Contains(out, r) {
					out = append(out, r)
				}
			}
			return out
		}
	}
	return rooms
}

// broadcast writes the message Node's adapter publishes for p.
func (e *encoder) broadcast(uid string, p *socketio.BroadcastPacket) error {
	mark := len(e.Buf)
	e.ArrayHeader(3)
	e.String(uid)
	if err := e.packet(p); err != nil {
		e.Buf = e.Buf[:mark]
		return err
	}
	e.opts(p.Opts, true)
	return nil
}

// packet writes {type, data: [event, ...args], nsp}. A packet with binary
// arguments is a plain event too: in Node, the parser picks the binary type
// when it encodes for a client.
func (e *encoder) packet(p *socketio.BroadcastPacket) error {
	e.MapHeader(3)
	e.String("type")
	e.Uint(packetEvent)
	e.String("data")
	e.ArrayHeader(1 + len(p.Args))
	e.String(p.Event)
	for _, a := range p.Args {
		if err := e.arg(a); err != nil {
			return err
		}
	}
	e.String("nsp")
	e.String(p.Nsp)
	return nil
}

// opts writes {rooms, except, flags}; flags is left out of requests that
// carry no flags (REMOTE_JOIN and the like).
func (e *encoder) opts(o socketio.BroadcastOptions, withFlags bool) {
	if withFlags {
		e.MapHeader(3)
	} else {
		e.MapHeader(2)
	}
	e.String("rooms")
	e.strings(unique(o.Rooms))
	e.String("except")
	e.strings(unique(o.Except))
	if !withFlags {
		return
	}
	e.String("flags")
	n := 0
	if o.Volatile {
		n++
	}
	if o.Timeout > 0 {
		n++
	}
	if o.NoCompress {
		n++
	}
	e.MapHeader(n)
	if o.Volatile {
		e.String("volatile")
		e.Bool(true)
	}
	if o.NoCompress {
		// After volatile, as io.volatile.compress(false) has it in Node.
		e.String("compress")
		e.Bool(false)
	}
	if o.Timeout > 0 {
		e.String("timeout")
		e.Number(float64(o.Timeout) / float64(time.Millisecond))
	}
}

func (e *encoder) strings(list []string) {
	e.ArrayHeader(len(list))
	for _, s := range list {
		e.String(s)
	}
}

var errNotEvent = errors.New("not an event")

// broadcast reads a message published by a node. When its uid is own, it
// stops there and returns a nil packet: a node ignores its own broadcasts.
func (d *decoder) broadcast(own string) (*socketio.BroadcastPacket, error) {
	n, err := d.ArrayLen()
	if err != nil {
		return nil, err
	}
	if n < 3 {
		return nil, notepack.ErrType
	}
	if d.IsStr() {
		uid, err := d.Str()
		if err != nil {
			return nil, err
		}
		if string(uid) == own {
			return nil, nil
		}
	} else if _, err := d.Skip(); err != nil {
		return nil, err
	}
	p := &socketio.BroadcastPacket{Nsp: "/", ID: -1}
	typ, err := d.packet(p)
	if err != nil {
		return nil, err
	}
	if p.Opts, err = d.opts(); err != nil {
		return nil, err
	}
	for range n - 3 {
		if _, err := d.Skip(); err != nil {
			return nil, err
		}
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	if typ != packetEvent && typ != packetBinaryEvent {
		return nil, errNotEvent
	}
	return p, nil
}

// packet reads {type, data, nsp[, id]} into p and returns its type.
func (d *decoder) packet(p *socketio.BroadcastPacket) (typ int, err error) {
	typ = -1
	err = d.Fields(func(key []byte) error {
		switch string(key) {
		case "type":
			f, ok, err := d.OptNumber()
			if ok {
				typ = int(f)
			}
			return err
		case "nsp":
			if !d.IsStr() {
				// Node takes a missing nsp for "/", anything else for a
				// namespace that is not this one.
				undef, err := d.Skip()
				if err == nil && !undef {
					p.Nsp = "\x00not a namespace"
				}
				return err
			}
			s, err := d.Str()
			p.Nsp = jsString(s)
			return err
		case "id":
			f, ok, err := d.OptNumber()
			if ok {
				p.ID = int64(f)
			}
			return err
		case "data":
			return d.data(p)
		default:
			_, err := d.Skip()
			return err
		}
	})
	if err != nil {
		return 0, err
	}
	return typ, nil
}

// data reads [event, ...args].
func (d *decoder) data(p *socketio.BroadcastPacket) error {
	n, err := d.ArrayLen()
	if err != nil {
		return err
	}
	if n == 0 || !d.IsStr() {
		return errNotEvent
	}
	ev, err := d.Str()
	if err != nil {
		return err
	}
	p.Event = jsString(ev)
	p.Args = make([]socketio.Arg, 0, n-1)
	for range n - 1 {
		a, err := d.arg()
		if err != nil {
			return err
		}
		p.Args = append(p.Args, a)
	}
	return nil
}

// opts reads {rooms, except, flags}.
func (d *decoder) opts() (socketio.BroadcastOptions, error) {
	var o socketio.BroadcastOptions
	err := d.Fields(func(key []byte) (err error) {
		switch string(key) {
		case "rooms":
			o.Rooms, err = d.rooms()
		case "except":
			o.Except, err = d.rooms()
		case "flags":
			err = d.flags(&o)
		default:
			_, err = d.Skip()
		}
		return err
	})
	return o, err
}

// rooms reads a list of rooms. Node rooms are strings, but a number is
// named as JavaScript names it; anything else is skipped.
func (d *decoder) rooms() ([]string, error) {
	if c, ok := d.Peek(); ok && (c == 0xc0 || c == 0xd4) {
		_, err := d.Skip() // null or undefined: no rooms
		return nil, err
	}
	n, err := d.ArrayLen()
	if err != nil {
		return nil, err
	}
	var out []string
	for range n {
		if d.IsStr() {
			s, err := d.Str()
			if err != nil {
				return nil, err
			}
			out = append(out, jsString(s))
			continue
		}
		if f, ok, err := d.Number(); err != nil {
			return nil, err
		} else if ok {
			out = append(out, jsNumberString(f))
			continue
		}
		if _, err := d.Skip(); err != nil {
			return nil, err
		}
	}
	return unique(out), nil
}

// flags reads the flags Go knows: volatile, compress, and timeout (in ms).
func (d *decoder) flags(o *socketio.BroadcastOptions) error {
	return d.Fields(func(key []byte) (err error) {
		switch string(key) {
		case "volatile":
			o.Volatile, err = d.Truthy()
		case "compress":
			// Only an explicit false: Node leaves the flag out, or sends
			// true, for a broadcast that may be compressed.
			b, _ := d.Peek()
			o.NoCompress = b == 0xc2
			_, err = d.Skip()
		case "timeout":
			var f float64
			var ok bool
			if f, ok, err = d.OptNumber(); ok && f > 0 && f < 1e12 {
				o.Timeout = time.Duration(f * float64(time.Millisecond))
			}
		default:
			_, err = d.Skip()
		}
		return err
	})
}
