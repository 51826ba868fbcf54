package engineio

// Test helpers of package engineio: a SessionHandler that records what it
// is told, a server over httptest, and raw Engine.IO clients (polling over
// net/http, WebSocket over gorilla/websocket, and WebSocket over a bare TCP
// connection for frames gorilla will not write).

import (
	"bufio"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/gorilla/websocket"
)

// waitTimeout bounds every wait of the tests: long enough for a loaded
// machine, short enough to fail rather than hang.
const waitTimeout = 10 * time.Second

// ioModes are the WebSocket I/O engines every transport test runs over.
var ioModes = []struct {
	name string
	mode IOMode
}{
	{"goroutine", IOModeGoroutine},
	{"epoll", IOModeEpoll},
}

// testLogger routes a server's logs to t.Logf until the test ends (a
// session may still log from a timer afterwards).
func testLogger(tb testing.TB) *slog.Logger { return testlog.New(tb, slog.LevelInfo) }

// recorded is one message a recorder received.
type recorded struct {
	data   string
	binary bool
}

// closeEvent is how a recorder's session ended.
type closeEvent struct {
	reason string
	err    error
}

// recorder is a SessionHandler that records its events in channels, and
// echoes messages back when echo is set. It fails loudly (panics) when
// the engine breaks its contract: calls that overlap, a second OnClose, or
// a call after OnClose.
type recorder struct {
	sess     *Session
	echo     bool
	msgs     chan recorded
	overflow chan struct{}
	upgraded chan struct{}
	done     chan struct{} // closed by OnClose

	mu     sync.Mutex
	inCall bool
	closed bool
	ev     closeEvent
}

func newRecorder(s *Session, echo bool) *recorder {
	return &recorder{
		sess:     s,
		echo:     echo,
		msgs:     make(chan recorded, 1<<14),
		overflow: make(chan struct{}, 1),
		upgraded: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

func (r *recorder) enter(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.inCall:
		panic("engineio: handler methods called concurrently (" + what + ")")
	case r.closed:
		panic("engineio: " + what + " after OnClose")
	}
	r.inCall = true
}

func (r *recorder) leave() {
	r.mu.Lock()
	r.inCall = false
	r.mu.Unlock()
}

func (r *recorder) OnMessage(data []byte, binary bool) {
	r.enter("OnMessage")
	defer r.leave()
	// The echo first: once a test has seen a message, its echo is queued.
	if r.echo && binary {
		_ = r.sess.Send(BinaryMessage(data))
	} else if r.echo {
		_ = r.sess.Send(TextMessage(append([]byte{typeMessage}, data...)))
	}
	r.msgs <- recorded{string(data), binary}
}

func (r *recorder) OnQueueOverflow() {
	r.enter("OnQueueOverflow")
	defer r.leave()
	select {
	case r.overflow <- struct{}{}:
	default:
	}
	r.sess.Close("overflow")
}

func (r *recorder) OnUpgrade() {
	r.enter("OnUpgrade")
	defer r.leave()
	select {
	case r.upgraded <- struct{}{}:
	default:
	}
}

func (r *recorder) OnClose(reason string, err error) {
	r.enter("OnClose")
	defer r.leave()
	r.mu.Lock()
	r.closed, r.ev = true, closeEvent{reason, err}
	r.mu.Unlock()
	close(r.done)
}

// message waits for the next message the session received.
func (r *recorder) message(tb testing.TB) recorded {
	tb.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(waitTimeout):
		tb.Fatalf("no message within %v", waitTimeout)
		return recorded{}
	}
}

// waitClose waits for OnClose and returns its reason.
func (r *recorder) waitClose(tb testing.TB) closeEvent {
	tb.Helper()
	select {
	case <-r.done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.ev
	case <-time.After(waitTimeout):
		tb.Fatalf("session %s not closed within %v", r.sess.ID(), waitTimeout)
		return closeEvent{}
	}
}

// isClosed reports whether OnClose ran.
func (r *recorder) isClosed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// testServer is an engineio.Server over httptest whose sessions are
// recorders; sessions receives each recorder as its session opens.
type testServer struct {
	*Server
	sessionFeed
	ts *httptest.Server
}

// sessionFeed is the sessions a test server opens, in order.
type sessionFeed struct{ opened chan *recorder }

func newSessionFeed() sessionFeed { return sessionFeed{make(chan *recorder, 1024)} }

