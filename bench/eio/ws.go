package eio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// NewWSDialer returns a WebSocket dialer sized for many mostly idle clients:
// small read buffers and one write buffer pool shared by every connection.
// dial, when not nil, opens the TCP connections (to pick source addresses).
func NewWSDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   dial,
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   2048,
		WriteBufferSize:  2048,
		WriteBufferPool:  &sync.Pool{},
	}
}

// WSConn is one Socket.IO client on the WebSocket transport, joined to the
// main namespace. ReadLoop must run on one goroutine; Emit may be called from
// any goroutine.
type WSConn struct {
	// SID is the Engine.IO session id; SocketID the Socket.IO id of "/".
	SID, SocketID string
	// Pings counts the server's pings answered.
	Pings atomic.Int64

	ws  *websocket.Conn
	wmu sync.Mutex // one writer at a time (gorilla's rule)
	buf []byte
}

// WSURL turns an HTTP endpoint such as http://127.0.0.1:9000/socket.io/ into
// the Engine.IO v4 WebSocket URL.
func WSURL(endpoint string) string {
	u := endpoint
	switch {
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + u[len("http://"):]
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + u[len("https://"):]
	}
	return u + "?EIO=4&transport=websocket"
}

// DialWS opens a WebSocket-only session (no polling first, as
// io(url, {transports: ["websocket"]}) does), reads the OPEN packet, sends
// CONNECT for "/" and waits for the server's CONNECT answer.
func DialWS(ctx context.Context, d *websocket.Dialer, endpoint string) (*WSConn, error) {
	return DialWSIn(ctx, d, endpoint, "/")
}

// DialWSIn is DialWS joining namespace nsp instead of "/".
func DialWSIn(ctx context.Context, d *websocket.Dialer, endpoint, nsp string) (*WSConn, error) {
	ws, resp, err := d.DialContext(ctx, WSURL(endpoint), nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	c := &WSConn{ws: ws, buf: make([]byte, 512)}
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(dl)
	}
	pkt, err := c.next()
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("read OPEN: %w", err)
	}
	if len(pkt) == 0 || pkt[0] != typeOpen {
		ws.Close()
		return nil, fmt.Errorf("first packet %q, want OPEN", pkt)
	}
	if c.SID, err = sidFromJSON(pkt[1:]); err != nil {
		ws.Close()
		return nil, err
	}
	if err := c.Emit(connectPacket(nsp)); err != nil {
		ws.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	for {
		pkt, err := c.next()
		if err != nil {
			ws.Close()
			return nil, fmt.Errorf("read CONNECT: %w", err)
		}
		switch {
		case len(pkt) >= 2 && pkt[0] == '4' && pkt[1] == '0':
			c.SocketID, _ = sidFromJSON(pkt[2:])
			_ = ws.SetReadDeadline(time.Time{})
			return c, nil
		case len(pkt) >= 2 && pkt[0] == '4' && pkt[1] == '4':
			ws.Close()
			return nil, fmt.Errorf("CONNECT refused: %s", pkt[2:])
		case len(pkt) == 1 && pkt[0] == typePing:
			if err := c.Emit([]byte{typePong}); err != nil {
				ws.Close()
				return nil, err
			}
		}
	}
}

// next reads one WebSocket message into the connection's buffer (reused:
// the result is valid until the next call).
func (c *WSConn) next() ([]byte, error) {
	_, r, err := c.ws.NextReader()
	if err != nil {
		return nil, err
	}
	n := 0
	for {
		if n == len(c.buf) {
			c.buf = append(c.buf, make([]byte, len(c.buf))...)
		}
		m, err := r.Read(c.buf[n:])
		n += m
		if err == io.EOF {
			return c.buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// ReadLoop reads until the session ends, answering pings and passing every
// Socket.IO EVENT packet (42[...], without the Engine.IO type byte stripped)
// to onEvent. The slice is only valid during the call. It returns ErrClosed
// when the server ended the session, or the read error.
func (c *WSConn) ReadLoop(onEvent func(pkt []byte)) error {
	for {
		pkt, err := c.next()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return ErrClosed
			}
			return err
		}
		if len(pkt) == 0 {
			continue
		}
		switch pkt[0] {
		case typeMessage:
			if len(pkt) >= 2 && pkt[1] == '2' {
				onEvent(pkt)
			} else if len(pkt) >= 2 && pkt[1] == '1' {
				return ErrClosed
			}
		case typePing:
			c.Pings.Add(1)
			if err := c.Emit([]byte{typePong}); err != nil {
				return err
			}
		case typeClose:
			return ErrClosed
		}
	}
}

// Emit sends one Engine.IO packet (for example AppendUserMessage's output,
// or "3") as a text frame.
func (c *WSConn) Emit(pkt []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, pkt)
}

// SetReadDeadline bounds the next reads (see net.Conn).
func (c *WSConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// Close drops the TCP connection at once, as a closed browser tab does.
func (c *WSConn) Close() error { return c.ws.Close() }
