package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chatio/socketio-chat/bench/eio"
	"github.com/gorilla/websocket"
)

// client is one simulated browser tab.
type client struct {
	idx  int
	raw  *eio.RawConn // websocket read by the poller (-reader epoll)
	ws   *eio.WSConn  // websocket read by its own goroutine (-reader goroutine)
	poll *eio.PollConn
	stop context.CancelFunc // ends a polling client's read loop

	slow   bool
	paused atomic.Bool
	resume chan struct{}
	alive  atomic.Bool
	done   chan error // the read loop's result

	states    []*recvState // per point, touched only by the reader goroutine
	slowCount int64        // messages read by a slow client
}

// pool owns every client of one run and the statistics they feed.
type pool struct {
	cfg     *config
	base    time.Time // message timestamps are ns since base (monotonic)
	ws      *websocket.Dialer
	slowWS  *websocket.Dialer
	dialTCP func(ctx context.Context, network, addr string) (net.Conn, error)
	slowTCP func(ctx context.Context, network, addr string) (net.Conn, error)
	poller  *eio.Poller
	targets map[[2]string]*eio.Target // by URL and namespace, for the poller's dials
	srcs    []net.IP                  // source addresses the poller's dials take in turn
	nextSrc atomic.Uint64
	hc      *http.Client
	clients []*client
	points  []atomic.Pointer[pointStats]

	unknown   atomic.Int64 // event packets that are not benchmark messages
	errMu     sync.Mutex
	errs      map[string]int
	connected atomic.Int64
	closed    bool // closeAll ran (it runs on the scenario's goroutine)
}

func newPool(cfg *config, maxPoints int) (*pool, error) {
	srcs, err := parseSources(cfg.src)
	if err != nil {
		return nil, err
	}
	p := &pool{
		cfg:     cfg,
		base:    time.Now(),
		dialTCP: netDialer(srcs, 0),
		slowTCP: netDialer(srcs, cfg.slowReadBuf),
		clients: make([]*client, cfg.maxClients()),
		points:  make([]atomic.Pointer[pointStats], maxPoints),
		errs:    map[string]int{},
	}
	p.ws, p.slowWS = eio.NewWSDialer(p.dialTCP), eio.NewWSDialer(p.slowTCP)
	if cfg.transport == "websocket" && cfg.reader == "epoll" {
		if p.poller, err = eio.NewPoller(cfg.pollers); err != nil {
			return nil, err
		}
		p.srcs, p.targets = srcs, map[[2]string]*eio.Target{}
		for i := range len(cfg.urls) * max(1, cfg.namespaces) {
			key := [2]string{cfg.urlOf(i), cfg.nspOf(i)}
			if p.targets[key] == nil {
				if p.targets[key], err = eio.NewTarget(key[0], key[1]); err != nil {
					p.poller.Close()
					return nil, err
				}
			}
		}
	}
	p.hc = &http.Client{Transport: &http.Transport{
		DialContext:         netDialer(srcs, 0),
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 2*cfg.maxClients() + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
	return p, nil
}

// netDialer opens TCP connections from the source addresses in turn.
// rcvbuf > 0 shrinks the socket receive buffer before connecting (slow
// clients: the server's writes back up after a few KB).
func netDialer(srcs []net.IP, rcvbuf int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	control := func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if rcvbuf > 0 {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, eio.IPBindAddressNoPort, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}
	if len(srcs) == 0 {
		srcs = []net.IP{nil}
	}
	dialers := make([]*net.Dialer, len(srcs))
	for i, ip := range srcs {
		dialers[i] = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: -1, Control: control}
		if ip != nil {
			dialers[i].LocalAddr = &net.TCPAddr{IP: ip}
		}
	}
	var n atomic.Uint64
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialers[n.Add(1)%uint64(len(dialers))].DialContext(ctx, network, addr)
	}
}

// parseSources reads "127.0.0.1-8" (a range of the last octet) or a comma
// list of IPv4 addresses. Empty means the kernel's choice.
func parseSources(s string) ([]net.IP, error) {
	if s == "" {
		return nil, nil
	}
	var out []net.IP
	for _, part := range splitComma(s) {
		if ip := net.ParseIP(part).To4(); ip != nil {
			out = append(out, ip)
			continue
		}
		i := len(part) - 1
		for i >= 0 && part[i] != '-' {
			i--
		}
		if i < 0 {
			return nil, fmt.Errorf("-src %q: want 127.0.0.1-8 or a list of addresses", s)
		}
		first := net.ParseIP(part[:i]).To4()
		last, err := strconv.Atoi(part[i+1:])
		if first == nil || err != nil || last < int(first[3]) || last > 254 {
			return nil, fmt.Errorf("-src %q: want 127.0.0.1-8 or a list of addresses", s)
		}
		for o := int(first[3]); o <= last; o++ {
			out = append(out, net.IPv4(first[0], first[1], first[2], byte(o)).To4())
		}
	}
	return out, nil
}