// startServer starts a server with opts (its logs go to the test's log)
// over httptest; its sessions echo what they receive when echo is set.
func startServer(tb testing.TB, opts Options, echo bool) *testServer {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(tb)
	}
	if opts.CloseTimeout == 0 {
		// Short, so that sessions closed at the end of a test (by
		// Server.Close, gracefully) are gone soon.
		opts.CloseTimeout = 300 * time.Millisecond
	}
	s := &testServer{sessionFeed: newSessionFeed()}
	s.Server = NewServer(opts, func(sess *Session) SessionHandler {
		r := newRecorder(sess, echo)
		s.opened <- r
		return r
	})
	s.ts = httptest.NewServer(s.Server)
	tb.Cleanup(func() {
		s.Server.Close()
		s.ts.Close()
		deadline := time.Now().Add(waitTimeout)
		for s.Server.Len() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	})
	return s
}

// session waits for the next session the server opens.
func (s *sessionFeed) session(tb testing.TB) *recorder {
	tb.Helper()
	select {
	case r := <-s.opened:
		return r
	case <-time.After(waitTimeout):
		tb.Fatalf("no session opened within %v", waitTimeout)
		return nil
	}
}

// url is the server's Engine.IO URL with query.
func (s *testServer) url(query string) string { return s.ts.URL + "/?" + query }

func (s *testServer) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(s.ts.URL, "http") + "/?" + query
}

// handshakeJSON is the OPEN packet's payload.
type handshakeJSON struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int64    `json:"pingInterval"`
	PingTimeout  int64    `json:"pingTimeout"`
	MaxPayload   int64    `json:"maxPayload"`
}

func parseOpen(tb testing.TB, packet string) handshakeJSON {
	tb.Helper()
	if !strings.HasPrefix(packet, "0{") {
		tb.Fatalf("OPEN packet = %q, want 0{…}", packet)
	}
	var h handshakeJSON
	dec := json.NewDecoder(strings.NewReader(packet[1:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		tb.Fatalf("OPEN packet %q: %v", packet, err)
	}
	return h
}

// response is what an HTTP request got.
type response struct {
	status int
	header http.Header
	body   string
}

func do(tb testing.TB, hc *http.Client, method, url, body string, header http.Header) response {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// errorBody is the Engine.IO JSON error body.
type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func parseError(tb testing.TB, r response) errorBody {
	tb.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		tb.Fatalf("error body %q: %v", r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("error Content-Type = %q, want application/json", ct)
	}
	return e
}

// pollClient is a raw long-polling client of one session.
type pollClient struct {
	tb  testing.TB
	srv *testServer
	hc  *http.Client
	eio int
	sid string
	hs  handshakeJSON
}

// pollOpen handshakes over polling (EIO=eio) and returns the client and
// the session's recorder.
func pollOpen(tb testing.TB, s *testServer, eio int) (*pollClient, *recorder) {
	tb.Helper()
	c := &pollClient{tb: tb, srv: s, eio: eio,
		hc: &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: waitTimeout}}
	tb.Cleanup(c.hc.CloseIdleConnections)
	r := do(tb, c.hc, http.MethodGet, s.url(fmt.Sprintf("EIO=%d&transport=polling", eio)), "", nil)
	if r.status != http.StatusOK {
		tb.Fatalf("handshake: %d %s", r.status, r.body)
	}
	open := r.body
	if eio == 3 {
		packets, err := decodePayloadV3Text([]byte(r.body))
		if err != nil || len(packets) != 1 {
			tb.Fatalf("v3 handshake payload %q: %v", r.body, err)
		}
		open = string(packets[0].typ) + string(packets[0].data)
	}
	c.hs = parseOpen(tb, open)
	c.sid = c.hs.SID
	return c, s.session(tb)
}

func (c *pollClient) url() string {
	return c.srv.url(fmt.Sprintf("EIO=%d&transport=polling&sid=%s", c.eio, c.sid))
}

// get polls once; for v4 it returns the packets of the payload.
func (c *pollClient) get() (response, []string) {
	c.tb.Helper()
	r := do(c.tb, c.hc, http.MethodGet, c.url(), "", nil)
	if r.status != http.StatusOK || c.eio != 4 {
		return r, nil
	}
	return r, strings.Split(r.body, "\x1e")
}

// post sends a payload and expects "ok".
func (c *pollClient) post(body string) response {
	c.tb.Helper()
	return do(c.tb, c.hc, http.MethodPost, c.url(), body, http.Header{"Content-Type": {"text/plain;charset=UTF-8"}})
}

// wsClient is an Engine.IO client over gorilla/websocket.
type wsClient struct {
	tb   testing.TB
	conn *websocket.Conn
}

func wsDial(tb testing.TB, url string) (*wsClient, *http.Response, error) {
	tb.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	conn, resp, err := d.Dial(url, nil)
	if err != nil {
		return nil, resp, err
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return &wsClient{tb: tb, conn: conn}, resp, nil
}

// wsOpen opens a session over WebSocket and reads its OPEN packet.
func wsOpen(tb testing.TB, s *testServer, eio int) (*wsClient, handshakeJSON, *recorder) {
	tb.Helper()
	c, _, err := wsDial(tb, s.wsURL(fmt.Sprintf("EIO=%d&transport=websocket", eio)))
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	_, open := c.read()
	return c, parseOpen(tb, open), s.session(tb)
}

// read reads one message, within waitTimeout.
func (c *wsClient) read() (int, string) {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	typ, b, err := c.conn.ReadMessage()
	if err != nil {
		c.tb.Fatalf("websocket read: %v", err)
	}
	return typ, string(b)
}

// readText reads one text message.
func (c *wsClient) readText() string {
	c.tb.Helper()
	typ, s := c.read()
	if typ != websocket.TextMessage {
		c.tb.Fatalf("got a binary message %q, want text", s)
	}
	return s
}

// readClose reads until the server's close frame and returns its code.
func (c *wsClient) readClose() (code int, before []string) {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, b, err := c.conn.ReadMessage()
		if err == nil {
			before = append(before, string(b))
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, before
		}
		c.tb.Fatalf("websocket read: %v, want a close frame (read %q before)", err, before)
		return 0, before
	}
}

func (c *wsClient) write(msg string) {
	c.tb.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.tb.Fatalf("websocket write %q: %v", msg, err)
	}
}

func (c *wsClient) writeBinary(b []byte) {
	c.tb.Helper()
	if err := c.conn.WriteMessage(websocket.BinaryMessage, b); err != nil {
		c.tb.Fatalf("websocket write: %v", err)
	}
}

// rawWS is a WebSocket client over a bare TCP connection: it writes frames
// byte for byte as the test builds them, and reads the server's frames.
type rawWS struct {
	tb   testing.TB
	conn net.Conn
	br   *bufio.Reader
}

// rawWSDial opens a WebSocket to the server's URL with query, without
// reading anything after the 101 answer.
func rawWSDial(tb testing.TB, s *testServer, query string) *rawWS {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", s.ts.Listener.Addr().String(), waitTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	req := "GET /?" + query + " HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + k + "\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write([]byte(req)); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(k) {
		tb.Fatalf("websocket handshake: %s %v", resp.Status, resp.Header)
	}
	return &rawWS{tb: tb, conn: conn, br: br}
}

