package streamsadapter

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// loadingProxy stands for a Redis that has just restarted and is loading
// its data set: while loading, it answers the commands a client sends on
// connecting (HELLO aside: go-redis goes on without it) with OK, as Redis
// does, unless refuseSetup, and every other command with LOADING;
// afterwards a connection is forwarded to the real Redis from its next
// read on. Redis too answers
// all the commands of one read alike. Not simulated: a pipeline cut
// across two reads, the first while Redis loads (the outbox would send
// the commands Redis took after LOADING again: duplicates).
type loadingProxy struct {
	ln          net.Listener
	target      string
	refuseSetup bool
	loading     atomic.Bool
	down        atomic.Bool // close connections at once (Redis unreachable)
	closed      atomic.Int64

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	refused map[string]int // commands answered LOADING, by name
}

func startLoadingProxy(t *testing.T, target string, refuseSetup bool) *loadingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &loadingProxy{ln: ln, target: target, refuseSetup: refuseSetup, conns: map[net.Conn]struct{}{},
		refused: map[string]int{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.track(c) {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *loadingProxy) addr() string { return p.ln.Addr().String() }

func (p *loadingProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// restart closes every connection and answers LOADING from now on (or,
// with down, closes every new connection at once).
func (p *loadingProxy) restart(down bool) {
	if down {
		p.down.Store(true)
	} else {
		p.loading.Store(true)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *loadingProxy) refusedCount(cmd string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused[cmd]
}

func (p *loadingProxy) serve(c net.Conn) {
	defer c.Close()
	if p.down.Load() {
		p.closed.Add(1)
		return
	}
	br := bufio.NewReader(c)
	loading := false
	for {
		if br.Buffered() == 0 {
			// Redis runs every command of what one read brought
			// before it looks at the loading state again: so do we.
			if _, err := br.Peek(1); err != nil {
				return
			}
			loading = p.loading.Load()
		}
		args, err := readRESPCommand(br)
		if err != nil {
			return
		}
		name := strings.ToUpper(args[0])
		if loading {
			reply := "-LOADING Redis is loading the dataset in memory\r\n"
			switch {
			case !p.refuseSetup && (name == "CLIENT" || name == "SELECT" || name == "AUTH"):
				reply = "+OK\r\n"
			default:
				p.mu.Lock()
				p.refused[name]++
				p.mu.Unlock()
			}
			if _, err := io.WriteString(c, reply); err != nil {
				return
			}
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			return
		}
		if !p.track(up) {
			return
		}
		var cmd strings.Builder
		fmt.Fprintf(&cmd, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&cmd, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := io.WriteString(up, cmd.String()); err != nil {
			_ = up.Close()
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(c, up)
			_ = c.Close()
		}()
		_, _ = io.Copy(up, br)
		_ = up.Close()
		<-done
		return
	}
}

// readRESPCommand reads one command as go-redis writes it: an array of
// bulk strings.
func readRESPCommand(br *bufio.Reader) ([]string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil || !strings.HasPrefix(line, "*") || n < 1 {
		return nil, fmt.Errorf("not a command: %q", line)
	}
	args := make([]string, n)
	for i := range args {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil || !strings.HasPrefix(line, "$") || size < 0 {
			return nil, fmt.Errorf("not a bulk string: %q", line)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

// TestOutboxKeepsWritesThroughLoading: a restarted Redis accepts
// connections before it has loaded its data and answers LOADING meanwhile
// (Node's adapter drops a broadcast then). The node keeps its broadcasts
// and adds them, each once and in order, once Redis has loaded; its reader
// resumes too. When go-redis cannot get a connection (the dial fails, the
// connection closes during its setup, the setup gets an error reply) with
// an error it deems retryable, and it has no retry left (the outbox's
// client has none), Pipelined returns that error without marking the
// commands, which were not sent: the outbox must not count them as added.
// It did, and lost them whenever Redis stayed down longer than go-redis's
// dial attempts (about 0.5 s: TestStreamsRedisRestart, under load).
func TestOutboxKeepsWritesThroughLoading(t *testing.T) {
	for _, tc := range []struct {
		name              string
		down, refuseSetup bool
	}{
		{"commands refused", false, false},
		{"connection setup refused too", false, true},
		{"unreachable, then loading", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) { testOutboxThroughLoading(t, tc.down, tc.refuseSetup) })
	}
}

func testOutboxThroughLoading(t *testing.T, down, refuseSetup bool) {
	rc := testRedis(t)
	name := testName()
	proxy := startLoadingProxy(t, testRedisAddr, refuseSetup)
	log := &syncLog{}
	c, err := New(Options{URL: "redis://" + proxy.addr(), StreamName: name, ChannelPrefix: name,
		Log: newTextLogger(log), BlockTime: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := socketio.NewServer(socketio.Options{Adapter: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); _ = c.Close() })
	eventually(t, "the node to be up", 5*time.Second, c.Up)

	proxy.restart(down)
	const n = 20
	for i := range n {
		if err := srv.Emit("m", i); err != nil {
			t.Fatal(err)
		}
	}
	if down {
		eventually(t, "the node's connections to fail", 10*time.Second, func() bool { return proxy.closed.Load() > 10 })
		if st := c.Stats(); st.Dropped != 0 || st.Pending != n {
			t.Errorf("while Redis is unreachable: Stats = %+v, want %d pending and none dropped", st, n)
		}
		proxy.loading.Store(true)
		proxy.down.Store(false)
	}
	eventually(t, "Redis to refuse the node's commands with LOADING", 10*time.Second, func() bool {
		if refuseSetup {
			return proxy.refusedCount("CLIENT") > 10
		}
		return proxy.refusedCount("XADD") > 0 && proxy.refusedCount("XREAD") > 0
	})
	if st := c.Stats(); st.Dropped != 0 || st.Pending != n {
		t.Errorf("while Redis loads: Stats = %+v, want %d pending and none dropped", st, n)
	}
	proxy.loading.Store(false)
	eventually(t, "the outbox to empty", 10*time.Second, func() bool { return c.Stats().Pending == 0 })
	entries, err := rc.XRange(context.Background(), name, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("%d entries, want %d", len(entries), n)
	}
	for i, e := range entries {
		m, err := decodeEntry(e.Values)
		if err != nil || m.packet == nil || string(m.packet.Args[0].JSON) != fmt.Sprint(i) {
			t.Fatalf("entry %d: %+v %v", i, m, err)
		}
	}
	if st := c.Stats(); st.Dropped != 0 {
		t.Errorf("Stats = %+v, want none dropped", st)
	}
	eventually(t, "the node to be up again", 5*time.Second, c.Up)
	if strings.Contains(log.String(), "refused a write") {
		t.Errorf("the node dropped writes:\n%s", log)
	}
	_ = rc.Del(context.Background(), name)
}
