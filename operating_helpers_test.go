package main

// A bare Socket.IO client over gorilla/websocket for the tests of
// operating_test.go and admin_test.go: it sees the packets as they are on
// the wire, and can stop reading (a slow consumer) or be refused.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// opWait bounds every wait of these tests.
const opWait = 10 * time.Second

// opClient is one Engine.IO session over WebSocket. Its reader answers
// PINGs and queues the Socket.IO packets (the text after the engine's '4').
type opClient struct {
	tb      testing.TB
	ws      *websocket.Conn
	sid     string
	wmu     sync.Mutex
	packets chan string
	done    chan struct{} // closed when the reader stops
	stalled bool          // no reader: the client reads nothing
}

// opDial opens a WebSocket session to base (http://host:port) and reads
// its OPEN packet. Unless stalled, a goroutine then reads everything.
// A stalled client also asks for a tiny receive buffer, so that the server
// soon has to queue what it sends.
func opDial(tb testing.TB, base string, stalled bool) *opClient {
	tb.Helper()
	d := websocket.Dialer{HandshakeTimeout: opWait}
	if stalled {
		d.NetDial = func(network, addr string) (net.Conn, error) {
			nd := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
				var serr error
				err := c.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
				if err != nil {
					return err
				}
				return serr
			}}
			return nd.Dial(network, addr)
		}
	}
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	ws, _, err := d.Dial(u, nil)
	if err != nil {
		tb.Fatalf("dial %s: %v", u, err)
	}
	return opStart(tb, ws, stalled)
}