// noteErr counts an error by message so the report can list each kind once.
func (p *pool) noteErr(err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	p.errs[msg]++
}

func (p *pool) errors() []string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	var out []string
	for msg, n := range p.errs {
		out = append(out, fmt.Sprintf("%d× %s", n, msg))
	}
	return out
}

// dial opens client i (slow clients get a tiny receive buffer) and starts its
// reader goroutine. Clients read by the poller are opened by rampOnPoller.
func (p *pool) dial(ctx context.Context, i int, slow bool) (*client, error) {
	c := &client{idx: i, slow: slow, resume: make(chan struct{}), done: make(chan error, 1)}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch {
	case p.cfg.transport == "websocket":
		d := p.ws
		if slow {
			d = p.slowWS
		}
		ws, err := eio.DialWSIn(dctx, d, p.cfg.urlOf(i), p.cfg.nspOf(i))
		if err != nil {
			return nil, err
		}
		c.ws = ws
		c.alive.Store(true)
		go func() { p.ended(c, ws.ReadLoop(func(pkt []byte) { p.onEvent(c, pkt) })) }()
	case p.cfg.transport == "polling":
		pc, err := eio.DialPollingIn(dctx, p.hc, p.cfg.urlOf(i), p.cfg.nspOf(i))
		if err != nil {
			return nil, err
		}
		c.poll = pc
		rctx, stop := context.WithCancel(context.Background())
		c.stop = stop
		c.alive.Store(true)
		go func() { p.ended(c, pc.ReadLoop(rctx, func(pkt []byte) { p.onEvent(c, pkt) })) }()
	}
	p.connected.Add(1)
	return c, nil
}

// ended runs on c's reader goroutine when its read loop returns.
func (p *pool) ended(c *client, err error) {
	c.alive.Store(false)
	p.connected.Add(-1)
	if err != nil && !errors.Is(err, eio.ErrClosed) && !errors.Is(err, context.Canceled) && !isClosedConn(err) {
		p.noteErr(fmt.Errorf("read: %w", err))
	}
	c.done <- err
}

func isClosedConn(err error) bool { return errors.Is(err, net.ErrClosed) }

// onEvent runs on client c's reader goroutine for every EVENT packet.
func (p *pool) onEvent(c *client, pkt []byte) {
	if c.paused.Load() {
		<-c.resume // a slow consumer: stop reading until told otherwise
	}
	now := time.Since(p.base).Nanoseconds()
	text, ok := eio.MessageText(pkt)
	if !ok {
		p.unknown.Add(1)
		return
	}
	m, ok := parseText(text)
	if !ok {
		p.unknown.Add(1)
		return
	}
	if c.slow {
		c.slowCount++
		return
	}
	if m.point >= len(p.points) {
		p.unknown.Add(1)
		return
	}
	ps := p.points[m.point].Load()
	if ps == nil || m.sender >= ps.senders {
		p.unknown.Add(1)
		return
	}
	for m.point >= len(c.states) {
		c.states = append(c.states, nil)
	}
	st := c.states[m.point]
	if st == nil {
		st = newRecvState(ps.senders)
		c.states[m.point] = st
	}
	ps.record(st, c.idx, m.sender, m.seq, m.sentNs, now)
}

// emit sends one user-message from client c.
func (p *pool) emit(ctx context.Context, c *client, pkt []byte) error {
	if c.raw != nil {
		return c.raw.Emit(pkt)
	}
	if c.ws != nil {
		return c.ws.Emit(pkt)
	}
	return c.poll.Emit(ctx, pkt)
}

