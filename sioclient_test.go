package main

// The Socket.IO v5 client of the top-level tests, on the raw Engine.IO
// client of rawchat_test.go (one rawChat per Engine.IO session). It behaves
// as socket.io-client 4.8 does where the tests look: CONNECT with auth,
// events and acknowledgements with JSON and binary arguments, the
// disconnect reasons, reconnection with connection state recovery ({pid,
// offset} in the CONNECT of a reconnection). It is deterministic where
// socket.io-client leaves things to chance: "upgrade" mode always opens on
// polling, and reconnection delays are not randomised.
//
// Arguments are decoded as encoding/json decodes into an any (numbers
// float64, objects map[string]any, arrays []any), with binary attachments
// as []byte.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sioOptions configure a sioClient. Zero values mean the defaults below.
type sioOptions struct {
	// Reconnection makes the client reconnect by itself, as
	// socket.io-client does, once a connection is lost ("transport close",
	// "ping timeout", …; not after "io server disconnect" or Disconnect):
	// first after ReconnectionDelay, then after twice the previous delay
	// for each failed attempt, up to ReconnectionDelayMax. The first
	// connection is not retried.
	Reconnection         bool
	ReconnectionDelay    time.Duration // defaults to 50ms
	ReconnectionDelayMax time.Duration // defaults to 200ms
	// Timeout bounds one connection attempt: the Engine.IO handshake and
	// the namespace's CONNECT answer. Defaults to 10s.
	Timeout time.Duration
	// Header is sent with every HTTP request and WebSocket handshake.
	Header http.Header
	// Auth is the CONNECT packet's payload (socket.io-client's auth).
	Auth map[string]any
	// OnConnect runs on the reading goroutine as soon as the socket is
	// connected, before any packet that follows the CONNECT answer is
	// handled: an emit there goes out first (socket.on("connect", () =>
	// socket.emit(…))).
	OnConnect func(*sioClient)
}

// sioClient is a Socket.IO client of the main namespace and what it
// received. Its methods are safe for concurrent use.
type sioClient struct {
	url  string // http://host:port
	mode sioMode
	opts sioOptions

	inbox       *sioInbox     // the arguments of every "message" event
	disconnects chan string   // the reason of every "disconnect"
	connects    chan struct{} // one per connect after the first
	// transportAtOpen is the transport the first Engine.IO session opened with.
	transportAtOpen string

	mu            sync.Mutex
	session       *rawChat // the live Engine.IO session, or nil
	lastTransport rawChatTransport
	attempt       chan error // the outcome of the connection attempt in progress
	id, pid       string
	offset        string // of the last event received while pid is set
	connected     bool
	recovered     bool
	closed        bool          // Disconnect was called
	stopped       chan struct{} // closed by Disconnect
	reconnecting  bool
	failed        []error // failed reconnection attempts
	beforeAttempt func()
	pending       *sioPacket   // a binary packet waiting for its attachments
	early         []*sioPacket // events received before the CONNECT answer (socket.ts, receiveBuffer)
	acks          map[int]chan []any
	nextAck       int
	handlers      map[string]func(args []any) []any
	upgraded      []string
	upgradeErrV   error
	upgradeNote   chan struct{}
}

