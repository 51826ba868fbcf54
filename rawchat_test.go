package main

// A raw Engine.IO v4 client over WebSocket (gorilla/websocket) or HTTP
// long-polling (net/http), with engine.io-client's upgrade from the one to
// the other. It depends on nothing of the server but its wire protocol.
// Two kinds of tests use it:
//   - the black-box regression tests of the server's core (order_test.go,
//     disconnect_test.go, limiter_test.go, fidelity_test.go), through
//     rawChatDial: a client joined to the main namespace that records every
//     packet as the server wrote it, byte for byte, and how the connection
//     ended;
//   - the Socket.IO client of the top-level tests (sioclient_test.go): one
//     rawChat per Engine.IO session, which hands it every packet.
//
// Goroutines: one goroutine reads at a time (the WebSocket reader, or the
// polling loop and, during an upgrade, the goroutine that switches to the
// WebSocket), answers PINGs and hands every other packet on, in order.
// Writes are serialised by wmu, so polling POSTs never overlap (the server
// closes a session whose POSTs do).

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rawChatTransport is the Engine.IO transport of a rawChat.
type rawChatTransport string

const (
	rawChatWS      rawChatTransport = "websocket"
	rawChatPolling rawChatTransport = "polling"
)

// rawPacket is one Engine.IO packet: its text, type digit first, or the
// bytes of a binary message.
type rawPacket struct {
	data   string
	binary bool
}

// rawChatOptions changes how a rawChat connects.
type rawChatOptions struct {
	// paused makes a rawChatDial client stop reading once connected, until
	// resumeReading: a polling client sends no GET, a WebSocket client
	// reads nothing and has a 4 KiB receive buffer, so the server's writes
	// to it soon block.
	paused bool
	// auth is the JSON payload of rawChatDial's CONNECT packet (40<auth>);
	// empty sends none.
	auth string

	// header is sent with every HTTP request and WebSocket handshake.
	header http.Header
	// upgrade probes a WebSocket once a polling session is open and moves
	// the session to it, as engine.io-client does: 2probe, 3probe, polling
	// paused (its pending GET answered), then 5 over the WebSocket.
	upgrade bool
	// timeout bounds the handshake, the probe and each WebSocket write.
	// Defaults to 10s.
	timeout time.Duration
	// onPacket, when set, receives every packet but PINGs and NOOPs
	// instead of them being recorded: on the reading goroutine, one at a
	// time, in order. Blocking in it stops the reading.
	onPacket func(*rawChat, rawPacket)
	// onUpgrade is told how an upgrade ended: nil once the server has
	// moved the session too, when the first packet comes over the
	// WebSocket (the server writes there only after it read the UPGRADE
	// packet), or why the probe failed (the session stays on polling).
	onUpgrade func(*rawChat, error)
	// onEnd is told once, after the last onPacket, how the session ended:
	// socket.io-client's reason ("transport close", "transport error",
	// "ping timeout", "forced close" for close) and the error behind it.
	onEnd func(c *rawChat, reason string, err error)
}

// rawChat is one Engine.IO session. Its methods are safe for concurrent use.
type rawChat struct {
	tb   testing.TB // rawChatDial's test
	name string     // for failure messages
	// transport is the current transport; an upgrade changes it once,
	// holding wmu and mu.
	transport rawChatTransport
	id        string // the Socket.IO socket id, from the CONNECT answer (rawChatDial)
	opts      rawChatOptions

	sid          string
	pingInterval time.Duration
	pingTimeout  time.Duration
	upgrades     []string

	// WebSocket
	ws  *websocket.Conn
	wmu sync.Mutex // serialises writes: WebSocket frames, polling POSTs

	// polling
	hc     *http.Client
	url    string // ...&sid=...
	ctx    context.Context
	cancel context.CancelFunc // ends the polling requests

	mu         sync.Mutex
	packets    []string // recorded packets (no onPacket): every one after the CONNECT answer, pings excluded
	answer     string   // the CONNECT answer (rawChatDial)
	answered   chan struct{}
	ending     bool // stop was called
	reason     string
	end        error           // how the connection ended, once done is closed
	probe      *websocket.Conn // the upgrade's WebSocket until it carries the session
	pausing    bool            // the polling loop is to stop for an upgrade
	pollPaused chan struct{}   // closed when it has
	pingTimer  *time.Timer     // ends the session when the server's PINGs stop
	notify     chan struct{}
	done       chan struct{} // closed once reading ended for good
	doneOnce   sync.Once
	resume     chan struct{} // closed to let a paused reader go on
}

