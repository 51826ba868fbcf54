package redisadapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// Requests between nodes: the operations that must reach the sockets of
// every node (join, leave, disconnect, fetch, server-side emit, broadcast
// with acknowledgements). They follow Node's @socket.io/redis-adapter 8.x,
// with one difference: a node applies its own join/leave/disconnect request
// to its sockets at once (the socketio server does), rather than when Redis
// echoes it back, so these work on the local sockets during an outage too.

// pendingRequest collects the answers to one of this node's requests.
type pendingRequest struct {
	typ       int
	want      int // answers expected; -1 until the number of nodes is known
	got       int
	sockets   []*socketio.RemoteSocket
	responses []socketio.Arg
	deadline  time.Time // RequestsTimeout after the request was made
	done      chan struct{}
	closed    bool
}

// complete closes done once every answer came. reqMu is held.
func (p *pendingRequest) complete() {
	if !p.closed && p.want >= 0 && p.got >= p.want {
		p.closed = true
		close(p.done)
	}
}

// ackRequest routes the answers to one of this node's broadcasts with
// acknowledgements.
type ackRequest struct {
	clientCount func(int)
	ack         func(socketio.Arg)
}

// errTimeout is returned when some nodes did not answer in time.
var errTimeout = errors.New("timeout reached while waiting for the other nodes")

// register records a request before it is published.
func (a *nsAdapter) register(typ int) (string, *pendingRequest) {
	id := newUID()
	p := &pendingRequest{typ: typ, want: -1, done: make(chan struct{}), deadline: time.Now().Add(a.c.opts.RequestsTimeout)}
	a.reqMu.Lock()
	a.requests[id] = p
	a.reqMu.Unlock()
	return id, p
}

// expect sets the number of answers a request waits for.
func (a *nsAdapter) expect(p *pendingRequest, n int) {
	a.reqMu.Lock()
	p.want = max(n, 0)
	p.complete()
	a.reqMu.Unlock()
}

