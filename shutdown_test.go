package main

// Shutdown under load: every session is told (a WebSocket close frame, a
// polling CLOSE packet) within -shutdown-grace, however many there are and
// whatever is being broadcast meanwhile (docs/OPERATING.md, "Shutdown").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chatio/socketio-chat/chat"
	"github.com/gorilla/websocket"
)

// maxShutSenders bounds the senders of TestShutdownWithinGraceUnderLoad.
const maxShutSenders = 64

// shutClient is a raw WebSocket client that reads everything, answers
// pings, and records how its session ended.
type shutClient struct {
	conn  *websocket.Conn
	wmu   sync.Mutex
	told  atomic.Bool // a close frame 1000 (or a DISCONNECT) came before the end
	msgs  atomic.Int64
	last  [maxShutSenders]atomic.Int64 // per sender, the highest message number received
	ended chan struct{}
	endAt atomic.Int64 // unix nanoseconds of the end
}

func shutDialWS(addr string) (*shutClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		return nil, err
	}
	c := &shutClient{conn: conn, ended: make(chan struct{})}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, open, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
		conn.Close()
		return nil, fmt.Errorf("engine open: %q %v", open, err)
	}
	if err := c.write("40"); err != nil {
		conn.Close()
		return nil, err
	}
	if _, ack, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(ack), "40{") {
		conn.Close()
		return nil, fmt.Errorf("socket.io connect: %q %v", ack, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go c.read()
	return c, nil
}

func (c *shutClient) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, []byte(s))
}

func (c *shutClient) read() {
	defer func() {
		c.endAt.Store(time.Now().UnixNano())
		close(c.ended)
		c.conn.Close()
	}()
	for {
		_, m, err := c.conn.ReadMessage()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				c.told.Store(true)
			}
			return
		}
		switch s := string(m); {
		case s == "2":
			_ = c.write("3")
		case strings.HasPrefix(s, "41"):
			c.told.Store(true)
		case strings.HasPrefix(s, "42"):
			c.msgs.Add(1)
			var sender, n int
			if _, err := fmt.Sscanf(s, `42["message","load %d %d"]`, &sender, &n); err == nil && sender >= 0 && sender < maxShutSenders {
				if n > int(c.last[sender].Load()) {
					c.last[sender].Store(int64(n))
				}
			}
		}
	}
}

// shutHTTP is the polling clients' HTTP client: it keeps every idle
// connection, so that a poll after a response reuses one, as a browser
// does, instead of opening a new connection each time.
var shutHTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000}}

// shutPoller is a polling client that polls until its session ends.
type shutPoller struct {
	base, sid string
	told      atomic.Bool // a CLOSE packet (or a DISCONNECT) came
	msgs      atomic.Int64
	ended     chan struct{}
}

func shutDialPolling(base string) (*shutPoller, error) {
	resp, err := shutHTTP.Get(base + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var open struct{ Sid string }
	if resp.StatusCode != 200 || len(b) < 2 || json.Unmarshal(b[1:], &open) != nil {
		return nil, fmt.Errorf("polling handshake: %s %q", resp.Status, b)
	}
	p := &shutPoller{base: base, sid: open.Sid, ended: make(chan struct{})}
	if err := p.post("40"); err != nil {
		return nil, err
	}
	go p.poll()
	return p, nil
}

func (p *shutPoller) url() string {
	return p.base + "/socket.io/?EIO=4&transport=polling&sid=" + p.sid
}

func (p *shutPoller) post(body string) error {
	resp, err := shutHTTP.Post(p.url(), "text/plain", strings.NewReader(body))
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return errors.New(resp.Status)
	}
	return nil
}

func (p *shutPoller) poll() {
	defer close(p.ended)
	for {
		resp, err := shutHTTP.Get(p.url())
		if err != nil {
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return
		}
		for pkt := range strings.SplitSeq(string(b), "\x1e") {
			switch {
			case pkt == "1" || strings.HasPrefix(pkt, "41"):
				p.told.Store(true)
			case pkt == "2":
				go p.post("3")
			case strings.HasPrefix(pkt, "42"):
				p.msgs.Add(1)
			}
		}
		if p.told.Load() {
			return
		}
	}
}