// rawChatOpen does the Engine.IO handshake with the server at base
// (http://host:port) over transport and starts reading. It does not join a
// namespace.
func rawChatOpen(base string, transport rawChatTransport, name string, opts rawChatOptions) (*rawChat, error) {
	if opts.timeout <= 0 {
		opts.timeout = 10 * time.Second
	}
	c := &rawChat{name: name, transport: transport, opts: opts,
		answered: make(chan struct{}), pollPaused: make(chan struct{}),
		notify: make(chan struct{}, 1), done: make(chan struct{}), resume: make(chan struct{})}
	if !opts.paused {
		close(c.resume)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	var early []rawPacket
	var err error
	switch transport {
	case rawChatWS:
		err = c.openWS(base)
	case rawChatPolling:
		early, err = c.openPolling(base)
	default:
		err = fmt.Errorf("unknown transport %q", transport)
	}
	if err != nil {
		c.cancel()
		if c.ws != nil {
			_ = c.ws.Close()
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if c.pingInterval > 0 {
		c.pingTimer = time.AfterFunc(c.pingInterval+c.pingTimeout, c.pingExpired)
	}
	switch transport {
	case rawChatWS:
		go c.readWS(c.ws, false)
	case rawChatPolling:
		go c.readPolling(early)
		if opts.upgrade && slices.Contains(c.upgrades, "websocket") {
			go c.upgrade(base)
		}
	}
	return c, nil
}

// rawChatWSURL is the WebSocket URL of the Engine.IO endpoint at base.
func rawChatWSURL(base string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
}

// parseOpen reads the handshake's OPEN packet 0{...}.
func (c *rawChat) parseOpen(p string) error {
	var hs struct {
		Sid          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
	}
	if !strings.HasPrefix(p, "0{") || json.Unmarshal([]byte(p[1:]), &hs) != nil || hs.Sid == "" {
		return fmt.Errorf("Engine.IO OPEN %.200q, want 0{\"sid\":...}", p)
	}
	c.sid, c.upgrades = hs.Sid, hs.Upgrades
	c.pingInterval = time.Duration(hs.PingInterval) * time.Millisecond
	c.pingTimeout = time.Duration(hs.PingTimeout) * time.Millisecond
	return nil
}

func (c *rawChat) dialer() *websocket.Dialer {
	d := &websocket.Dialer{HandshakeTimeout: c.opts.timeout}
	if c.opts.paused {
		d.NetDialContext = (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}).DialContext
	}
	return d
}

func (c *rawChat) openWS(base string) error {
	conn, resp, err := c.dialer().DialContext(c.ctx, rawChatWSURL(base), c.opts.header)
	if err != nil {
		return fmt.Errorf("dial: %v (response %v)", err, resp)
	}
	c.ws = conn
	_ = conn.SetReadDeadline(time.Now().Add(c.opts.timeout))
	_, open, err := conn.ReadMessage()
	if err != nil {
		return fmt.Errorf("Engine.IO OPEN: %v", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return c.parseOpen(string(open))
}

func (c *rawChat) openPolling(base string) ([]rawPacket, error) {
	c.hc = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 60 * time.Second}
	u := base + "/socket.io/?EIO=4&transport=polling"
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.timeout)
	defer cancel()
	status, body, err := c.do(ctx, http.MethodGet, u, "")
	if err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("handshake = %d %.200q %v, want 200 0{...}", status, body, err)
	}
	packets, err := rawDecodePayload(body)
	if err != nil {
		return nil, fmt.Errorf("handshake %.200q: %v", body, err)
	}
	if err := c.parseOpen(packets[0].data); err != nil {
		return nil, err
	}
	c.url = u + "&sid=" + url.QueryEscape(c.sid)
	return packets[1:], nil
}

// readWS reads conn until the session ends; upgraded tells onUpgrade
// about the first packet.
func (c *rawChat) readWS(conn *websocket.Conn, upgraded bool) {
	for {
		typ, b, err := conn.ReadMessage()
		if err != nil {
			c.readerExit("transport close", err)
			return
		}
		if c.isEnding() {
			c.readerExit("", nil)
			return
		}
		if upgraded && c.opts.onUpgrade != nil {
			c.opts.onUpgrade(c, nil)
		}
		upgraded = false
		c.handle(rawPacket{data: string(b), binary: typ == websocket.BinaryMessage})
	}
}

// readPolling long-polls until the session ends, or until an upgrade
// pauses it.
func (c *rawChat) readPolling(early []rawPacket) {
	packets := early
	for {
		for _, p := range packets {
			if c.isEnding() {
				c.readerExit("", nil)
				return
			}
			if p == (rawPacket{data: "1"}) { // Engine.IO CLOSE
				c.deliver(p)
				c.readerExit("transport close", errors.New("Engine.IO CLOSE packet"))
				return
			}
			c.handle(p)
		}
		c.mu.Lock()
		ending, pausing := c.ending, c.pausing
		c.mu.Unlock()
		switch {
		case ending:
			c.readerExit("", nil)
			return
		case pausing:
			close(c.pollPaused) // the upgrade reads from now on
			return
		}
		status, body, err := c.do(c.ctx, http.MethodGet, c.url, "")
		switch {
		case c.ctx.Err() != nil:
			c.readerExit("transport close", c.ctx.Err())
			return
		case err != nil:
			c.readerExit("transport error", err)
			return
		case status != http.StatusOK:
			c.readerExit("transport error", fmt.Errorf("GET answered %d %q", status, body))
			return
		}
		if packets, err = rawDecodePayload(body); err != nil {
			c.readerExit("transport error", fmt.Errorf("GET answered %.200q: %v", body, err))
			return
		}
	}
}

// handle answers a PING, drops a NOOP and hands any other packet on. Over
// polling the PONG goes out beside the next GET, as engine.io-client sends
// it (its POST does not hold up the poll).
func (c *rawChat) handle(p rawPacket) {
	if !p.binary {
		switch p.data {
		case "2":
			if c.pingTimer != nil {
				c.pingTimer.Reset(c.pingInterval + c.pingTimeout)
			}
			if c.currentTransport() == rawChatPolling {
				go func() { _ = c.send("3") }()
			} else {
				_ = c.send("3")
			}
			return
		case "6":
			return
		}
	}
	c.deliver(p)
}

// deliver hands p to onPacket, or records it. A paused client stops
// reading after the CONNECT answer.
func (c *rawChat) deliver(p rawPacket) {
	if c.opts.onPacket != nil {
		c.opts.onPacket(c, p)
		return
	}
	c.mu.Lock()
	if c.answer == "" && !p.binary && (strings.HasPrefix(p.data, "40") || strings.HasPrefix(p.data, "44")) {
		c.answer = p.data
		c.mu.Unlock()
		close(c.answered)
		<-c.resume
		return
	}
	c.packets = append(c.packets, p.data)
	c.mu.Unlock()
	c.signal()
}

// upgrade moves a polling session to a WebSocket as engine.io-client
// does (socket.ts, _probe): the probe, polling paused once its pending GET
// returned (the server answers it with a NOOP), then the UPGRADE packet
// over the WebSocket, which carries the session from then on.
func (c *rawChat) upgrade(base string) {
	err := c.probeAndSwitch(base)
	if err != nil && !errors.Is(err, errRawChatEnded) && c.opts.onUpgrade != nil {
		c.opts.onUpgrade(c, err)
	}
}

var errRawChatEnded = errors.New("the session ended")

func (c *rawChat) probeAndSwitch(base string) error {
	conn, resp, err := c.dialer().DialContext(c.ctx, rawChatWSURL(base)+"&sid="+url.QueryEscape(c.sid), c.opts.header)
	if err != nil {
		if c.isEnding() {
			return errRawChatEnded
		}
		return fmt.Errorf("probe: dial: %v (response %v)", err, resp)
	}
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		_ = conn.Close()
		return errRawChatEnded
	}
	c.probe = conn
	c.mu.Unlock()
	fail := func(err error) error {
		c.mu.Lock()
		c.probe = nil
		ending := c.ending
		c.mu.Unlock()
		_ = conn.Close()
		if ending {
			return errRawChatEnded
		}
		return err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(c.opts.timeout))
	if err := conn.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		return fail(fmt.Errorf("probe: write 2probe: %v", err))
	}
	_ = conn.SetReadDeadline(time.Now().Add(c.opts.timeout))
	if _, b, err := conn.ReadMessage(); err != nil || string(b) != "3probe" {
		return fail(fmt.Errorf("probe: answer %q %v, want 3probe", b, err))
	}
	_ = conn.SetReadDeadline(time.Time{})

	c.mu.Lock()
	c.pausing = true
	c.mu.Unlock()
	select {
	case <-c.pollPaused: // this goroutine reads the session now
	case <-c.done:
		return fail(errRawChatEnded)
	}
	c.wmu.Lock()
	err = conn.WriteMessage(websocket.TextMessage, []byte("5"))
	if err == nil {
		c.mu.Lock()
		c.ws, c.probe, c.transport = conn, nil, rawChatWS
		c.mu.Unlock()
	}
	c.wmu.Unlock()
	if err != nil {
		c.readerExit("transport error", fmt.Errorf("upgrade: write 5: %v", err))
		return fail(errRawChatEnded)
	}
	go c.readWS(conn, true)
	return nil
}

