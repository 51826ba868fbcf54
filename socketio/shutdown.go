package socketio

import (
	"context"
	"sync"
)

// clientCount counts the server's clients whose OnClose has not returned,
// for Shutdown.
type clientCount struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed, and replaced, whenever n drops to 0
}

func (c *clientCount) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *clientCount) done() {
	c.mu.Lock()
	c.n--
	if c.n == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
	c.mu.Unlock()
}

// wait waits until no client is left, or ctx ends.
func (c *clientCount) wait(ctx context.Context) error {
	c.mu.Lock()
	if c.n == 0 {
		c.mu.Unlock()
		return nil
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown is Close, then waits until every session is gone and every
// socket's disconnect handlers have run, or until ctx ends (it then
// returns ctx's error; the sessions still go, within the engine's
// CloseTimeout). Each session is given its queued packets, then a
// WebSocket close frame or a polling CLOSE packet, so clients reconnect
// (to another node, during a rolling restart); see Close. Typical use,
// with http.Server's own Shutdown:
//
//	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//	defer cancel()
//	_ = io.Shutdown(ctx)   // the Socket.IO sessions (hijacked WebSockets too)
//	_ = httpSrv.Shutdown(ctx)
func (s *Server) Shutdown(ctx context.Context) error {
	s.Close()
	if err := s.eio.Wait(ctx); err != nil {
		return err
	}
	return s.clients.wait(ctx)
}
