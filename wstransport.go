package main

import (
	"bufio"
	"encoding/binary"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// sendLimits bound what the server keeps queued for one client.
type sendLimits struct {
	packets int   // most queued packets
	bytes   int64 // most queued payload bytes
	// writeTimeout bounds one write to the socket; a client that accepts no
	// bytes for that long is gone.
	writeTimeout time.Duration
}

// wsBuilder makes wsTransport the engine's "websocket" transport.
type wsBuilder struct {
	limits sendLimits
	log    *slog.Logger
}

var _ transports.TransportCtor = (*wsBuilder)(nil)

func (*wsBuilder) Name() string          { return transports.WEBSOCKET }
func (*wsBuilder) HandlesUpgrades() bool { return true }
func (*wsBuilder) UpgradesTo() []string  { return nil }

func (b *wsBuilder) New(ctx *types.HttpContext) transports.Transport {
	t := &wsTransport{Websocket: transports.MakeWebSocket(), limits: b.limits, log: b.log}
	t.Prototype(t)
	netConn := ctx.Websocket.NetConn()
	if lc, ok := netConn.(*lockedConn); ok {
		t.conn = lc
	} else {
		// Reached without wsUpgradeWriter (not through our routes): gorilla's own
		// control-frame writes are then not serialised with ours.
		t.conn = &lockedConn{Conn: netConn}
	}
	// Answer pings through our queue, in order with everything else.
	ctx.Websocket.SetPingHandler(func(data string) error {
		t.enqueue(ws.PongMessage, []byte(data))
		return nil
	})
	_ = t.Once("close", func(...any) { t.release() })
	if ctx.Query().Peek("sid") == "" {
		// A fresh WebSocket session: the engine never buffers for it.
		t.direct.Store(true)
	} else {
		// An upgrade: packets the engine buffered while polling are flushed to
		// us after the client's UPGRADE packet; direct writes must wait for that.
		_ = t.On("packet", func(args ...any) {
			if p, ok := args[0].(*packet.Packet); ok && p.Type == packet.UPGRADE {
				t.sawUpgrade.Store(true)
			}
		})
	}
	t.Construct(ctx)
	return t
}

// wsTransport is the Engine.IO WebSocket transport with a bounded send queue.
//
// Reading is the library's (its reader goroutine decodes frames and emits
// packets). Writing is ours: Send, called by the engine socket under its
// flush lock, only appends frames to the queue; one writer goroutine, started
// when the queue becomes non-empty and gone when it is drained, writes every
// queued frame with a single writev. The transport is always writable, so the
// engine never buffers for it: the queue is the one place packets wait, and
// it is bounded. A client that lets it overflow (it stopped reading) is
// disconnected. Broadcast frames share their payload bytes across recipients.
type wsTransport struct {
	transports.Websocket
	conn   *lockedConn
	limits sendLimits
	log    *slog.Logger

	mu          sync.Mutex  // guards the fields below
	queue       []wsFrame   // frames waiting for the writer
	spare       []wsFrame   // the writer's last batch, reused
	bufs        net.Buffers // the writer's iovecs, reused; only the running writer touches it
	queuedBytes int64
	writing     bool // a writer goroutine is running
	closed      bool // no more frames are accepted

	// direct is set once the engine holds no packet for this transport that
	// was queued before now, so a broadcast may enqueue frames here itself
	// (sendDirect) without overtaking them. sawUpgrade is the step before it
	// for an upgraded session: the first Send after the UPGRADE packet carries
	// whatever the engine buffered, and sets direct.
	direct     atomic.Bool
	sawUpgrade atomic.Bool
}

// wsFrame is one WebSocket frame: its header and a payload that may be shared.
type wsFrame struct {
	hdr     [10]byte
	hdrLen  uint8
	payload []byte
}

// Send queues packets for the writer. It never blocks on the network.
func (t *wsTransport) Send(packets []*packet.Packet) {
	for _, p := range packets {
		if p.Options != nil && p.Options.WsPreEncodedFrame != nil {
			op := ws.BinaryMessage
			if _, ok := p.Options.WsPreEncodedFrame.(*types.StringBuffer); ok {
				op = ws.TextMessage
			}
			t.enqueue(op, p.Options.WsPreEncodedFrame.Bytes())
			continue
		}
		data, err := t.Parser().EncodePacket(p, t.SupportsBinary())
		if err != nil {
			t.fail("encode error", err)
			return
		}
		op := ws.BinaryMessage
		if _, ok := data.(*types.StringBuffer); ok {
			op = ws.TextMessage
		}
		t.enqueue(op, data.Bytes())
	}
	t.Emit("drain") // the engine socket's per-flush callbacks
	if !t.direct.Load() && t.sawUpgrade.Load() {
		t.direct.Store(true)
	}
}

// sendDirect queues a text frame built by a broadcast, bypassing the engine
// socket. It reports false when the transport cannot take it that way yet.
func (t *wsTransport) sendDirect(payload []byte) bool {
	if !t.direct.Load() {
		return false
	}
	t.enqueue(ws.TextMessage, payload)
	return true
}

// enqueue appends one frame, starting the writer if none runs.
func (t *wsTransport) enqueue(opcode int, payload []byte) {
	f := wsFrame{payload: payload}
	f.hdr[0] = 0x80 | byte(opcode) // FIN, no mask: server frames
	switch n := len(payload); {
	case n < 126:
		f.hdr[1], f.hdrLen = byte(n), 2
	case n <= 0xFFFF:
		f.hdr[1], f.hdrLen = 126, 4
		binary.BigEndian.PutUint16(f.hdr[2:], uint16(n))
	default:
		f.hdr[1], f.hdrLen = 127, 10
		binary.BigEndian.PutUint64(f.hdr[2:], uint64(n))
	}

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	if len(t.queue) >= t.limits.packets || t.queuedBytes+int64(len(payload)) > t.limits.bytes {
		queued, bytes := len(t.queue), t.queuedBytes
		t.mu.Unlock()
		t.log.Warn("disconnecting slow client: send queue full",
			"sid", t.Sid(), "transport", "websocket", "queued_packets", queued, "queued_bytes", bytes,
			"reason", "slow consumer")
		t.fail("send queue full", nil)
		return
	}
	t.queue = append(t.queue, f)
	t.queuedBytes += int64(len(payload))
	start := !t.writing
	t.writing = true
	t.mu.Unlock()
	if start {
		go t.writeLoop()
	}
}

// writeLoop writes queued frames until the queue is empty. Only one runs at a
// time per transport (the writing flag), so frames keep their order.
func (t *wsTransport) writeLoop() {
	bufs := t.bufs // owned by the one running writer
	for {
		t.mu.Lock()
		if len(t.queue) == 0 || t.closed {
			t.bufs = bufs // before the next writer may start
			t.writing = false
			t.mu.Unlock()
			return
		}
		batch := t.queue
		t.queue, t.spare = t.spare[:0], nil
		t.queuedBytes = 0
		t.mu.Unlock()

		bufs = bufs[:0]
		for i := range batch {
			bufs = append(bufs, batch[i].hdr[:batch[i].hdrLen], batch[i].payload)
		}
		err := t.conn.writeBuffers(bufs, t.limits.writeTimeout)
		clear(batch) // drop payload references
		clear(bufs[:cap(bufs)])
		t.mu.Lock()
		t.spare = batch[:0]
		t.mu.Unlock()
		if err != nil {
			t.fail("write error", err)
			return
		}
	}
}

// fail stops accepting frames and closes the transport; the engine socket
// sees the close and the Socket.IO socket disconnects with "transport close".
func (t *wsTransport) fail(msg string, err error) {
	t.mu.Lock()
	already := t.closed
	t.closed = true
	t.mu.Unlock()
	if already {
		return
	}
	if err != nil {
		t.log.Debug("websocket "+msg, "sid", t.Sid(), "err", err)
	}
	// Not inline: Send runs under the engine socket's flush lock, and closing
	// re-enters the engine socket.
	go t.Close()
}

// release drops queued frames once the transport is closed.
func (t *wsTransport) release() {
	t.mu.Lock()
	t.closed = true
	t.queue, t.spare, t.queuedBytes = nil, nil, 0
	t.mu.Unlock()
}

// lockedConn is a hijacked WebSocket connection whose writes are serialised,
// so gorilla's own control frames (close on a protocol error) never interleave
// with the frames our writer sends.
type lockedConn struct {
	net.Conn
	mu       sync.Mutex
	deadline time.Time // the write deadline set last, under mu
}

func (c *lockedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(p)
}

// SetWriteDeadline is gorilla's (for its control frames); it is recorded so
// writeBuffers knows the deadline in force.
func (c *lockedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	return c.Conn.SetWriteDeadline(t)
}

// writeBuffers writes bufs with one writev (on TCP) under the write lock.
func (c *lockedConn) writeBuffers(bufs net.Buffers, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Moving the deadline costs a runtime call per write; move it only once
	// half of the timeout has passed, so a write still has at least half.
	if now := time.Now(); timeout > 0 && c.deadline.Sub(now) < timeout/2 {
		c.deadline = now.Add(timeout)
		_ = c.Conn.SetWriteDeadline(c.deadline)
	}
	_, err := bufs.WriteTo(c.Conn)
	return err
}

// wsUpgradeWriter hands gorilla a lockedConn when it hijacks the connection,
// and then lets go of net/http's response: the library keeps the request
// context (and so this writer) for the whole session, and the response holds
// about 8 KB of net/http buffers that a hijacked connection no longer uses.
type wsUpgradeWriter struct {
	mu sync.Mutex
	w  http.ResponseWriter // nil once hijacked
}

func (u *wsUpgradeWriter) inner() http.ResponseWriter {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.w
}

func (u *wsUpgradeWriter) Header() http.Header {
	if w := u.inner(); w != nil {
		return w.Header()
	}
	return http.Header{}
}

func (u *wsUpgradeWriter) Write(p []byte) (int, error) {
	if w := u.inner(); w != nil {
		return w.Write(p)
	}
	return 0, http.ErrHijacked
}

func (u *wsUpgradeWriter) WriteHeader(code int) {
	if w := u.inner(); w != nil {
		w.WriteHeader(code)
	}
}

func (u *wsUpgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w := u.inner()
	if w == nil {
		return nil, nil, http.ErrHijacked
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	u.mu.Lock()
	u.w = nil
	u.mu.Unlock()
	return &lockedConn{Conn: c}, brw, nil
}