// do sends one request and returns its status and body.
func (c *rawChat) do(ctx context.Context, method, u, body string) (int, string, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, "", err
	}
	for k, v := range c.opts.header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// rawEncodePayload joins packets as an Engine.IO v4 polling payload:
// separated by \x1e, binary ones as b<base64>.
func rawEncodePayload(packets []rawPacket) string {
	parts := make([]string, len(packets))
	for i, p := range packets {
		parts[i] = p.data
		if p.binary {
			parts[i] = "b" + base64.StdEncoding.EncodeToString([]byte(p.data))
		}
	}
	return strings.Join(parts, "\x1e")
}

// rawDecodePayload splits an Engine.IO v4 polling payload.
func rawDecodePayload(body string) ([]rawPacket, error) {
	var out []rawPacket
	for _, p := range strings.Split(body, "\x1e") {
		if b, ok := strings.CutPrefix(p, "b"); ok {
			raw, err := base64.StdEncoding.DecodeString(b)
			if err != nil {
				return nil, fmt.Errorf("binary packet: %v", err)
			}
			out = append(out, rawPacket{data: string(raw), binary: true})
			continue
		}
		if p == "" {
			return nil, errors.New("empty packet")
		}
		out = append(out, rawPacket{data: p})
	}
	return out, nil
}