// sioNewClient returns a client of the server at url (http://host:port)
// that connects in mode; connect connects it.
func sioNewClient(url string, mode sioMode, opts sioOptions) *sioClient {
	if opts.ReconnectionDelay <= 0 {
		opts.ReconnectionDelay = 50 * time.Millisecond
	}
	if opts.ReconnectionDelayMax <= 0 {
		opts.ReconnectionDelayMax = 200 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	return &sioClient{url: url, mode: mode, opts: opts, inbox: newSioInbox(),
		disconnects: make(chan string, 16), connects: make(chan struct{}, 16),
		stopped: make(chan struct{}), acks: map[int]chan []any{}, handlers: map[string]func([]any) []any{},
		upgradeNote: make(chan struct{}, 1)}
}

// connect makes the first connection: one attempt.
func (c *sioClient) connect() error {
	if err := c.connectOnce(); err != nil {
		return err
	}
	<-c.connects // connects counts the connections after the first
	c.mu.Lock()
	c.transportAtOpen = string(c.lastTransport)
	c.mu.Unlock()
	return nil
}

// connectOnce opens an Engine.IO session, sends CONNECT ({pid, offset}
// when there is a session to recover, as socket.io-client 4.8 does in
// _sendConnectPacket, with Auth over them) and waits for the answer.
func (c *sioClient) connectOnce() error {
	transport, upgrade := rawChatPolling, false
	switch c.mode {
	case sioPolling:
	case sioWebSocket:
		transport = rawChatWS
	case sioUpgrade:
		upgrade = true
	default:
		return fmt.Errorf("unknown mode %q", c.mode)
	}
	s, err := rawChatOpen(c.url, transport, string(c.mode)+" client", rawChatOptions{
		header: c.opts.Header, upgrade: upgrade, timeout: c.opts.Timeout,
		onPacket: c.onPacket, onUpgrade: c.onUpgrade, onEnd: c.onEnd,
	})
	if err != nil {
		return err
	}
	attempt := make(chan error, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.close()
		return errors.New("disconnected by the client")
	}
	c.session, c.attempt, c.pending = s, attempt, nil
	c.lastTransport, c.upgraded, c.upgradeErrV = transport, nil, nil
	var payload map[string]any
	if c.pid != "" {
		payload = map[string]any{"pid": c.pid}
		if c.offset != "" {
			payload["offset"] = c.offset
		}
	}
	if c.opts.Auth != nil && payload == nil {
		payload = map[string]any{}
	}
	for k, v := range c.opts.Auth {
		payload[k] = v
	}
	c.mu.Unlock()
	packet := "40"
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			s.close()
			return err
		}
		packet += string(b)
	}
	if err := s.send(packet); err != nil {
		s.close()
		return fmt.Errorf("send CONNECT: %v", err)
	}
	timer := time.NewTimer(c.opts.Timeout)
	defer timer.Stop()
	select {
	case err = <-attempt:
	case <-timer.C:
		err = fmt.Errorf("no CONNECT answer within %v", c.opts.Timeout)
	case <-c.stopped:
		err = errors.New("disconnected by the client")
	}
	if err != nil {
		s.close()
	}
	return err
}

// onPacket handles a packet of session s, on its reading goroutine.
func (c *sioClient) onPacket(s *rawChat, p rawPacket) {
	c.mu.Lock()
	if s != c.session {
		c.mu.Unlock()
		return
	}
	var pkt *sioPacket
	switch {
	case p.binary && c.pending != nil:
		c.pending.bins = append(c.pending.bins, []byte(p.data))
		if len(c.pending.bins) == c.pending.attachments {
			pkt, c.pending = c.pending, nil
		}
	case p.binary:
		c.mu.Unlock()
		s.stop("parse error", errors.New("binary message without a BINARY packet"))
		return
	case strings.HasPrefix(p.data, "4"): // Engine.IO MESSAGE
		parsed, err := sioParse(p.data[1:])
		if err != nil {
			c.mu.Unlock()
			s.stop("parse error", err)
			return
		}
		if parsed.attachments > 0 {
			c.pending = &parsed
		} else {
			pkt = &parsed
		}
	}
	c.mu.Unlock()
	if pkt == nil {
		return
	}
	if err := c.dispatch(s, pkt); err != nil {
		s.stop("parse error", err)
	}
}