// wait waits for every answer, the request's deadline or ctx, then forgets
// the request.
func (a *nsAdapter) wait(ctx context.Context, id string, p *pendingRequest) error {
	t := time.NewTimer(time.Until(p.deadline))
	defer t.Stop()
	var err error
	select {
	case <-p.done:
	case <-t.C:
		err = errTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	a.reqMu.Lock()
	delete(a.requests, id)
	if err != nil && p.closed {
		err = nil // completed meanwhile
	}
	a.reqMu.Unlock()
	return err
}

// otherNodes counts the other nodes in the background and sets p's
// expected answers.
func (a *nsAdapter) otherNodes(ctx context.Context, p *pendingRequest) {
	if a.c.health.isDown() {
		a.expect(p, 0) // nobody hears us: do not wait for answers
		return
	}
	ctx, cancel := context.WithDeadline(ctx, p.deadline)
	defer cancel()
	n, err := a.ServerCount(ctx)
	if err != nil {
		n = 1 // no answer to wait for: the request times out with what came
	}
	a.expect(p, n-1)
}

func (a *nsAdapter) publishRequest(body []byte) {
	a.c.enqueue(publication{channel: a.ch.request, payload: body})
}

func (a *nsAdapter) publishResponse(body []byte) {
	a.c.enqueue(publication{channel: a.ch.response, payload: body})
}

// FetchSockets returns the sockets of the other nodes selected by opts: it
// waits for every node's answer, up to RequestsTimeout (then it returns
// what came, and an error). While Redis is known to be down, it returns no
// socket at once. A socket of another node has its JSON as Data (a
// json.RawMessage) and its handshake's issued time as Handshake.Time.
func (a *nsAdapter) FetchSockets(ctx context.Context, opts socketio.BroadcastOptions) ([]*socketio.RemoteSocket, error) {
	if opts.Local {
		return nil, nil
	}
	id, p := a.register(reqRemoteFetch)
	a.publishRequest(a.fetchRequest(id, opts))
	a.otherNodes(ctx, p)
	err := a.wait(ctx, id, p)
	a.reqMu.Lock()
	defer a.reqMu.Unlock()
	return p.sockets, err
}

// AddSockets makes the matching sockets of the other nodes join rooms.
func (a *nsAdapter) AddSockets(opts socketio.BroadcastOptions, rooms []string) {
	if !opts.Local {
		a.publishRequest(a.roomsRequest(reqRemoteJoin, opts, rooms))
	}
}

// DelSockets makes the matching sockets of the other nodes leave rooms.
func (a *nsAdapter) DelSockets(opts socketio.BroadcastOptions, rooms []string) {
	if !opts.Local {
		a.publishRequest(a.roomsRequest(reqRemoteLeave, opts, rooms))
	}
}

// DisconnectSockets disconnects the matching sockets of the other nodes.
func (a *nsAdapter) DisconnectSockets(opts socketio.BroadcastOptions, close bool) {
	if !opts.Local {
		a.publishRequest(a.disconnectRequest(opts, close))
	}
}

// ServerSideEmit sends an event to the other nodes' namespace. With an
// ack, it returns at once and ack receives their answers, one Arg each, on
// another goroutine: when all have answered, or after RequestsTimeout with
// an error wrapping socketio.ErrAckTimeout and the answers that came.
func (a *nsAdapter) ServerSideEmit(event string, args []socketio.Arg, ack socketio.AckFunc) error {
	for i, arg := range args {
		if !json.Valid(arg.JSON) {
			return fmt.Errorf("redis adapter: server-side event %q: argument %d is not JSON", event, i)
		}
	}
	if ack == nil {
		a.publishRequest(a.serverSideEmitRequest("", event, args))
		return nil
	}
	id, p := a.register(reqServerSideEmit)
	a.publishRequest(a.serverSideEmitRequest(id, event, args))
	go func() {
		a.otherNodes(a.ctx, p)
		err := a.wait(a.ctx, id, p)
		a.reqMu.Lock()
		responses, want := p.responses, p.want
		a.reqMu.Unlock()
		if err != nil {
			err = fmt.Errorf("%w: only %d responses received out of %d", socketio.ErrAckTimeout, len(responses), want)
		}
		ack(responses, err)
	}()
	return nil
}

// encoders are the encoders of the messages built outside the publishing
// goroutine (requests and responses).
var encoders = sync.Pool{New: func() any { return new(encoder) }}

// BroadcastWithAck sends p to the other nodes, whose recipients
// acknowledge it: each node answers with its number of recipients, then
// each recipient's acknowledgement.
func (a *nsAdapter) BroadcastWithAck(p *socketio.BroadcastPacket, clientCount func(int), ack func(socketio.Arg)) {
	if p.Opts.Local {
		return
	}
	id := newUID()
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.Buf = e.Buf[:0]
	e.MapHeader(5)
	e.String("uid")
	e.String(a.uid)
	e.String("requestId")
	e.String(id)
	e.String("type")
	e.Uint(reqBroadcast)
	e.String("packet")
	if err := e.packet(p); err != nil {
		a.c.stats.dropped.Add(1)
		a.c.log.Warn("redis adapter: cannot encode broadcast", "nsp", a.name, "event", p.Event, "err", err)
		return
	}
	e.String("opts")
	e.opts(p.Opts, true)
	a.reqMu.Lock()
	a.acks[id] = &ackRequest{clientCount: clientCount, ack: ack}
	a.reqMu.Unlock()
	// There is no knowing when every recipient of the other nodes has
	// answered: forget the request after the timeout, as Node does.
	timeout := p.Opts.Timeout
	if timeout <= 0 {
		timeout = a.c.opts.RequestsTimeout
	}
	time.AfterFunc(timeout, func() {
		a.reqMu.Lock()
		delete(a.acks, id)
		a.reqMu.Unlock()
	})
	a.publishRequest(bytes.Clone(e.Buf))
}

// onRequest handles a message on the request or response channels.
func (a *nsAdapter) onRequest(channel string, msg []byte) {
	if strings.HasPrefix(channel, a.ch.response) {
		a.onResponse(msg)
		return
	}
	if channel != a.ch.request {
		return
	}
	var req request
	var err error
	if len(msg) > 0 && msg[0] == '{' {
		err = req.fromJSON(msg)
	} else {
		err = req.fromMsgpack(msg)
	}
	if err != nil {
		a.c.log.Debug("redis adapter: ignoring a malformed request", "nsp", a.name, "err", err)
		return
	}
	ours := func() bool {
		if req.uid == a.uid {
			return true
		}
		a.reqMu.Lock()
		defer a.reqMu.Unlock()
		_, ok := a.requests[req.requestID]
		return ok
	}
	switch req.typ {
	case reqSockets:
		if ours() {
			return
		}
		var ids []string
		for _, s := range a.local.FetchSockets(socketio.BroadcastOptions{Rooms: req.rooms}) {
			ids = append(ids, s.ID)
		}
		a.publishResponse(listResponse(req.requestID, "sockets", ids))
	case reqAllRooms:
		if ours() {
			return
		}
		a.publishResponse(listResponse(req.requestID, "rooms", a.nsp.Rooms()))
	case reqRemoteJoin, reqRemoteLeave, reqRemoteDisconnect:
		if req.uid == a.uid {
			return // applied when it was sent
		}
		a.onRoomRequest(&req)
	case reqRemoteFetch:
		if ours() || req.opts == nil {
			return
		}
		a.publishResponse(fetchResponse(req.requestID, a.local.FetchSockets(*req.opts)))
	case reqServerSideEmit:
		if req.uid == a.uid || !req.hasEvent {
			return
		}
		a.onServerSideEmit(&req)
	case reqBroadcast:
		a.reqMu.Lock()
		_, own := a.acks[req.requestID]
		a.reqMu.Unlock()
		if own || req.uid == a.uid || req.packet == nil || req.opts == nil {
			return
		}
		a.onBroadcastWithAck(&req)
	}
}

func (a *nsAdapter) onRoomRequest(req *request) {
	if req.opts != nil {
		opts := socketio.BroadcastOptions{Rooms: req.opts.Rooms, Except: req.opts.Except}
		switch req.typ {
		case reqRemoteJoin:
			a.local.AddSockets(opts, req.rooms)
		case reqRemoteLeave:
			a.local.DelSockets(opts, req.rooms)
		default:
			closeConn := req.close
			a.task("disconnect", func() { a.local.DisconnectSockets(opts, closeConn) })
		}
		return
	}
	// The single-socket form of older adapters, which expects an answer.
	s := a.nsp.Socket(req.sid)
	if s == nil {
		return
	}
	switch req.typ {
	case reqRemoteJoin:
		s.Join(req.room)
	case reqRemoteLeave:
		s.Leave(req.room)
	default:
		closeConn := req.close
		a.task("disconnect", func() { s.Disconnect(closeConn) })
	}
	a.publishResponse(idResponse(req.requestID))
}

// onServerSideEmit hands a server-side event to its handler, on the
// runTasks goroutine.
func (a *nsAdapter) onServerSideEmit(req *request) {
	var reply func([]socketio.Arg)
	if req.hasID {
		var once sync.Once
		id := req.requestID
		reply = func(args []socketio.Arg) {
			once.Do(func() { a.publishResponse(serverSideEmitResponse(id, args)) })
		}
	}
	event, args := req.event, req.data
	a.task("server-side event "+event, func() { a.local.ServerSideEmit(event, args, reply) })
}

// onBroadcastWithAck delivers another node's broadcast with
// acknowledgements and answers with the number of recipients, then with
// each acknowledgement.
func (a *nsAdapter) onBroadcastWithAck(req *request) {
	p := req.packet
	if p.Nsp != a.name {
		return
	}
	// Node hands the request's rooms and exceptions on, not its flags; the
	// timeout is kept here so that unanswered acks do not linger.
	p.Opts = socketio.BroadcastOptions{Rooms: req.opts.Rooms, Except: req.opts.Except, Timeout: req.opts.Timeout}
	p.ID = a.local.NextAckID()
	id := req.requestID
	a.local.BroadcastWithAck(p, func(n int) {
		a.publishResponse(clientCountResponse(id, n))
	}, func(arg socketio.Arg) {
		b, err := ackResponse(id, arg)
		if err != nil {
			a.c.log.Debug("redis adapter: cannot encode an acknowledgement", "nsp", a.name, "err", err)
			return
		}
		a.publishResponse(b)
	})
}

// onResponse routes another node's answer to the request waiting for it.
func (a *nsAdapter) onResponse(msg []byte) {
	var resp response
	var err error
	if len(msg) > 0 && msg[0] == '{' {
		err = resp.fromJSON(msg)
	} else {
		err = resp.fromMsgpack(msg)
	}
	if err != nil || resp.requestID == "" {
		return
	}
	a.reqMu.Lock()
	ack := a.acks[resp.requestID]
	p := a.requests[resp.requestID]
	a.reqMu.Unlock()
	if ack != nil {
		switch {
		case resp.typ == reqBroadcastClientCount && resp.hasCount:
			ack.clientCount(resp.clientCount)
		case resp.typ == reqBroadcastAck:
			arg := resp.packet
			if !resp.hasPacket {
				arg = socketio.Arg{JSON: json.RawMessage("null")}
			}
			ack.ack(arg)
		}
		return
	}
	if p == nil {
		return
	}
	var sockets []*socketio.RemoteSocket
	if p.typ == reqRemoteFetch {
		if !resp.hasSockets {
			return // as Node: not an answer
		}
		for _, raw := range resp.sockets {
			if s, err := a.socketFromWire(raw); err == nil {
				sockets = append(sockets, s)
			}
		}
	}
	a.reqMu.Lock()
	defer a.reqMu.Unlock()
	if p.closed {
		return
	}
	switch p.typ {
	case reqRemoteFetch:
		p.sockets = append(p.sockets, sockets...)
	case reqServerSideEmit:
		arg := resp.data
		if !resp.hasData {
			arg = socketio.Arg{JSON: json.RawMessage("null")}
		}
		p.responses = append(p.responses, arg)
	}
	p.got++
	p.complete()
}