// rawChatDial connects a raw client over transport and waits for the
// CONNECT answer of the main namespace. It is closed when the test ends.
func rawChatDial(tb testing.TB, ts *testServer, transport rawChatTransport, name string, opts rawChatOptions) *rawChat {
	tb.Helper()
	opts.onPacket, opts.onUpgrade, opts.onEnd, opts.upgrade = nil, nil, nil, false
	c, err := rawChatOpen(ts.URL, transport, name, opts)
	if err != nil {
		tb.Fatal(err)
	}
	c.tb = tb
	tb.Cleanup(func() {
		c.drop()
		c.resumeReading()
		<-c.done
	})
	if err := c.send("40" + opts.auth); err != nil {
		tb.Fatalf("%s: send CONNECT: %v", c.name, err)
	}
	select {
	case <-c.answered:
	case <-c.done:
		err, _ := c.ended()
		tb.Fatalf("%s: the connection ended (%v) before the CONNECT answer", c.name, err)
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s: no CONNECT answer within 10s", c.name)
	}
	c.mu.Lock()
	answer := c.answer
	c.mu.Unlock()
	c.id = rawChatConnectID(tb, c.name, answer)
	c.name = fmt.Sprintf("%s (%s %s)", name, transport, c.id)
	return c
}

// rawChatConnectID reads the socket id of a CONNECT answer 40{"sid":...}.
func rawChatConnectID(tb testing.TB, name, packet string) string {
	tb.Helper()
	var sid struct{ Sid string }
	if !strings.HasPrefix(packet, "40{") || json.Unmarshal([]byte(packet[2:]), &sid) != nil || sid.Sid == "" {
		tb.Fatalf("%s: CONNECT answer %q, want 40{\"sid\":...}", name, packet)
	}
	return sid.Sid
}