// ramp opens clients [from, to) with conc dials in flight; clients at index
// ≥ slowFrom are slow consumers. Each failed dial is retried up to 3 times.
func (p *pool) ramp(ctx context.Context, from, to, slowFrom int) (failures, missing int) {
	if p.poller != nil {
		return p.rampOnPoller(ctx, from, to, slowFrom)
	}
	var fail, miss atomic.Int64
	next := make(chan int)
	var wg sync.WaitGroup
	conc := min(p.cfg.rampConc, to-from)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for attempt := 0; ; attempt++ {
					c, err := p.dial(ctx, i, i >= slowFrom)
					if err == nil {
						p.clients[i] = c
						break
					}
					fail.Add(1)
					p.noteErr(fmt.Errorf("connect: %w", err))
					if attempt == 3 || ctx.Err() != nil {
						miss.Add(1)
						break
					}
					time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return int(fail.Load()), int(miss.Load())
}

// rampOnPoller is ramp for clients read by the poller: each dial runs on a
// poller goroutine (eio.Poller.Dial), and each one that ends starts the
// next, so conc dials stay in flight without a goroutine switch per connect.
func (p *pool) rampOnPoller(ctx context.Context, from, to, slowFrom int) (failures, missing int) {
	var fail, miss atomic.Int64
	var wg sync.WaitGroup
	wg.Add(to - from)
	var next atomic.Int64
	next.Store(int64(from))
	var start func(i, attempt int)
	startNext := func() {
		if i := int(next.Add(1) - 1); i < to {
			start(i, 0)
		}
	}
	failed := func(i, attempt int, err error) {
		fail.Add(1)
		p.noteErr(fmt.Errorf("connect: %w", err))
		if attempt == 3 || ctx.Err() != nil {
			miss.Add(1)
			wg.Done()
			startNext()
			return
		}
		time.AfterFunc(time.Duration(50<<attempt)*time.Millisecond, func() { start(i, attempt+1) })
	}
	start = func(i, attempt int) {
		slow := i >= slowFrom
		c := &client{idx: i, slow: slow, resume: make(chan struct{}), done: make(chan error, 1)}
		opt := eio.DialOptions{}
		if len(p.srcs) > 0 {
			opt.Src = p.srcs[p.nextSrc.Add(1)%uint64(len(p.srcs))]
		}
		if slow {
			opt.RcvBuf = p.cfg.slowReadBuf
		}
		t := p.targets[[2]string{p.cfg.urlOf(i), p.cfg.nspOf(i)}]
		err := p.poller.Dial(t, opt, func(pkt []byte) { p.onEvent(c, pkt) }, func(err error) { p.ended(c, err) },
			func(raw *eio.RawConn, err error) {
				if err != nil {
					failed(i, attempt, err)
					return
				}
				c.raw = raw
				c.alive.Store(true)
				p.connected.Add(1)
				p.clients[i] = c
				wg.Done()
				startNext()
			})
		if err != nil {
			failed(i, attempt, err)
		}
	}
	for range min(p.cfg.rampConc, to-from) {
		startNext()
	}
	wg.Wait()
	return int(fail.Load()), int(miss.Load())
}

// closeAll ends every client: WebSocket clients drop the TCP connection,
// polling clients send CLOSE (as disconnect() does) and end their poll.
func (p *pool) closeAll() {
	if p.closed {
		return
	}
	p.closed = true
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range p.clients {
		if c == nil {
			continue
		}
		p.resume(c)
		if c.raw != nil {
			_ = c.raw.Close()
			continue
		}
		if c.ws != nil {
			_ = c.ws.Close()
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = c.poll.Close(ctx)
			c.stop()
		}()
	}
	wg.Wait()
	if p.poller != nil {
		p.poller.Close()
	}
}

// pause makes c stop reading: the server's writes to it back up.
func (p *pool) pause(c *client) {
	if c.raw != nil {
		p.poller.Pause(c.raw)
		return
	}
	c.paused.Store(true) // the reader blocks at its next message
}

// resume undoes pause.
func (p *pool) resume(c *client) {
	if c.raw != nil {
		p.poller.Resume(c.raw)
		return
	}
	if c.paused.CompareAndSwap(true, false) {
		close(c.resume)
	}
}

// message is the text of one benchmark chat message:
// "<point>.<sender>.<seq>.<sentNs>.xxxx…" padded with x to the message size.
type message struct {
	point, sender int
	seq, sentNs   int64
}

func appendText(dst []byte, m message, size int) []byte {
	start := len(dst)
	dst = strconv.AppendInt(dst, int64(m.point), 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(m.sender), 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, m.seq, 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, m.sentNs, 10)
	if len(dst)-start < size {
		dst = append(dst, '.')
		for len(dst)-start < size {
			dst = append(dst, 'x')
		}
	}
	return dst
}

func parseText(b []byte) (message, bool) {
	var f [4]int64
	k := 0
	n, digits := int64(0), 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			n = n*10 + int64(c-'0')
			digits++
			continue
		}
		if c != '.' || digits == 0 {
			return message{}, false
		}
		f[k] = n
		k++
		n, digits = 0, 0
		if k == 4 {
			break
		}
	}
	if k < 4 {
		if k != 3 || digits == 0 {
			return message{}, false
		}
		f[3] = n
	}
	return message{point: int(f[0]), sender: int(f[1]), seq: f[2], sentNs: f[3]}, true
}
