package redisadapter

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Requests between nodes: the operations that must reach the sockets of
// every node (join, leave, disconnect, fetch, server-side emit, broadcast
// with acknowledgements). They follow Node's @socket.io/redis-adapter 8.x,
// with one difference: a node applies its own join/leave/disconnect request
// to its sockets at once, rather than when Redis echoes it back, so these
// work on the local sockets during an outage too.

// pendingRequest waits for the answers of the other nodes.
type pendingRequest struct {
	mu        sync.Mutex
	want, got int64
	sockets   []socket.SocketDetails
	responses []any
	timer     *time.Timer
	finish    func(*pendingRequest, error)
	done      bool
}

// ackRequest routes the answers to a broadcast with acknowledgements.
type ackRequest struct {
	clientCount func(uint64)
	ack         socket.Ack
}

// remoteSocket is a socket of another node, as FetchSockets returns it.
type remoteSocket struct {
	id        socket.SocketId
	handshake *socket.Handshake
	rooms     *types.Set[socket.Room]
	data      any
}

func (r *remoteSocket) Id() socket.SocketId            { return r.id }
func (r *remoteSocket) Handshake() *socket.Handshake   { return r.handshake }
func (r *remoteSocket) Rooms() *types.Set[socket.Room] { return r.rooms }
func (r *remoteSocket) Data() any                      { return r.data }

var _ socket.SocketDetails = (*remoteSocket)(nil)

// onRequest handles a message on the request or response channels.
func (a *adapter) onRequest(channel string, msg []byte) {
	if strings.HasPrefix(channel, a.ch.response) {
		a.onResponse(msg)
		return
	}
	if channel != a.ch.request {
		return
	}
	req, err := decodeObject(msg)
	if err != nil {
		a.cluster.log.Debug("redis adapter: ignoring malformed request", "err", err)
		return
	}
	typ, _ := toInt64(req["type"])
	id, _ := req["requestId"].(string)
	uid, _ := req["uid"].(string)
	switch typ {
	case reqSockets:
		if _, ours := a.requests.Load(id); ours {
			return
		}
		ids := []string{}
		for _, sid := range a.Adapter.Sockets(types.NewSet(roomsFromWire(req["rooms"])...)).Keys() {
			ids = append(ids, string(sid))
		}
		a.respondJSON(map[string]any{"requestId": id, "sockets": ids})
	case reqAllRooms:
		if _, ours := a.requests.Load(id); ours {
			return
		}
		rooms := []string{}
		for _, r := range a.Rooms().Keys() {
			rooms = append(rooms, string(r))
		}
		a.respondJSON(map[string]any{"requestId": id, "rooms": rooms})
	case reqRemoteJoin, reqRemoteLeave, reqRemoteDisconnect:
		if uid == a.uid {
			return // applied when it was sent
		}
		a.onRemoteRoomRequest(typ, id, req)
	case reqRemoteFetch:
		if _, ours := a.requests.Load(id); ours {
			return
		}
		om, _ := req["opts"].(map[string]any)
		a.Adapter.FetchSockets(optsFromWire(om))(func(sockets []socket.SocketDetails, _ error) {
			list := make([]map[string]any, 0, len(sockets))
			for _, s := range sockets {
				list = append(list, socketToWire(s))
			}
			a.respondJSON(map[string]any{"requestId": id, "sockets": list})
		})
	case reqServerSideEmit:
		if uid == a.uid {
			return
		}
		data, _ := req["data"].([]any)
		if id == "" {
			a.Nsp().OnServerSideEmit(data)
			return
		}
		var called atomic.Bool
		ack := socket.Ack(func(args []any, _ error) {
			if called.Swap(true) {
				return
			}
			a.respondJSON(map[string]any{"type": reqServerSideEmit, "requestId": id, "data": first(args)})
		})
		a.Nsp().OnServerSideEmit(append(data, ack))
	case reqBroadcast:
		if _, ours := a.ackRequests.Load(id); ours {
			return
		}
		pm, _ := req["packet"].(map[string]any)
		om, _ := req["opts"].(map[string]any)
		if pm == nil {
			return
		}
		a.Adapter.BroadcastWithAck(packetFromWire(pm), optsFromWire(om), func(n uint64) {
			a.respondJSON(map[string]any{"type": reqBroadcastClientCount, "requestId": id, "clientCount": n})
		}, func(args []any, _ error) {
			b, err := marshal(map[string]any{"type": reqBroadcastAck, "requestId": id, "packet": valueToWire(first(args))})
			if err == nil {
				a.cluster.enqueue(a.ch.response, b)
			}
		})
	}
}