// send writes text packets: one WebSocket frame each, or one POST
// carrying all of them as a payload.
func (c *rawChat) send(packets ...string) error {
	ps := make([]rawPacket, len(packets))
	for i, p := range packets {
		ps[i] = rawPacket{data: p}
	}
	return c.sendPackets(ps...)
}

// sendPackets writes packets, text or binary, on the current transport.
func (c *rawChat) sendPackets(packets ...rawPacket) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	transport, ws := c.transport, c.ws
	c.mu.Unlock()
	if transport == rawChatWS {
		_ = ws.SetWriteDeadline(time.Now().Add(c.opts.timeout))
		for _, p := range packets {
			typ := websocket.TextMessage
			if p.binary {
				typ = websocket.BinaryMessage
			}
			if err := ws.WriteMessage(typ, []byte(p.data)); err != nil {
				return err
			}
		}
		return nil
	}
	status, body, err := c.do(c.ctx, http.MethodPost, c.url, rawEncodePayload(packets))
	if err != nil {
		return err
	}
	if status != http.StatusOK || body != "ok" {
		return fmt.Errorf("POST answered %d %q", status, body)
	}
	return nil
}

// emit sends user-message events whose argument is the JSON text of each
// element of jsonArgs, in one send.
func (c *rawChat) emit(jsonArgs ...string) error {
	packets := make([]string, len(jsonArgs))
	for i, a := range jsonArgs {
		packets[i] = `42["user-message",` + a + `]`
	}
	return c.send(packets...)
}

// close ends the session as engine.io-client's close() does: a close
// frame on a WebSocket, a CLOSE packet over polling.
func (c *rawChat) close() {
	c.wmu.Lock()
	c.mu.Lock()
	transport, ws, ending := c.transport, c.ws, c.ending
	c.mu.Unlock()
	if !ending {
		if transport == rawChatWS {
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
				time.Now().Add(c.opts.timeout))
		} else {
			ctx, cancel := context.WithTimeout(c.ctx, c.opts.timeout)
			_, _, _ = c.do(ctx, http.MethodPost, c.url, "1")
			cancel()
		}
	}
	c.wmu.Unlock()
	c.stop("forced close", nil)
}

// drop ends the session without a close handshake: the WebSocket's TCP
// connection is closed, the polling requests are cancelled.
func (c *rawChat) drop() { c.stop("transport close", errors.New("transport dropped by the client")) }

