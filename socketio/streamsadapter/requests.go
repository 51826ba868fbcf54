package streamsadapter

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// request is one of this node's requests waiting for the other nodes.
type request struct {
	want      int
	sockets   []*socketio.RemoteSocket
	responses []socketio.Arg
	done      chan struct{}
	closed    bool
}

// ackRequest is one of this node's broadcasts with acknowledgements.
type ackRequest struct {
	clientCount func(int)
	ack         func(socketio.Arg)
}

// subscribe keeps the namespace subscribed to its public and private
// channels and handles their messages, one at a time.
func (a *nsAdapter) subscribe() {
	c := a.c
	delay := c.opts.ReconnectDelay
	for a.ctx.Err() == nil {
		ps := c.client.Subscribe(a.ctx, a.public, a.private)
		a.psMu.Lock()
		if a.ctx.Err() != nil {
			a.psMu.Unlock()
			_ = ps.Close()
			return
		}
		a.ps = ps
		a.psMu.Unlock()
		for {
			msg, err := ps.ReceiveMessage(a.ctx)
			if err != nil {
				break
			}
			delay = c.opts.ReconnectDelay
			a.onPubSub([]byte(msg.Payload))
		}
		a.psMu.Lock()
		a.ps = nil
		a.psMu.Unlock()
		_ = ps.Close()
		var ok bool
		if delay, ok = c.backoff(a.ctx, delay); !ok {
			return
		}
	}
}

// pubMessage encodes {type, data, uid, nsp}; data writes the data map.
func (a *nsAdapter) pubMessage(typ int, data func(e *mpEncoder) error) ([]byte, error) {
	var e mpEncoder
	e.map_(4)
	e.str("type")
	e.int_(int64(typ))
	e.str("data")
	if err := data(&e); err != nil {
		return nil, err
	}
	e.str("uid")
	e.str(a.uid)
	e.str("nsp")
	e.str(a.name)
	return e.buf, nil
}

func (a *nsAdapter) publish(channel string, payload []byte) {
	a.c.out.add(item{kind: kindPublish, key: channel, payload: payload})
}

// respond publishes a response to the node uid.
func (a *nsAdapter) respond(uid string, typ int, data func(e *mpEncoder) error) {
	b, err := a.pubMessage(typ, data)
	if err != nil {
		a.c.log.Warn("streams adapter: cannot encode a response", "nsp", a.name, "err", err)
		return
	}
	a.publish(a.public+uid+"#", b)
}

// onPubSub handles a request or response of another node.
func (a *nsAdapter) onPubSub(payload []byte) {
	v, err := decodeMsgpack(payload)
	if err != nil {
		a.c.log.Debug("streams adapter: ignoring a message", "nsp", a.name, "err", err)
		return
	}
	mm := asObject(v)
	uid, _ := mm.get("uid").(string)
	nsp, _ := mm.get("nsp").(string)
	typ, _ := mm.get("type").(float64)
	data := asObject(mm.get("data"))
	if uid == a.uid || nsp != a.name || data == nil {
		return
	}
	m := &message{uid: uid, nsp: nsp, typ: int(typ), data: data}
	m.reqID, _ = data.get("requestId").(string)
	switch m.typ {
	case typeBroadcast, typeFetchSockets:
		// data.packet is a packet, data.opts options (the other types'
		// packet is an event's arguments or an acknowledgement).
		if err := m.fromMap(data); err != nil {
			a.c.log.Debug("streams adapter: ignoring a request", "nsp", a.name, "err", err)
			return
		}
	}
	switch m.typ {
	case typeServerSideEmit:
		a.onServerSideEmit(m, data)
	case typeFetchSockets:
		a.onFetchSockets(m)
	case typeBroadcast:
		if m.reqID != "" && m.packet != nil {
			a.onBroadcastWithAck(m)
		}
	case typeFetchSocketsResponse, typeServerSideEmitResp, typeBroadcastClientCount, typeBroadcastAck:
		a.onResponse(m)
	}
}

func (a *nsAdapter) onServerSideEmit(m *message, data *object) {
	list, _ := data.get("packet").([]any)
	if len(list) == 0 {
		return
	}
	ev, ok := list[0].(string)
	if !ok {
		return
	}
	var args []socketio.Arg
	for _, v := range list[1:] {
		arg, err := argOf(v)
		if err != nil {
			return
		}
		args = append(args, arg)
	}
	reqID, _ := data.get("requestId").(string)
	var reply func([]socketio.Arg)
	if reqID != "" {
		reply = func(res []socketio.Arg) {
			a.respond(m.uid, typeServerSideEmitResp, func(e *mpEncoder) error {
				e.map_(2)
				e.str("requestId")
				e.str(reqID)
				e.str("packet")
				if len(res) == 0 {
					e.nil_()
					return nil
				}
				return e.json(res[0].JSON, res[0].Attachments)
			})
		}
	}
	// The handler is application code: off the subscriber.
	go a.local.ServerSideEmit(ev, args, reply)
}