// dispatch handles a complete Socket.IO packet.
func (c *sioClient) dispatch(s *rawChat, pkt *sioPacket) error {
	if pkt.nsp != "/" {
		return nil // only the main namespace
	}
	switch pkt.typ {
	case '0': // CONNECT
		var answer struct{ Sid, Pid string }
		if err := json.Unmarshal([]byte(pkt.data), &answer); err != nil || answer.Sid == "" {
			return fmt.Errorf("CONNECT answer %q", pkt.data)
		}
		c.mu.Lock()
		c.id, c.connected, c.reconnecting = answer.Sid, true, false
		c.recovered = answer.Pid != "" && answer.Pid == c.pid // socket.ts, onconnect
		c.pid = answer.Pid
		if c.pid == "" {
			c.offset = ""
		}
		attempt := c.attempt
		c.attempt = nil
		early := c.early
		c.early = nil
		c.mu.Unlock()
		// socket.ts, onconnect: the buffered events first (a Node server
		// sends the missed packets of a recovered session before CONNECT).
		for _, p := range early {
			if err := c.dispatch(s, p); err != nil {
				return err
			}
		}
		c.signalConnect()
		if attempt != nil {
			attempt <- nil
		}
		if c.opts.OnConnect != nil {
			c.opts.OnConnect(c)
		}
	case '4': // CONNECT_ERROR
		c.mu.Lock()
		attempt := c.attempt
		c.attempt = nil
		c.mu.Unlock()
		if attempt != nil {
			attempt <- fmt.Errorf("connect_error %s", pkt.data)
		}
	case '1': // DISCONNECT: socket.ts, ondisconnect; the Manager then closes the engine
		c.mu.Lock()
		wasConnected := c.connected
		c.session, c.connected, c.id = nil, false, ""
		c.failAcksLocked()
		c.mu.Unlock()
		if wasConnected {
			c.signalDisconnect("io server disconnect")
		}
		s.close()
	case '2', '5': // EVENT, BINARY_EVENT
		args, err := sioDecodeArgs(pkt)
		if err != nil {
			return err
		}
		event, ok := args[0].(string)
		if !ok {
			return fmt.Errorf("event name %#v", args[0])
		}
		args = args[1:]
		c.mu.Lock()
		if !c.connected {
			if c.session == s && len(c.early) < 1024 {
				c.early = append(c.early, pkt)
			}
			c.mu.Unlock()
			return nil
		}
		if c.pid != "" && len(args) > 0 { // socket.ts, emitEvent
			if off, ok := args[len(args)-1].(string); ok {
				c.offset = off
			}
		}
		handler := c.handlers[event]
		c.mu.Unlock()
		var reply []any
		switch {
		case event == "message":
			c.inbox.add(args...)
		case handler != nil:
			reply = handler(args)
		}
		if pkt.id >= 0 {
			if reply == nil {
				reply = []any{}
			}
			packets, err := sioEncode('3', pkt.id, reply)
			if err != nil {
				return err
			}
			_ = s.sendPackets(packets...)
		}
	case '3', '6': // ACK, BINARY_ACK
		args, err := sioDecodeArgs(pkt)
		if err != nil {
			return err
		}
		c.mu.Lock()
		ch := c.acks[pkt.id]
		delete(c.acks, pkt.id)
		c.mu.Unlock()
		if ch != nil {
			ch <- args
		}
	}
	return nil
}

// onEnd is told that session s ended: a connected socket is disconnected
// with reason and, with Reconnection, reconnects.
func (c *sioClient) onEnd(s *rawChat, reason string, err error) {
	c.mu.Lock()
	if s != c.session {
		c.mu.Unlock()
		return
	}
	wasConnected := c.connected
	c.session, c.connected, c.id = nil, false, ""
	c.failAcksLocked()
	attempt := c.attempt
	c.attempt = nil
	reconnect := wasConnected && c.opts.Reconnection && !c.closed && !c.reconnecting
	if reconnect {
		c.reconnecting = true
	}
	c.mu.Unlock()
	if attempt != nil {
		attempt <- fmt.Errorf("the session ended before the CONNECT answer: %s (%v)", reason, err)
	}
	if wasConnected {
		c.signalDisconnect(reason)
	}
	c.noteUpgrade()
	if reconnect {
		go c.reconnect()
	}
}

// reconnect tries to connect again until it does or Disconnect is called,
// as the Manager does (manager.ts, reconnect), without randomisation.
//
// c.reconnecting is set by onEnd when it starts the loop and cleared by
// the CONNECT answer that ends it, so that a connection lost right after
// starts a loop of its own.
func (c *sioClient) reconnect() {
	delay := c.opts.ReconnectionDelay
	for {
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-c.stopped:
			timer.Stop()
			return
		}
		c.mu.Lock()
		hook := c.beforeAttempt
		c.mu.Unlock()
		if hook != nil {
			hook()
		}
		err := c.connectOnce()
		if err == nil {
			return
		}
		c.mu.Lock()
		closed := c.closed
		if !closed {
			c.failed = append(c.failed, err)
		}
		c.mu.Unlock()
		if closed {
			return
		}
		delay = min(2*delay, c.opts.ReconnectionDelayMax)
	}
}

// onUpgrade records how session s's upgrade ended.
func (c *sioClient) onUpgrade(s *rawChat, err error) {
	c.mu.Lock()
	if s == c.session {
		if err != nil {
			c.upgradeErrV = err
		} else {
			c.upgraded = append(c.upgraded, string(rawChatWS))
			c.lastTransport = rawChatWS
		}
	}
	c.mu.Unlock()
	c.noteUpgrade()
}

// noteUpgrade wakes waitUpgrade.
func (c *sioClient) noteUpgrade() {
	select {
	case c.upgradeNote <- struct{}{}:
	default:
	}
}

func (c *sioClient) signalConnect() {
	select {
	case c.connects <- struct{}{}:
	default:
	}
}