// opDialUpgrade opens a session over polling and upgrades it to WebSocket
// as socket.io-client does (probe, then UPGRADE). With connectFirst, it
// joins "/" over polling first (its socket is then a polling socket that
// upgrades).
func opDialUpgrade(tb testing.TB, base string, connectFirst bool) *opClient {
	tb.Helper()
	poll := func(method, sid, body string) string {
		tb.Helper()
		u := base + "/socket.io/?EIO=4&transport=polling"
		if sid != "" {
			u += "&sid=" + sid
		}
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			tb.Fatalf("%s %s: %s %q", method, u, resp.Status, b)
		}
		return string(b)
	}
	body := poll("GET", "", "")
	var hs struct{ SID string }
	if len(body) == 0 || body[0] != '0' || json.Unmarshal([]byte(body[1:]), &hs) != nil {
		tb.Fatalf("polling handshake: %q", body)
	}
	c := &opClient{tb: tb, sid: hs.SID, packets: make(chan string, 100_000), done: make(chan struct{})}
	if connectFirst {
		poll("POST", hs.SID, "40")
		if got := poll("GET", hs.SID, ""); !strings.HasPrefix(got, "40") {
			tb.Fatalf("CONNECT over polling: %q", got)
		}
	}
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket&sid=" + hs.SID
	ws, _, err := (&websocket.Dialer{HandshakeTimeout: opWait}).Dial(u, nil)
	if err != nil {
		tb.Fatalf("upgrade: %v", err)
	}
	c.ws = ws
	tb.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(opWait))
	if err := ws.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		tb.Fatal(err)
	}
	if _, m, err := ws.ReadMessage(); err != nil || string(m) != "3probe" {
		tb.Fatalf("probe answer %q, %v", m, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		tb.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	go c.read()
	return c
}

func opStart(tb testing.TB, ws *websocket.Conn, stalled bool) *opClient {
	tb.Helper()
	c := &opClient{tb: tb, ws: ws, packets: make(chan string, 100_000), done: make(chan struct{})}
	tb.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(opWait))
	_, m, err := ws.ReadMessage()
	var hs struct{ SID string }
	if err != nil || len(m) == 0 || m[0] != '0' || json.Unmarshal(m[1:], &hs) != nil {
		tb.Fatalf("OPEN packet %q, %v", m, err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	c.sid, c.stalled = hs.SID, stalled
	if !stalled {
		go c.read()
	}
	return c
}

func (c *opClient) read() {
	defer close(c.done)
	for {
		_, m, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		switch {
		case len(m) == 0:
		case m[0] == '2':
			c.write("3")
		case m[0] == '4':
			c.packets <- string(m[1:])
		}
	}
}

func (c *opClient) write(engine string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, []byte(engine))
}

// nspPrefix is how a namespace starts a packet: nothing for "/".
func nspPrefix(nsp string) string {
	if nsp == "/" {
		return ""
	}
	return nsp + ","
}

// connect joins nsp with an auth payload (JSON, or "") and returns the
// answer: a CONNECT ("0…") or a CONNECT_ERROR ("4…") packet. A stalled
// client reads it itself.
func (c *opClient) connect(nsp, auth string) string {
	c.tb.Helper()
	if err := c.write("40" + nspPrefix(nsp) + auth); err != nil {
		c.tb.Fatal(err)
	}
	if c.stalled {
		_ = c.ws.SetReadDeadline(time.Now().Add(opWait))
		defer func() { _ = c.ws.SetReadDeadline(time.Time{}) }()
		for {
			_, m, err := c.ws.ReadMessage()
			if err != nil {
				c.tb.Fatalf("CONNECT answer: %v", err)
			}
			if s := string(m); strings.HasPrefix(s, "40") || strings.HasPrefix(s, "44") {
				return s[1:]
			}
		}
	}
	return c.expect(fmt.Sprintf("the CONNECT answer of %s", nsp), func(p string) bool {
		return strings.HasPrefix(p, "0"+nspPrefix(nsp)) || strings.HasPrefix(p, "4"+nspPrefix(nsp))
	})
}

// emit sends an event on nsp; args is the JSON of the arguments after the
// name, without brackets (e.g. `"hi"`).
func (c *opClient) emit(nsp, event, args string) {
	c.tb.Helper()
	b, _ := json.Marshal(event)
	p := "42" + nspPrefix(nsp) + "[" + string(b)
	if args != "" {
		p += "," + args
	}
	if err := c.write(p + "]"); err != nil {
		c.tb.Fatalf("emit %s: %v", event, err)
	}
}

// expect returns the first packet for which match is true, dropping the
// others, within opWait.
func (c *opClient) expect(what string, match func(string) bool) string {
	c.tb.Helper()
	deadline := time.NewTimer(opWait)
	defer deadline.Stop()
	for {
		select {
		case p := <-c.packets:
			if match(p) {
				return p
			}
		case <-c.done:
			c.tb.Fatalf("connection closed while waiting for %s", what)
		case <-deadline.C:
			c.tb.Fatalf("no %s within %v", what, opWait)
		}
	}
}

// event splits an EVENT packet of nsp into its name and arguments; ok is
// false for another packet.
func event(p, nsp string) (name string, args []json.RawMessage, ok bool) {
	rest, found := strings.CutPrefix(p, "2"+nspPrefix(nsp))
	if !found {
		return "", nil, false
	}
	var all []json.RawMessage
	if json.Unmarshal([]byte(rest), &all) != nil || len(all) == 0 || json.Unmarshal(all[0], &name) != nil {
		return "", nil, false
	}
	return name, all[1:], true
}

// expectEvent waits for the event name on nsp whose arguments satisfy
// match (nil: any), and returns its arguments.
func (c *opClient) expectEvent(nsp, name string, match func([]json.RawMessage) bool) []json.RawMessage {
	c.tb.Helper()
	var args []json.RawMessage
	c.expect("event "+name, func(p string) bool {
		n, a, ok := event(p, nsp)
		if ok && n == name && (match == nil || match(a)) {
			args = a
			return true
		}
		return false
	})
	return args
}

// waitClosed waits until the server has closed the connection (the
// reader stopped).
func (c *opClient) waitClosed(what string) {
	c.tb.Helper()
	select {
	case <-c.done:
	case <-time.After(opWait):
		c.tb.Fatalf("%s: the connection is still open after %v", what, opWait)
	}
}

// metricsAddrRe finds the metrics listener's address in the server's log.
var metricsAddrRe = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)

// metricsURL is the /metrics URL of a test server started with
// MetricsAddr 127.0.0.1:0.
func metricsURL(tb testing.TB, ts *testServer) string {
	tb.Helper()
	m := metricsAddrRe.FindStringSubmatch(ts.Log.String())
	if m == nil {
		tb.Fatalf("no \"metrics listening\" line in the log")
	}
	return "http://" + m[1] + "/metrics"
}

// scrape reads /metrics with Prometheus' text parser.
func scrape(tb testing.TB, url string) map[string]*dto.MetricFamily {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bufio.NewReader(resp.Body))
	if err != nil {
		tb.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value is the value of the sample of metric name whose labels include
// labels (name=value pairs), summed over the matching samples: a counter's
// or gauge's value, a histogram's count. 0 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, m := range f.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.Label {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
