package socketio

// Test helpers of package socketio: a server over httptest, and a raw
// Socket.IO v5 client (over gorilla/websocket, or HTTP long-polling) that
// records every packet as the server wrote it. The client answers the
// server's PINGs itself; everything else is the test's to read.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/gorilla/websocket"
)

// waitTimeout bounds every wait of the tests.
const waitTimeout = 10 * time.Second

// quiet is how long a test waits to be sure that nothing more arrives.
const quiet = 100 * time.Millisecond

// testLogger routes a server's logs to the test's log until it ends.
func testLogger(tb testing.TB) *slog.Logger { return testlog.New(tb, slog.LevelInfo) }

// testIO is a Server over httptest.
type testIO struct {
	*Server
	ts *httptest.Server
}

// startIO starts a server with opts over httptest. setup runs before the
// server takes requests (to register handlers).
func startIO(tb testing.TB, opts Options, setup func(io *Server)) *testIO {
	tb.Helper()
	if opts.Logger == nil && opts.Engine.Logger == nil {
		opts.Logger = testLogger(tb)
	}
	if opts.Engine.CloseTimeout == 0 {
		opts.Engine.CloseTimeout = 300 * time.Millisecond
	}
	io, err := NewServer(opts)
	if err != nil {
		tb.Fatal(err)
	}
	if setup != nil {
		setup(io)
	}
	s := &testIO{Server: io, ts: httptest.NewServer(io)}
	tb.Cleanup(func() {
		io.Close()
		s.ts.Close()
		deadline := time.Now().Add(waitTimeout)
		for io.Engine().Len() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	})
	return s
}

// transport is how a test client connects.
type transport string

const (
	wsTransport      transport = "websocket"
	pollingTransport transport = "polling"
)

// msg is one Engine.IO message a client received: a Socket.IO packet
// (text, without the Engine.IO type '4'), or an attachment.
type msg struct {
	text   string
	bin    []byte
	binary bool
}

func (m msg) String() string {
	if m.binary {
		return fmt.Sprintf("bin(%x)", m.bin)
	}
	return m.text
}

// rawClient is a raw Socket.IO client of one Engine.IO session.
type rawClient struct {
	tb        testing.TB
	srv       *testIO
	transport transport
	sid       string // the Engine.IO session id

	ws  *websocket.Conn
	wmu sync.Mutex

	hc     *http.Client
	cancel context.CancelFunc

	in       chan msg
	done     chan struct{} // closed when the transport ended
	closeErr error         // how it ended, once done is closed
	noPong   bool          // do not answer PINGs
}