func (c *rawChat) pingExpired() {
	c.stop("ping timeout", fmt.Errorf("no PING within %v", c.pingInterval+c.pingTimeout))
}

// stop ends the session, for the reason given first.
func (c *rawChat) stop(reason string, err error) {
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		return
	}
	c.ending, c.reason, c.end = true, reason, err
	ws, probe := c.ws, c.probe
	c.mu.Unlock()
	c.cancel()
	if ws != nil {
		_ = ws.Close()
	}
	if probe != nil {
		_ = probe.Close()
	}
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	c.signal()
}

func (c *rawChat) isEnding() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ending
}

// readerExit is called by the goroutine that reads when reading ended for
// good: it ends the session (if that is news, for reason), tells onEnd and
// closes done.
func (c *rawChat) readerExit(reason string, err error) {
	c.stop(reason, err)
	c.doneOnce.Do(func() {
		c.mu.Lock()
		reason, err := c.reason, c.end
		c.mu.Unlock()
		if c.hc != nil {
			c.hc.CloseIdleConnections()
		}
		if c.opts.onEnd != nil {
			c.opts.onEnd(c, reason, err)
		}
		close(c.done)
		c.signal()
	})
}

// currentTransport is the session's transport now.
func (c *rawChat) currentTransport() rawChatTransport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transport
}

// resumeReading lets a paused client read again.
func (c *rawChat) resumeReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.resume:
	default:
		close(c.resume)
	}
}

func (c *rawChat) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// received returns every packet recorded so far, in arrival order.
func (c *rawChat) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.packets...)
}

// messages returns the JSON text of the argument of every "message" event
// received so far, as the server wrote it.
func (c *rawChat) messages() []string {
	var out []string
	for _, p := range c.received() {
		if arg, ok := strings.CutPrefix(p, `42["message",`); ok && strings.HasSuffix(arg, "]") {
			out = append(out, arg[:len(arg)-1])
		}
	}
	return out
}

// ended reports how the connection ended, and whether it did.
func (c *rawChat) ended() (error, bool) {
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.end, true
	default:
		return nil, false
	}
}

// waitMessages waits until at least n messages arrived, failing when none
// arrived for idle or after overall, and returns them.
func (c *rawChat) waitMessages(tb testing.TB, n int, idle, overall time.Duration) []string {
	tb.Helper()
	deadline := time.NewTimer(overall)
	defer deadline.Stop()
	quiet := time.NewTimer(idle)
	defer quiet.Stop()
	last := -1
	for {
		msgs := c.messages()
		if len(msgs) >= n {
			return msgs
		}
		if len(msgs) != last {
			last = len(msgs)
			quiet.Reset(idle)
		}
		if err, ok := c.ended(); ok {
			tb.Fatalf("%s: connection ended (%v) after %d of %d messages", c.name, err, len(msgs), n)
		}
		select {
		case <-c.notify:
		case <-c.done:
		case <-quiet.C:
			tb.Fatalf("%s: no message for %v: got %d, want %d", c.name, idle, len(msgs), n)
		case <-deadline.C:
			tb.Fatalf("%s: timed out after %v: got %d messages, want %d", c.name, overall, len(msgs), n)
		}
	}
}

// waitEnd waits up to timeout for the connection to end and returns why.
func (c *rawChat) waitEnd(tb testing.TB, timeout time.Duration) error {
	tb.Helper()
	select {
	case <-c.done:
		err, _ := c.ended()
		return err
	case <-time.After(timeout):
		tb.Fatalf("%s: connection still open after %v; received %d packets, last %.200q", c.name, timeout, len(c.received()), rawChatLast(c.received()))
		return nil
	}
}

// rawChatLast is the last element of packets, or "" when there is none.
func rawChatLast(packets []string) string {
	if len(packets) == 0 {
		return ""
	}
	return packets[len(packets)-1]
}