func (a *nsAdapter) onFetchSockets(m *message) {
	sockets := a.local.FetchSockets(m.opts)
	a.respond(m.uid, typeFetchSocketsResponse, func(e *mpEncoder) error {
		e.map_(2)
		e.str("requestId")
		e.str(m.reqID)
		e.str("sockets")
		e.array(len(sockets))
		for _, s := range sockets {
			e.map_(4)
			e.str("id")
			e.str(s.ID)
			e.str("handshake")
			encodeHandshake(e, s.Handshake)
			e.str("rooms")
			_ = e.value(s.Rooms)
			e.str("data")
			if err := e.value(s.Data); err != nil {
				e.nil_()
			}
		}
		return nil
	})
}

// encodeHandshake writes Node's socket.handshake.
func encodeHandshake(e *mpEncoder, h socketio.Handshake) {
	e.map_(9)
	e.str("headers")
	headers := map[string]any{}
	for k, v := range h.Headers {
		if len(v) > 0 {
			headers[http.CanonicalHeaderKey(k)] = v[0]
		}
	}
	lower := map[string]any{}
	for k, v := range headers {
		lower[lowerASCII(k)] = v
	}
	_ = e.value(lower)
	e.str("time")
	e.str(h.Time.Format("Mon Jan 02 2006 15:04:05 GMT-0700 (Coordinated Universal Time)"))
	e.str("address")
	e.str(h.Address)
	e.str("xdomain")
	e.bool_(h.XDomain)
	e.str("secure")
	e.bool_(h.Secure)
	e.str("issued")
	e.int_(h.Time.UnixMilli())
	e.str("url")
	e.str(h.URL)
	e.str("query")
	q := map[string]any{}
	for k, v := range h.Query {
		if len(v) > 0 {
			q[k] = v[0]
		}
	}
	_ = e.value(q)
	e.str("auth")
	if len(h.Auth) > 0 {
		if err := e.json(h.Auth, nil); err == nil {
			return
		}
	}
	e.map_(0)
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// decodeHandshake reads Node's socket.handshake.
func decodeHandshake(v any) socketio.Handshake {
	m := asObject(v)
	var h socketio.Handshake
	h.Headers = http.Header{}
	if hs := asObject(m.get("headers")); hs != nil {
		for i, k := range hs.keys {
			if s, ok := hs.vals[i].(string); ok {
				h.Headers.Set(k, s)
			}
		}
	}
	h.Address, _ = m.get("address").(string)
	h.URL, _ = m.get("url").(string)
	h.XDomain, _ = m.get("xdomain").(bool)
	h.Secure, _ = m.get("secure").(bool)
	if ms, ok := m.get("issued").(float64); ok {
		h.Time = time.UnixMilli(int64(ms))
	}
	h.Query = url.Values{}
	if q := asObject(m.get("query")); q != nil {
		for i, k := range q.keys {
			if s, ok := q.vals[i].(string); ok {
				h.Query.Set(k, s)
			}
		}
	}
	if auth := m.get("auth"); auth != nil {
		if j, _, err := toArg(auth); err == nil {
			h.Auth = json.RawMessage(j)
		}
	}
	return h
}

func (a *nsAdapter) onBroadcastWithAck(m *message) {
	p := m.packet
	p.Opts = m.opts
	p.ID = a.local.NextAckID()
	reqID, uid := m.reqID, m.uid
	a.local.BroadcastWithAck(p, func(n int) {
		a.respond(uid, typeBroadcastClientCount, func(e *mpEncoder) error {
			e.map_(2)
			e.str("requestId")
			e.str(reqID)
			e.str("clientCount")
			e.int_(int64(n))
			return nil
		})
	}, func(arg socketio.Arg) {
		a.respond(uid, typeBroadcastAck, func(e *mpEncoder) error {
			e.map_(2)
			e.str("requestId")
			e.str(reqID)
			e.str("packet")
			return e.json(arg.JSON, arg.Attachments)
		})
	})
}

// onResponse hands a response to the request it answers.
func (a *nsAdapter) onResponse(m *message) {
	a.reqMu.Lock()
	defer a.reqMu.Unlock()
	switch m.typ {
	case typeBroadcastClientCount:
		if r := a.acks[m.reqID]; r != nil {
			n, _ := m.data.get("clientCount").(float64)
			go r.clientCount(int(n))
		}
	case typeBroadcastAck:
		if r := a.acks[m.reqID]; r != nil {
			if arg, err := argOf(m.data.get("packet")); err == nil {
				go r.ack(arg)
			}
		}
	case typeFetchSocketsResponse:
		r := a.requests[m.reqID]
		if r == nil || r.closed {
			return
		}
		list, _ := m.data.get("sockets").([]any)
		for _, s := range list {
			sm := asObject(s)
			id, _ := sm.get("id").(string)
			rooms, _ := sm.get("rooms").([]any)
			r.sockets = append(r.sockets, a.local.NewRemoteSocket(id, decodeHandshake(sm.get("handshake")), roomList(rooms), plain(sm.get("data"))))
		}
		r.want--
		if r.want == 0 {
			r.closed = true
			close(r.done)
		}
	case typeServerSideEmitResp:
		r := a.requests[m.reqID]
		if r == nil || r.closed {
			return
		}
		if arg, err := argOf(m.data.get("packet")); err == nil {
			r.responses = append(r.responses, arg)
		}
		r.want--
		if r.want == 0 {
			r.closed = true
			close(r.done)
		}
	}
}

// register records a request expecting want responses.
func (a *nsAdapter) register(want int) (string, *request) {
	id := newUID()
	r := &request{want: want, done: make(chan struct{})}
	a.reqMu.Lock()
	a.requests[id] = r
	a.reqMu.Unlock()
	return id, r
}

// wait waits for r's responses, up to RequestsTimeout, and forgets it.
func (a *nsAdapter) wait(ctx context.Context, id string, r *request) error {
	t := time.NewTimer(a.c.opts.RequestsTimeout)
	defer t.Stop()
	var err error
	select {
	case <-r.done:
	case <-t.C:
		err = fmt.Errorf("%w: responses missing", socketio.ErrAckTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	a.reqMu.Lock()
	delete(a.requests, id)
	r.closed = true
	a.reqMu.Unlock()
	return err
}

// ServerSideEmit sends an event to the other nodes' namespace.
func (a *nsAdapter) ServerSideEmit(event string, args []socketio.Arg, ack socketio.AckFunc) error {
	for i, arg := range args {
		if !json.Valid(arg.JSON) {
			return fmt.Errorf("streams adapter: server-side event %q: argument %d is not JSON", event, i)
		}
	}
	encode := func(reqID string) ([]byte, error) {
		return a.pubMessage(typeServerSideEmit, func(e *mpEncoder) error {
			if reqID != "" {
				e.map_(2)
				e.str("requestId")
				e.str(reqID)
			} else {
				e.map_(1)
			}
			e.str("packet")
			e.array(1 + len(args))
			e.str(event)
			for _, arg := range args {
				if err := e.json(arg.JSON, arg.Attachments); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if ack == nil {
		b, err := encode("")
		if err != nil {
			return err
		}
		a.publish(a.public, b)
		return nil
	}
	go func() {
		n, err := a.ServerCount(a.ctx)
		if err != nil || n <= 1 {
			ack(nil, nil)
			return
		}
		id, r := a.register(n - 1)
		b, err := encode(id)
		if err != nil {
			ack(nil, err)
			return
		}
		a.publish(a.public, b)
		err = a.wait(a.ctx, id, r)
		a.reqMu.Lock()
		responses := r.responses
		a.reqMu.Unlock()
		ack(responses, err)
	}()
	return nil
}

// FetchSockets returns the other nodes' sockets selected by opts.
func (a *nsAdapter) FetchSockets(ctx context.Context, opts socketio.BroadcastOptions) ([]*socketio.RemoteSocket, error) {
	n, err := a.ServerCount(ctx)
	if err != nil {
		return nil, err
	}
	if n <= 1 {
		return nil, nil
	}
	id, r := a.register(n - 1)
	b, err := a.pubMessage(typeFetchSockets, func(e *mpEncoder) error {
		e.map_(2)
		e.str("opts")
		optsMsgpack(e, opts)
		e.str("requestId")
		e.str(id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.publish(a.public, b)
	err = a.wait(ctx, id, r)
	a.reqMu.Lock()
	sockets := r.sockets
	a.reqMu.Unlock()
	return sockets, err
}

// BroadcastWithAck sends p to the other nodes over pub/sub, as Node: each
// answers with its number of recipients, then each recipient's ack.
func (a *nsAdapter) BroadcastWithAck(p *socketio.BroadcastPacket, clientCount func(int), ack func(socketio.Arg)) {
	if p.Opts.Local {
		return
	}
	id := newUID()
	b, err := a.pubMessage(typeBroadcast, func(e *mpEncoder) error {
		e.map_(3)
		e.str("packet")
		if err := packetMsgpack(e, p); err != nil {
			return err
		}
		e.str("requestId")
		e.str(id)
		e.str("opts")
		optsMsgpack(e, p.Opts)
		return nil
	})
	if err != nil {
		a.c.log.Warn("streams adapter: cannot encode broadcast", "nsp", a.name, "event", p.Event, "err", err)
		return
	}
	a.reqMu.Lock()
	a.acks[id] = &ackRequest{clientCount: clientCount, ack: ack}
	a.reqMu.Unlock()
	time.AfterFunc(max(p.Opts.Timeout, time.Second), func() {
		a.reqMu.Lock()
		delete(a.acks, id)
		a.reqMu.Unlock()
	})
	a.publish(a.public, b)
}
