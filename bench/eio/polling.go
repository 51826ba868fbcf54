package eio

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// PollConn is one Socket.IO client on the HTTP long-polling transport only
// (io(url, {transports: ["polling"]})), joined to the main namespace.
// ReadLoop must run on one goroutine; Emit may be called from any goroutine
// (posts are serialized: Engine.IO refuses overlapping data requests).
type PollConn struct {
	SID, SocketID string
	// Pings counts the server's pings answered.
	Pings atomic.Int64

	hc      *http.Client
	url     string // endpoint?EIO=4&transport=polling&sid=...
	pmu     sync.Mutex
	pending [][]byte // packets that arrived with the CONNECT answer
	buf     bytes.Buffer
}

// DialPolling performs the polling handshake: GET (OPEN), POST "40", GET
// until the CONNECT answer. hc should allow two connections per client (one
// long-poll GET and one POST), as a browser does.
func DialPolling(ctx context.Context, hc *http.Client, endpoint string) (*PollConn, error) {
	return DialPollingIn(ctx, hc, endpoint, "/")
}

// DialPollingIn is DialPolling joining namespace nsp instead of "/".
func DialPollingIn(ctx context.Context, hc *http.Client, endpoint, nsp string) (*PollConn, error) {
	base := endpoint + "?EIO=4&transport=polling"
	body, err := pollGet(ctx, hc, base, nil)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if len(body) == 0 || body[0] != typeOpen {
		return nil, fmt.Errorf("handshake answered %q, want OPEN", body)
	}
	sid, err := sidFromJSON(body[1:])
	if err != nil {
		return nil, err
	}
	c := &PollConn{SID: sid, hc: hc, url: base + "&sid=" + sid}
	if err := c.post(ctx, connectPacket(nsp)); err != nil {
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	for {
		body, err := pollGet(ctx, hc, c.url, &c.buf)
		if err != nil {
			return nil, fmt.Errorf("read CONNECT: %w", err)
		}
		connected := false
		for _, pkt := range bytes.Split(body, []byte{recordSeparator}) {
			switch {
			case connected:
				c.pending = append(c.pending, bytes.Clone(pkt))
			case len(pkt) >= 2 && pkt[0] == '4' && pkt[1] == '0':
				c.SocketID, _ = sidFromJSON(pkt[2:])
				connected = true
			case len(pkt) >= 2 && pkt[0] == '4' && pkt[1] == '4':
				return nil, fmt.Errorf("CONNECT refused: %s", pkt[2:])
			case len(pkt) == 1 && pkt[0] == typePing:
				if err := c.post(ctx, []byte{typePong}); err != nil {
					return nil, err
				}
			}
		}
		if connected {
			return c, nil
		}
	}
}

// pollGet issues one GET and returns its body (read into buf when not nil;
// valid until the next call with the same buf).
func pollGet(ctx context.Context, hc *http.Client, url string, buf *bytes.Buffer) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if buf == nil {
		buf = &bytes.Buffer{}
	}
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusBadRequest {
			return nil, fmt.Errorf("%w: GET %s: %s", ErrClosed, resp.Status, strings.TrimSpace(buf.String()))
		}
		return nil, fmt.Errorf("GET %s: %s", resp.Status, strings.TrimSpace(buf.String()))
	}
	return buf.Bytes(), nil
}

// post sends one payload (one packet) and checks the "ok" answer.
func (c *PollConn) post(ctx context.Context, pkt []byte) error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(pkt))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// ReadLoop long-polls until ctx ends or the session is closed, answering
// pings and passing every Socket.IO EVENT packet (42[...]) to onEvent. The
// slice is only valid during the call.
func (c *PollConn) ReadLoop(ctx context.Context, onEvent func(pkt []byte)) error {
	handle := func(pkt []byte) (bool, error) {
		switch {
		case len(pkt) >= 2 && pkt[0] == typeMessage && pkt[1] == '2':
			onEvent(pkt)
		case len(pkt) >= 2 && pkt[0] == typeMessage && pkt[1] == '1':
			return true, ErrClosed
		case len(pkt) == 1 && pkt[0] == typePing:
			c.Pings.Add(1)
			return false, c.post(ctx, []byte{typePong})
		case len(pkt) >= 1 && pkt[0] == typeClose:
			return true, ErrClosed
		}
		return false, nil
	}
	for _, pkt := range c.pending {
		if stop, err := handle(pkt); stop || err != nil {
			return err
		}
	}
	c.pending = nil
	for {
		body, err := pollGet(ctx, c.hc, c.url, &c.buf)
		if err != nil {
			return err
		}
		for len(body) > 0 {
			pkt := body
			if i := bytes.IndexByte(body, recordSeparator); i >= 0 {
				pkt, body = body[:i], body[i+1:]
			} else {
				body = nil
			}
			if stop, err := handle(pkt); stop || err != nil {
				return err
			}
		}
	}
}

// Emit posts one Engine.IO packet such as AppendUserMessage's output.
func (c *PollConn) Emit(ctx context.Context, pkt []byte) error { return c.post(ctx, pkt) }

// Close sends the Engine.IO CLOSE packet, as the client's disconnect() does.
// Cancel the ReadLoop's context as well to end the outstanding GET.
func (c *PollConn) Close(ctx context.Context) error { return c.post(ctx, []byte{typeClose}) }