// TestShutdownWithinGraceUnderLoad: 2 000 WebSocket clients and 50 polling
// ones while messages are broadcast to all of them; a shutdown with a 5 s
// grace tells every client (close frame 1000 or CLOSE packet) and serve
// returns within the grace and a small margin. The sessions used to be
// closed one at a time behind the broadcasts, about 3 a second, and the
// clients heard nothing until the process exited.
func TestShutdownWithinGraceUnderLoad(t *testing.T) {
	nWS, nPoll := 2000, 50
	if s := os.Getenv("SHUTDOWN_TEST_CLIENTS"); s != "" {
		nWS, _ = strconv.Atoi(s)
	}
	const grace = 5 * time.Second
	ts := startTestServer(t, func(c *chat.Config) {
		c.ShutdownGrace = grace
		c.LogLevel = 4 // warn only: 2 000 connects and disconnects would flood the test log
		c.EventRate, c.EventBurst = 10_000, 10_000
		c.MaxHTTPConnections = 100_000
	})
	clients := make([]*shutClient, nWS)
	var wg sync.WaitGroup
	errs := make(chan error, nWS)
	next := atomic.Int64{}
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= nWS {
					return
				}
				c, err := shutDialWS(ts.Addr)
				if err != nil {
					errs <- err
					return
				}
				clients[i] = c
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		for _, c := range clients {
			c.conn.Close()
		}
	})
	pollers := make([]*shutPoller, nPoll)
	for i := range pollers {
		p, err := shutDialPolling(ts.URL)
		if err != nil {
			t.Fatalf("polling dial: %v", err)
		}
		pollers[i] = p
	}

	// The load: 4 senders, 50 messages a second each, broadcast to all.
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	senders := 4
	if s := os.Getenv("SHUTDOWN_TEST_SENDERS"); s != "" {
		senders, _ = strconv.Atoi(s)
		senders = min(senders, maxShutSenders)
	}
	var sent [maxShutSenders]atomic.Int64 // per sender, messages written
	for s := range senders {
		load.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-stopLoad:
					return
				case <-tick.C:
				}
				if clients[s].write(fmt.Sprintf(`42["user-message","load %d %d"]`, s, n)) != nil {
					return
				}
				sent[s].Store(int64(n + 1))
			}
		})
	}
	defer func() { close(stopLoad); load.Wait() }()
	// Wait until the broadcasts reach everyone.
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range clients[len(clients)-10:] {
		for c.msgs.Load() < 10 {
			if time.Now().After(deadline) {
				t.Fatalf("the load did not reach the clients within 30s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	var sentAtStop [maxShutSenders]int64
	for s := range senders {
		sentAtStop[s] = sent[s].Load()
	}
	start := time.Now()
	ts.stop()
	var serveErr error
	select {
	case serveErr = <-ts.done:
		close(ts.done)
	case <-time.After(grace + 30*time.Second):
		t.Fatalf("serve did not return within %v of the shutdown", grace+30*time.Second)
	}
	took := time.Since(start)
	if serveErr != nil {
		t.Errorf("serve: %v", serveErr)
	}
	t.Logf("shutdown of %d WebSocket and %d polling clients under load took %v", nWS, nPoll, took)
	if limit := grace + 2*time.Second; took > limit {
		t.Errorf("shutdown took %v, want at most the grace %v and a 2s margin", took, grace)
	}
	notTold, ends := 0, make([]time.Duration, 0, nWS)
	for _, c := range clients {
		select {
		case <-c.ended:
		case <-time.After(5 * time.Second):
			t.Fatal("a WebSocket client's connection is still open after serve returned")
		}
		if !c.told.Load() {
			notTold++
		}
		ends = append(ends, time.Unix(0, c.endAt.Load()).Sub(start))
	}
	slices.Sort(ends)
	first, median, last := ends[0], ends[len(ends)/2], ends[len(ends)-1]
	t.Logf("WebSocket clients told after the shutdown began: first %v, median %v, last %v", first, median, last)
	// They are told at once, not once every socket has been disconnected
	// (that took seconds under load, and clients heard nothing meanwhile).
	if first > time.Second {
		t.Errorf("the first client was told %v after the shutdown began, want at once (within 1s)", first)
	}
	pollNotTold := 0
	for _, p := range pollers {
		select {
		case <-p.ended:
		case <-time.After(5 * time.Second):
			t.Fatal("a polling client still polls after serve returned")
		}
		if !p.told.Load() {
			pollNotTold++
		}
	}
	if pollNotTold > 0 {
		t.Errorf("%d of %d polling clients got no CLOSE packet", pollNotTold, nPoll)
	}
}

// shutBlockedApp is an app whose Close blocks until release is closed,
// and whose sessions never drain.
type shutBlockedApp struct {
	http.Handler
	release chan struct{}
}

func (a *shutBlockedApp) Close() { <-a.release }
func (a *shutBlockedApp) WaitDrained(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestShutdownBoundedByGrace: closing the sessions is bounded by the grace
// period, even when the app's Close does not return (the history store or
// the adapter hangs): serve used to wait for Close, then for the drain.
func TestShutdownBoundedByGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace = 10 * time.Second
		a := &shutBlockedApp{release: make(chan struct{})}
		defer close(a.release)
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		var buf syncBuffer
		start := time.Now()
		closeApp(ctx, a, slog.New(slog.NewTextHandler(&buf, nil)))
		if took := time.Since(start); took != grace {
			t.Errorf("closeApp returned after %v, want the grace %v", took, grace)
		}
		if !strings.Contains(buf.String(), "shutdown grace period ended while closing the sessions") {
			t.Errorf("no warning that the grace ended: %q", buf.String())
		}
	})
}