// writeRaw writes b as is.
func (c *rawWS) writeRaw(b []byte) {
	c.tb.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.conn.Write(b); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// frame is one WebSocket frame.
type frame struct {
	fin     bool
	rsv1    bool // compressed (permessage-deflate)
	op      byte
	payload []byte
}

// readFrame reads one server frame (servers do not mask).
func (c *rawWS) readFrame() (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	return readServerFrame(c.br)
}

func readServerFrame(r io.Reader) (frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	if h[1]&0x80 != 0 {
		return frame{}, errors.New("masked server frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return frame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return frame{}, err
	}
	return frame{fin: h[0]&0x80 != 0, rsv1: h[0]&0x40 != 0, op: h[0] & 0x0f, payload: p}, nil
}

// clientFrame encodes a client frame: masked with key unless key is nil.
func clientFrame(fin bool, op byte, payload, key []byte) []byte {
	b := []byte{op}
	if fin {
		b[0] |= 0x80
	}
	var mask byte
	if key != nil {
		mask = 0x80
	}
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, mask|byte(n))
	case n <= 0xFFFF:
		b = append(b, mask|126, byte(n>>8), byte(n))
	default:
		b = append(b, mask|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if key == nil {
		return append(b, payload...)
	}
	b = append(b, key...)
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= key[i%4]
	}
	return b
}

// testKey is the masking key of the tests' frames (not zero, so that
// masking shows).
var testKey = []byte{0x37, 0xfa, 0x21, 0x3d}

// masked is a masked, final client frame.
func masked(op byte, payload string) []byte { return clientFrame(true, op, []byte(payload), testKey) }

// closeCode is the status code of a close frame's payload.
func closeCode(p []byte) int {
	if len(p) < 2 {
		return closeNoStatus
	}
	return int(binary.BigEndian.Uint16(p))
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, waitTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// idle reports whether no handler call runs or waits to run.
func (e *executor) idle() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.running
}

// gunzip decompresses a gzip body.
func gunzip(tb testing.TB, body string) string {
	tb.Helper()
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
