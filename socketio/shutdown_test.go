package socketio

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestShutdownWaits: Shutdown closes every session and returns once they
// are gone and their sockets' disconnect handlers have run; a ctx that
// ends first gives its error.
func TestShutdownWaits(t *testing.T) {
	release := make(chan struct{})
	disconnected := make(chan string, 4)
	s := startIO(t, Options{}, func(io *Server) {
		io.OnConnection(func(so *Socket) {
			so.OnDisconnect(func(reason string, _ error) {
				<-release
				disconnected <- reason
			})
		})
	})
	c1, _ := connected(t, s, wsTransport, "/", "")
	c2, _ := connected(t, s, pollingTransport, "/", "")

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with the handlers blocked = %v, want DeadlineExceeded", err)
	}
	close(release)
	ctx, cancel2 := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel2()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	// Both handlers ran before Shutdown returned: their reasons are there.
	for range 2 {
		select {
		case r := <-disconnected:
			if r != ReasonServerShuttingDown {
				t.Errorf("reason %q", r)
			}
		default:
			t.Fatal("Shutdown returned before a disconnect handler ran")
		}
	}
	if n := s.Engine().Len(); n != 0 {
		t.Errorf("%d sessions after Shutdown", n)
	}
	c1.waitClosed()
	c2.waitClosed()
}