// dial opens an Engine.IO session (no namespace joined yet).
func dial(tb testing.TB, s *testIO, tr transport) *rawClient {
	tb.Helper()
	c, err := tryDial(tb, s, tr)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// tryDial is dial for any goroutine: it reports failure instead of ending
// the test. The client is closed when the test ends.
func tryDial(tb testing.TB, s *testIO, tr transport) (*rawClient, error) {
	c := &rawClient{tb: tb, srv: s, transport: tr, in: make(chan msg, 1<<16), done: make(chan struct{})}
	var open string
	switch tr {
	case wsTransport:
		d := websocket.Dialer{HandshakeTimeout: waitTimeout}
		conn, _, err := d.Dial("ws"+strings.TrimPrefix(s.ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
		if err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		c.ws = conn
		_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
		_, b, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("OPEN: %w", err)
		}
		_ = conn.SetReadDeadline(time.Time{})
		open = string(b)
		tb.Cleanup(func() {
			_ = conn.Close()
			<-c.done
		})
	case pollingTransport:
		c.hc = &http.Client{Transport: &http.Transport{}, Timeout: 2 * waitTimeout}
		r, err := c.hc.Get(s.ts.URL + "/socket.io/?EIO=4&transport=polling")
		if err != nil {
			return nil, fmt.Errorf("handshake: %w", err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		open = string(b)
		ctx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		tb.Cleanup(func() {
			cancel()
			<-c.done
			c.hc.CloseIdleConnections()
		})
		defer func() { go c.pollLoop(ctx) }()
	default:
		return nil, fmt.Errorf("unknown transport %q", tr)
	}
	var hs struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &hs) != nil || hs.SID == "" {
		return nil, fmt.Errorf("OPEN packet %q", open)
	}
	c.sid = hs.SID
	if tr == wsTransport {
		go c.wsLoop()
	}
	return c, nil
}

// connected dials and joins nsp (with auth, a JSON object or ""); it
// returns the client and the socket id.
func connected(tb testing.TB, s *testIO, tr transport, nsp, auth string) (*rawClient, string) {
	tb.Helper()
	c := dial(tb, s, tr)
	return c, c.connect(nsp, auth).SID
}

// connectAnswer is the payload of a CONNECT answer.
type connectAnswer struct {
	SID string `json:"sid"`
	PID string `json:"pid"`
}

// connect joins nsp and waits for the CONNECT answer.
func (c *rawClient) connect(nsp, auth string) connectAnswer {
	c.tb.Helper()
	a, err := c.tryConnect(nsp, auth)
	if err != nil {
		c.tb.Fatal(err)
	}
	return a
}

func (c *rawClient) tryConnect(nsp, auth string) (connectAnswer, error) {
	if err := c.writeEngine("4" + connectPacket(nsp, auth)); err != nil {
		return connectAnswer{}, err
	}
	m, err := c.tryNext()
	if err != nil {
		return connectAnswer{}, err
	}
	want := "0" + nspPrefix(nsp)
	if !strings.HasPrefix(m.text, want+"{") {
		return connectAnswer{}, fmt.Errorf("CONNECT %s answered %q", nsp, m)
	}
	var a connectAnswer
	if err := json.Unmarshal([]byte(m.text[len(want):]), &a); err != nil || a.SID == "" {
		return connectAnswer{}, fmt.Errorf("CONNECT answer %q: %v", m, err)
	}
	return a, nil
}

func connectPacket(nsp, auth string) string { return "0" + nspPrefix(nsp) + auth }

// nspPrefix is how a packet names nsp: nothing for "/", "/nsp," otherwise.
func nspPrefix(nsp string) string {
	if nsp == "/" || nsp == "" {
		return ""
	}
	return nsp + ","
}

func (c *rawClient) wsLoop() {
	defer close(c.done)
	for {
		typ, b, err := c.ws.ReadMessage()
		if err != nil {
			c.closeErr = err
			return
		}
		if typ == websocket.BinaryMessage {
			c.in <- msg{bin: b, binary: true}
			continue
		}
		c.onText(string(b))
	}
}

func (c *rawClient) pollLoop(ctx context.Context) {
	defer close(c.done)
	url := c.url()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		r, err := c.hc.Do(req)
		if err != nil {
			c.closeErr = err
			return
		}
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil || r.StatusCode != 200 {
			c.closeErr = fmt.Errorf("poll: %d %q %v", r.StatusCode, b, err)
			return
		}
		for p := range strings.SplitSeq(string(b), "\x1e") {
			if p == "1" {
				c.closeErr = errors.New("CLOSE")
				return
			}
			if strings.HasPrefix(p, "b") {
				bin, _ := base64.StdEncoding.DecodeString(p[1:])
				c.in <- msg{bin: bin, binary: true}
				continue
			}
			c.onText(p)
		}
	}
}

func (c *rawClient) url() string {
	return c.srv.ts.URL + "/socket.io/?EIO=4&transport=polling&sid=" + c.sid
}

// onText handles an Engine.IO text packet.
func (c *rawClient) onText(p string) {
	switch {
	case p == "2":
		if !c.noPong {
			_ = c.writeEngine("3")
		}
	case strings.HasPrefix(p, "4"):
		c.in <- msg{text: p[1:]}
	case p == "6":
	default:
		c.in <- msg{text: "engine:" + p}
	}
}

// writeEngine writes an Engine.IO packet.
func (c *rawClient) writeEngine(p string) error {
	if c.ws != nil {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.ws.WriteMessage(websocket.TextMessage, []byte(p))
	}
	r, err := c.hc.Post(c.url(), "text/plain;charset=UTF-8", strings.NewReader(p))
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if string(b) != "ok" {
		return fmt.Errorf("POST %q: %d %q", p, r.StatusCode, b)
	}
	return nil
}

// send sends a Socket.IO packet.
func (c *rawClient) send(packet string) {
	c.tb.Helper()
	if err := c.writeEngine("4" + packet); err != nil {
		c.tb.Fatalf("send %q: %v", packet, err)
	}
}

// sendBinary sends an attachment.
func (c *rawClient) sendBinary(b []byte) {
	c.tb.Helper()
	var err error
	if c.ws != nil {
		c.wmu.Lock()
		err = c.ws.WriteMessage(websocket.BinaryMessage, b)
		c.wmu.Unlock()
	} else {
		err = c.writeEngine("b" + base64.StdEncoding.EncodeToString(b))
	}
	if err != nil {
		c.tb.Fatalf("send binary: %v", err)
	}
}

// next waits for the next message.
func (c *rawClient) next() msg {
	c.tb.Helper()
	m, err := c.tryNext()
	if err != nil {
		c.tb.Fatal(err)
	}
	return m
}

func (c *rawClient) tryNext() (msg, error) {
	select {
	case m := <-c.in:
		return m, nil
	case <-time.After(waitTimeout):
		return msg{}, fmt.Errorf("client %s: nothing received within %v", c.sid, waitTimeout)
	}
}

// nextText waits for the next message, which must be a text packet.
func (c *rawClient) nextText() string {
	c.tb.Helper()
	m := c.next()
	if m.binary {
		c.tb.Fatalf("got an attachment %s, want a packet", m)
	}
	return m.text
}

// expect waits for the next packets and compares them with want.
func (c *rawClient) expect(want ...string) {
	c.tb.Helper()
	for i, w := range want {
		if got := c.next().String(); got != w {
			c.tb.Fatalf("client %s: packet %d = %q, want %q", c.sid, i, got, w)
		}
	}
}

// expectNothing checks that nothing arrives for a while.
func (c *rawClient) expectNothing() {
	c.tb.Helper()
	select {
	case m := <-c.in:
		c.tb.Fatalf("client %s: unexpected %q", c.sid, m)
	case <-time.After(quiet):
	}
}

// waitClosed waits for the transport to end and returns the WebSocket
// close code (0 for polling, or without a close frame), with what came
// before.
func (c *rawClient) waitClosed() (code int, before []string) {
	c.tb.Helper()
	select {
	case <-c.done:
	case <-time.After(waitTimeout):
		c.tb.Fatalf("client %s: transport still open after %v", c.sid, waitTimeout)
	}
	for {
		select {
		case m := <-c.in:
			before = append(before, m.String())
			continue
		default:
		}
		break
	}
	var ce *websocket.CloseError
	if errors.As(c.closeErr, &ce) {
		code = ce.Code
	}
	return code, before
}

// kill ends the transport without a goodbye: a WebSocket's TCP connection
// closed; a polling client that abandons its pending GET (once the server
// has it: a client that merely stops polling is noticed only by the
// heartbeat).
func (c *rawClient) kill() {
	if c.ws != nil {
		_ = c.ws.NetConn().Close()
		<-c.done
		return
	}
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if sess := c.srv.sessionOf(c); sess == nil || sess.Waiting() {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.cancel()
	<-c.done
}

// eventArgs parses an EVENT packet of nsp "/" without ack id: its name and
// arguments.
func eventArgs(tb testing.TB, packet string) (string, []json.RawMessage) {
	tb.Helper()
	if !strings.HasPrefix(packet, "2[") {
		tb.Fatalf("packet %q is not an EVENT of /", packet)
	}
	var a []json.RawMessage
	if err := json.Unmarshal([]byte(packet[1:]), &a); err != nil || len(a) == 0 {
		tb.Fatalf("packet %q: %v", packet, err)
	}
	var name string
	_ = json.Unmarshal(a[0], &name)
	return name, a[1:]
}

// waitFor polls cond until it holds, or fails after waitTimeout.
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

// recv is what a server-side handler hands to the test.
func recv[T any](tb testing.TB, ch <-chan T) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		tb.Fatalf("nothing within %v", waitTimeout)
		var zero T
		return zero
	}
}

// sessionOf returns the server's Engine.IO session of a client.
func (s *testIO) sessionOf(c *rawClient) *engineio.Session { return s.Engine().Session(c.sid) }

// manualPoll is a long-polling client driven by the test: it sends a GET
// only when asked (and answers no PING by itself).
type manualPoll struct {
	tb  testing.TB
	s   *testIO
	sid string
	hc  *http.Client
}

func manualPollOpen(tb testing.TB, s *testIO) *manualPoll {
	tb.Helper()
	m := &manualPoll{tb: tb, s: s, hc: &http.Client{Transport: &http.Transport{}, Timeout: waitTimeout}}
	tb.Cleanup(m.hc.CloseIdleConnections)
	packets := m.do("GET", s.ts.URL+"/socket.io/?EIO=4&transport=polling", "")
	var hs struct {
		SID string `json:"sid"`
	}
	if len(packets) != 1 || json.Unmarshal([]byte(strings.TrimPrefix(packets[0], "0")), &hs) != nil {
		tb.Fatalf("handshake %q", packets)
	}
	m.sid = hs.SID
	return m
}

func (m *manualPoll) url() string {
	return m.s.ts.URL + "/socket.io/?EIO=4&transport=polling&sid=" + m.sid
}

func (m *manualPoll) do(method, url, body string) []string {
	m.tb.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	r, err := m.hc.Do(req)
	if err != nil {
		m.tb.Fatalf("%s: %v", method, err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 {
		m.tb.Fatalf("%s: %d %q", method, r.StatusCode, b)
	}
	return strings.Split(string(b), "\x1e")
}

// get polls once and returns the Engine.IO packets.
func (m *manualPoll) get() []string { m.tb.Helper(); return m.do("GET", m.url(), "") }

// post sends Engine.IO packets.
func (m *manualPoll) post(packets ...string) {
	m.tb.Helper()
	if got := m.do("POST", m.url(), strings.Join(packets, "\x1e")); fmt.Sprint(got) != "[ok]" {
		m.tb.Fatalf("POST answered %q", got)
	}
}