func (c *sioClient) signalDisconnect(reason string) {
	select {
	case c.disconnects <- reason:
	default:
	}
}

func (c *sioClient) failAcksLocked() {
	for id, ch := range c.acks {
		close(ch)
		delete(c.acks, id)
	}
}

// Emit sends event with args. It fails when the socket is not connected
// (socket.io-client would buffer).
func (c *sioClient) Emit(event string, args ...any) error { return c.emit(-1, event, args) }

func (c *sioClient) emit(ackID int, event string, args []any) error {
	packets, err := sioEncode('2', ackID, append([]any{event}, args...))
	if err != nil {
		return err
	}
	c.mu.Lock()
	s, connected := c.session, c.connected
	c.mu.Unlock()
	if !connected || s == nil {
		return fmt.Errorf("emit %q: not connected", event)
	}
	return s.sendPackets(packets...)
}

// EmitWithAck sends event with args and waits up to timeout for the
// server's acknowledgement.
func (c *sioClient) EmitWithAck(timeout time.Duration, event string, args ...any) ([]any, error) {
	ch := make(chan []any, 1)
	c.mu.Lock()
	id := c.nextAck
	c.nextAck++
	c.acks[id] = ch
	c.mu.Unlock()
	if err := c.emit(id, event, args); err != nil {
		c.mu.Lock()
		delete(c.acks, id)
		c.mu.Unlock()
		return nil, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case args, ok := <-ch:
		if !ok {
			return nil, errors.New("socket has been disconnected")
		}
		return args, nil
	case <-timer.C:
		c.mu.Lock()
		delete(c.acks, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("no acknowledgement of %q within %v", event, timeout)
	}
}

// On handles the server's event (not "message", which goes to the inbox)
// on the reading goroutine; what fn returns acknowledges it when the server
// asked for an acknowledgement.
func (c *sioClient) On(event string, fn func(args []any) []any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers[event] = fn
}

// onReconnectAttempt makes each reconnection attempt call fn first (the
// Manager's "reconnect_attempt"); the attempt waits for it.
func (c *sioClient) onReconnectAttempt(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.beforeAttempt = fn
}

// Disconnect disconnects as socket.disconnect() does: DISCONNECT, then the
// Engine.IO session is closed ("io client disconnect"). Later calls do
// nothing.
func (c *sioClient) Disconnect() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.stopped)
	s, wasConnected := c.session, c.connected
	c.session, c.connected, c.id = nil, false, ""
	c.failAcksLocked()
	c.mu.Unlock()
	if s != nil {
		if wasConnected {
			_ = s.send("41")
		}
		s.close()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
		}
	}
	if wasConnected {
		c.signalDisconnect("io client disconnect")
	}
}

// dropTransport closes the Engine.IO transport without a close handshake
// (no DISCONNECT, no close frame): the client sees "transport close".
func (c *sioClient) dropTransport() {
	c.mu.Lock()
	s := c.session
	c.mu.Unlock()
	if s != nil {
		s.drop()
	}
}

// Id is the socket's id while it is connected.
func (c *sioClient) Id() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Connected reports whether the socket is connected.
func (c *sioClient) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// Recovered reports whether the last connection recovered the session of
// the one before (the server answered CONNECT with the same pid).
func (c *sioClient) Recovered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recovered
}

// reconnectErrors are the reconnection attempts that failed.
func (c *sioClient) reconnectErrors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.failed...)
}

// transportName is the transport of the live session, or of the last one.
func (c *sioClient) transportName() string {
	c.mu.Lock()
	s, last := c.session, c.lastTransport
	c.mu.Unlock()
	if s != nil {
		return string(s.currentTransport())
	}
	return string(last)
}

// upgrades lists the transports the live session upgraded to.
func (c *sioClient) upgrades() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.upgraded...)
}

// upgradeErr is why the live session's upgrade failed, if it did.
func (c *sioClient) upgradeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.upgradeErrV
}

// waitUpgrade waits until the session moved from polling to WebSocket, on
// the server's side too (see rawChatOptions.onUpgrade): with the tests'
// ping interval of 200ms (sioFastPing), the server's next PING tells.
func (c *sioClient) waitUpgrade(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		if err := c.upgradeErr(); err != nil {
			return err
		}
		if c.transportName() == string(rawChatWS) && len(c.upgrades()) > 0 {
			return nil
		}
		c.mu.Lock()
		live := c.session != nil
		c.mu.Unlock()
		if !live {
			return errors.New("the session ended before its upgrade")
		}
		select {
		case <-c.upgradeNote:
		case <-timer.C:
			return fmt.Errorf("no upgrade to websocket within %v (transport %q)", timeout, c.transportName())
		}
	}
}