func (a *adapter) onRemoteRoomRequest(typ int64, id string, req map[string]any) {
	rooms := roomsFromWire(req["rooms"])
	if om, ok := req["opts"].(map[string]any); ok {
		opts := optsFromWire(om)
		switch typ {
		case reqRemoteJoin:
			a.Adapter.AddSockets(opts, rooms)
		case reqRemoteLeave:
			a.Adapter.DelSockets(opts, rooms)
		default:
			closeConn, _ := req["close"].(bool)
			a.Adapter.DisconnectSockets(opts, closeConn)
		}
		return
	}
	// The single-socket form of older adapters.
	sid, _ := req["sid"].(string)
	s, ok := a.Nsp().Sockets().Load(socket.SocketId(sid))
	if !ok {
		return
	}
	room, _ := req["room"].(string)
	switch typ {
	case reqRemoteJoin:
		s.Join(socket.Room(room))
	case reqRemoteLeave:
		s.Leave(socket.Room(room))
	default:
		closeConn, _ := req["close"].(bool)
		s.Disconnect(closeConn)
	}
	a.respondJSON(map[string]any{"requestId": id})
}

// onResponse routes another node's answer to the request waiting for it.
func (a *adapter) onResponse(msg []byte) {
	resp, err := decodeObject(msg)
	if err != nil {
		return
	}
	id, _ := resp["requestId"].(string)
	if ack, ok := a.ackRequests.Load(id); ok {
		typ, _ := toInt64(resp["type"])
		switch typ {
		case reqBroadcastClientCount:
			if n, ok := toInt64(resp["clientCount"]); ok && n >= 0 {
				ack.clientCount(uint64(n))
			}
		case reqBroadcastAck:
			ack.ack([]any{resp["packet"]}, nil)
		}
		return
	}
	p, ok := a.requests.Load(id)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	if list, ok := resp["sockets"].([]any); ok {
		for _, s := range list {
			if m, ok := s.(map[string]any); ok {
				p.sockets = append(p.sockets, socketFromWire(m))
			}
		}
	}
	if _, ok := resp["data"]; ok {
		p.responses = append(p.responses, resp["data"])
	}
	p.got++
	if p.got >= p.want {
		p.done = true
		p.timer.Stop()
		a.requests.Delete(id)
		p.finish(p, nil)
	}
}

// request publishes a JSON request and calls finish once every node has
// answered (want answers, got of them already known) or on timeout.
func (a *adapter) request(body map[string]any, p *pendingRequest) {
	id := newUID()
	body["uid"], body["requestId"] = a.uid, id
	b, err := json.Marshal(body)
	if err != nil {
		p.finish(p, err)
		return
	}
	p.timer = time.AfterFunc(a.cluster.opts.RequestsTimeout, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.done {
			return
		}
		p.done = true
		a.requests.Delete(id)
		p.finish(p, errors.New("timeout reached while waiting for the other nodes"))
	})
	a.requests.Store(id, p)
	a.cluster.enqueue(a.ch.request, b)
}

func (a *adapter) respondJSON(body map[string]any) {
	b, err := json.Marshal(body)
	if err != nil {
		a.cluster.log.Debug("redis adapter: cannot encode response", "err", err)
		return
	}
	a.cluster.enqueue(a.ch.response, b)
}

// publishRequest sends a request that expects no answer.
func (a *adapter) publishRequest(body map[string]any) {
	body["uid"] = a.uid
	b, err := json.Marshal(body)
	if err != nil {
		a.cluster.log.Warn("redis adapter: cannot encode request", "err", err)
		return
	}
	a.cluster.enqueue(a.ch.request, b)
}

// FetchSockets returns the matching sockets of every node.
func (a *adapter) FetchSockets(opts *socket.BroadcastOptions) func(func([]socket.SocketDetails, error)) {
	return func(cb func([]socket.SocketDetails, error)) {
		a.Adapter.FetchSockets(opts)(func(local []socket.SocketDetails, err error) {
			if err != nil || isLocal(opts) {
				cb(local, err)
				return
			}
			n := a.ServerCount()
			if n <= 1 {
				cb(local, nil)
				return
			}
			a.request(map[string]any{"type": reqRemoteFetch, "opts": roomOpts(opts)}, &pendingRequest{
				want: n, got: 1, sockets: local,
				finish: func(p *pendingRequest, err error) {
					if err != nil {
						cb(nil, err)
						return
					}
					cb(p.sockets, nil)
				},
			})
		})
	}
}

