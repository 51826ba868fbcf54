package main

// Two nodes sharing a PostgreSQL history and a Redis (-history postgres://…
// -redis …): clients on both nodes see every message of both, at the same
// global offsets, once each, in offset order; a client that reconnects to
// the other node catches up by its serverOffset with nothing lost or
// repeated; and all of that holds while Redis is unreachable, because the
// nodes learn each other's messages from the database, not from Redis.

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
)

// histProxy forwards TCP connections to target until cut, which closes the
// open ones and refuses new ones (a Redis outage, as the nodes see it).
type histProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startHistProxy(t *testing.T, target string) *histProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &histProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *histProxy) addr() string { return p.ln.Addr().String() }

func (p *histProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// cut closes every forwarded connection and refuses new ones.
func (p *histProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *histProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func TestHistoryCluster(t *testing.T) {
	const redisAddr = "127.0.0.1:6379"
	if c, err := net.DialTimeout("tcp", redisAddr, time.Second); err != nil {
		needs(t, "Redis on %s: %v", redisAddr, err)
	} else {
		_ = c.Close()
	}
	dsn := historyPostgresDSN(t)
	proxy := startHistProxy(t, redisAddr)
	prefix := fmt.Sprintf("test-history-cluster-%d", time.Now().UnixNano())
	node := func() *testServer {
		return historyStart(t, dsn, func(c *chat.Config) {
			c.Redis, c.RedisPrefix = "redis://"+proxy.addr()+"/0", prefix
			c.HistoryPoll = 300 * time.Millisecond
		})
	}
	a, b := node(), node()

	clients := []*rawChat{
		rawChatDial(t, a, rawChatWS, "a-ws", rawChatOptions{}),
		rawChatDial(t, a, rawChatPolling, "a-polling", rawChatOptions{}),
		rawChatDial(t, b, rawChatWS, "b-ws", rawChatOptions{}),
		rawChatDial(t, b, rawChatPolling, "b-polling", rawChatOptions{}),
	}
	sendA, sendB := clients[0], clients[2]
	next := 0
	// exchange makes a client of each node send n messages at once, and
	// checks that every client (and extra) has every offset up to the new
	// total, once, in order, with the same message at each offset.
	exchange := func(n int, extra ...*rawChat) int64 {
		t.Helper()
		var wg sync.WaitGroup
		for _, s := range []*rawChat{sendA, sendB} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					histSend(t, s, -1, strconv.Quote(fmt.Sprintf("%s#%d", s.name, next+i)), "")
				}
			}()
		}
		wg.Wait()
		next += n
		total := int64(2 * next)
		var ref []histMsg
		for i, c := range append(clients[:len(clients):len(clients)], extra...) {
			msgs := histWait(t, c, total, 30*time.Second)
			first := int64(1) // there from the start
			if i >= len(clients) {
				first = msgs[0].offset // checked by the caller
			}
			histCheckRun(t, c.name, msgs, first, total)
			if ref == nil {
				ref = msgs
				continue
			}
			for _, m := range msgs {
				if r := ref[m.offset-ref[0].offset]; r.text != m.text {
					t.Fatalf("%s: offset %d is %s, %s has %s there", c.name, m.offset, m.text, clients[0].name, r.text)
				}
			}
		}
		return total
	}

	exchange(40)

	// Redis goes away: the nodes still learn each other's messages from
	// the history.
	proxy.cut()
	sioEventually(t, 20*time.Second, "both nodes to notice the Redis outage", func() bool {
		return histLogHas(a, "redis unavailable") && histLogHas(b, "redis unavailable")
	})
	last := exchange(40)

	// A client of node A leaves; messages are sent on both nodes while it
	// is away; it comes back on node B with its serverOffset.
	roamer := rawChatDial(t, a, rawChatWS, "roamer on a", rawChatOptions{auth: fmt.Sprintf(`{"serverOffset":%d}`, last-5)})
	histCheckRun(t, roamer.name, histWait(t, roamer, last, 10*time.Second), last-4, last)
	seen := lastOffset(histMessages(t, roamer))
	_ = roamer.ws.Close()
	exchange(30)
	back := rawChatDial(t, b, rawChatWS, "roamer back on b", rawChatOptions{auth: fmt.Sprintf(`{"serverOffset":%d}`, seen)})
	total := exchange(10, back)
	histCheckRun(t, back.name, histWait(t, back, total, 10*time.Second), seen+1, total)

	// Redis comes back; the history keeps working the same.
	proxy.restore()
	sioEventually(t, 30*time.Second, "both nodes to hear Redis again", func() bool {
		return histLogHas(a, "redis available again") && histLogHas(b, "redis available again")
	})
	exchange(20, back)
}

func histLogHas(ts *testServer, s string) bool { return strings.Contains(ts.Log.String(), s) }