// sioPacket is a Socket.IO packet: type, namespace, acknowledgement id
// (-1 for none), JSON data and binary attachments.
type sioPacket struct {
	typ         byte
	attachments int
	nsp         string
	id          int
	data        string
	bins        [][]byte
}

// sioParse parses the text of a Socket.IO packet (the Engine.IO MESSAGE's
// data): <type>[<attachments>-][<nsp>,][<id>][<data>].
func sioParse(s string) (sioPacket, error) {
	p := sioPacket{nsp: "/", id: -1}
	if s == "" || s[0] < '0' || s[0] > '6' {
		return p, fmt.Errorf("packet %.100q: unknown type", s)
	}
	p.typ, s = s[0], s[1:]
	if p.typ == '5' || p.typ == '6' {
		n, rest, ok := strings.Cut(s, "-")
		count, err := strconv.Atoi(n)
		if !ok || err != nil || count < 0 {
			return p, fmt.Errorf("packet %.100q: attachment count", s)
		}
		p.attachments, s = count, rest
	}
	if strings.HasPrefix(s, "/") {
		nsp, rest, ok := strings.Cut(s, ",")
		if !ok {
			nsp, rest = s, ""
		}
		p.nsp, s = nsp, rest
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > 0 {
		id, err := strconv.Atoi(s[:i])
		if err != nil {
			return p, fmt.Errorf("packet %.100q: ack id", s)
		}
		p.id = id
	}
	p.data = s[i:]
	return p, nil
}

// sioDecodeArgs decodes the JSON array of an event or acknowledgement,
// attachments in place of their placeholders.
func sioDecodeArgs(p *sioPacket) ([]any, error) {
	var args []any
	if err := json.Unmarshal([]byte(p.data), &args); err != nil {
		return nil, fmt.Errorf("arguments %.100q: %v", p.data, err)
	}
	if (p.typ == '2' || p.typ == '5') && len(args) == 0 {
		return nil, errors.New("event without a name")
	}
	for i, a := range args {
		v, err := sioReconstruct(a, p.bins)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	return args, nil
}

// sioReconstruct puts the attachments in place of the placeholders
// {"_placeholder":true,"num":n} of v.
func sioReconstruct(v any, bins [][]byte) (any, error) {
	switch v := v.(type) {
	case []any:
		for i, e := range v {
			r, err := sioReconstruct(e, bins)
			if err != nil {
				return nil, err
			}
			v[i] = r
		}
	case map[string]any:
		if v["_placeholder"] == true {
			n, ok := v["num"].(float64)
			if !ok || n < 0 || int(n) >= len(bins) || float64(int(n)) != n {
				return nil, fmt.Errorf("placeholder %v with %d attachments", v, len(bins))
			}
			return bins[int(n)], nil
		}
		for k, e := range v {
			r, err := sioReconstruct(e, bins)
			if err != nil {
				return nil, err
			}
			v[k] = r
		}
	}
	return v, nil
}

// sioEncode encodes an event ('2') or acknowledgement ('3') as Engine.IO
// packets: the Socket.IO packet, then one binary message per []byte in
// data, which the packet holds placeholders of (BINARY_EVENT,
// BINARY_ACK), as socket.io-parser does.
func sioEncode(typ byte, id int, data []any) ([]rawPacket, error) {
	var bins [][]byte
	v := sioDeconstruct(data, &bins)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	head := "4" + string(typ)
	if len(bins) > 0 {
		head = "4" + string(typ+3) + strconv.Itoa(len(bins)) + "-"
	}
	if id >= 0 {
		head += strconv.Itoa(id)
	}
	packets := []rawPacket{{data: head + strings.TrimSuffix(buf.String(), "\n")}}
	for _, b := range bins {
		packets = append(packets, rawPacket{data: string(b), binary: true})
	}
	return packets, nil
}

// sioDeconstruct replaces every []byte of v by a placeholder and appends
// it to bins.
func sioDeconstruct(v any, bins *[][]byte) any {
	switch v := v.(type) {
	case []byte:
		*bins = append(*bins, v)
		return map[string]any{"_placeholder": true, "num": len(*bins) - 1}
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = sioDeconstruct(e, bins)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) { // attachments in the order of the JSON text
			out[k] = sioDeconstruct(v[k], bins)
		}
		return out
	}
	return v
}