// AddSockets makes the matching sockets of every node join rooms.
func (a *adapter) AddSockets(opts *socket.BroadcastOptions, rooms []socket.Room) {
	a.Adapter.AddSockets(opts, rooms)
	if !isLocal(opts) {
		a.publishRequest(map[string]any{"type": reqRemoteJoin, "opts": roomOpts(opts), "rooms": roomNames(rooms)})
	}
}

// DelSockets makes the matching sockets of every node leave rooms.
func (a *adapter) DelSockets(opts *socket.BroadcastOptions, rooms []socket.Room) {
	a.Adapter.DelSockets(opts, rooms)
	if !isLocal(opts) {
		a.publishRequest(map[string]any{"type": reqRemoteLeave, "opts": roomOpts(opts), "rooms": roomNames(rooms)})
	}
}

// DisconnectSockets disconnects the matching sockets of every node.
func (a *adapter) DisconnectSockets(opts *socket.BroadcastOptions, closeConn bool) {
	if !isLocal(opts) {
		a.publishRequest(map[string]any{"type": reqRemoteDisconnect, "opts": roomOpts(opts), "close": closeConn})
	}
	a.Adapter.DisconnectSockets(opts, closeConn)
}

// ServerSideEmit sends an event to the other nodes; with a socket.Ack as
// last element, the ack gets their answers.
func (a *adapter) ServerSideEmit(packet []any) error {
	if len(packet) == 0 {
		return errors.New("serverSideEmit: empty packet")
	}
	ack, withAck := packet[len(packet)-1].(socket.Ack)
	if !withAck {
		a.publishRequest(map[string]any{"type": reqServerSideEmit, "data": packet})
		return nil
	}
	data := packet[:len(packet)-1]
	n := a.ServerCount() - 1
	if n <= 0 {
		ack([]any{}, nil)
		return nil
	}
	a.request(map[string]any{"type": reqServerSideEmit, "data": data}, &pendingRequest{
		want: n, responses: []any{},
		finish: func(p *pendingRequest, err error) { ack(p.responses, err) },
	})
	return nil
}

// BroadcastWithAck broadcasts and collects the acknowledgements of the
// clients of every node.
func (a *adapter) BroadcastWithAck(packet *parser.Packet, opts *socket.BroadcastOptions, clientCount func(uint64), ack socket.Ack) {
	packet.Nsp = a.Nsp().Name()
	if !isLocal(opts) {
		id := newUID()
		b, err := marshal(map[string]any{
			"uid": a.uid, "requestId": id, "type": reqBroadcast,
			"packet": packetToWire(packet), "opts": optsToWire(opts),
		})
		if err == nil {
			a.ackRequests.Store(id, &ackRequest{clientCount: clientCount, ack: ack})
			timeout := 5 * time.Second
			if opts != nil && opts.Flags != nil && opts.Flags.Timeout != nil {
				timeout = *opts.Flags.Timeout
			}
			time.AfterFunc(timeout, func() { a.ackRequests.Delete(id) })
			a.cluster.enqueue(a.ch.request, b)
		}
	}
	a.Adapter.BroadcastWithAck(packet, opts, clientCount, ack)
}

// roomOpts is the {rooms, except} object of Node's requests.
func roomOpts(opts *socket.BroadcastOptions) map[string]any {
	if opts == nil {
		opts = &socket.BroadcastOptions{}
	}
	return map[string]any{"rooms": roomList(opts.Rooms), "except": roomList(opts.Except)}
}

func roomNames(rooms []socket.Room) []string {
	out := make([]string, len(rooms))
	for i, r := range rooms {
		out[i] = string(r)
	}
	return out
}

func socketToWire(s socket.SocketDetails) map[string]any {
	rooms := []string{}
	if s.Rooms() != nil {
		rooms = roomList(s.Rooms())
	}
	return map[string]any{"id": string(s.Id()), "handshake": s.Handshake(), "rooms": rooms, "data": s.Data()}
}

func socketFromWire(m map[string]any) *remoteSocket {
	id, _ := m["id"].(string)
	r := &remoteSocket{id: socket.SocketId(id), rooms: types.NewSet(roomsFromWire(m["rooms"])...), data: m["data"]}
	r.handshake = &socket.Handshake{}
	if hm, ok := m["handshake"].(map[string]any); ok {
		if b, err := json.Marshal(hm); err == nil {
			_ = json.Unmarshal(b, r.handshake)
		}
	}
	return r
}

func first(args []any) any {
	if len(args) == 0 {
		return nil
	}
	return args[0]
}
