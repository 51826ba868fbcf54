package engineio

import (
	"syscall"
	"testing"
	"time"
)

// TestParkedWaitWakes: the epoll loop parks in Go's network poller
// (parkedWait), so it relies on the kernel waking an epoll set nested in
// another on every way an item becomes ready: an EPOLL_CTL_ADD of a socket
// that is ready already, data arriving after the ADD, and an
// EPOLL_CTL_MOD that asks for an event that is there (waitOut asks for
// EPOLLOUT that way). Each round starts the wait first and checks that it
// returns the event.
func TestParkedWaitWakes(t *testing.T) {
	for round := range 600 {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		wait, f, err := parkedWait(epfd)
		if err != nil {
			t.Fatal(err)
		}
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		got := make(chan []syscall.EpollEvent, 1)
		go func() {
			events := make([]syscall.EpollEvent, 4)
			got <- events[:wait(events)]
		}()
		in := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p[0])}
		switch round % 3 {
		case 0: // ready before the ADD
			mustWrite(t, p[1])
			mustCtl(t, epfd, syscall.EPOLL_CTL_ADD, p[0], in)
		case 1: // ready after the ADD
			mustCtl(t, epfd, syscall.EPOLL_CTL_ADD, p[0], in)
			mustWrite(t, p[1])
		case 2: // ready for an event the MOD then asks for
			mustCtl(t, epfd, syscall.EPOLL_CTL_ADD, p[0], syscall.EpollEvent{Events: syscall.EPOLLOUT, Fd: int32(p[0])})
			mustWrite(t, p[1])
			mustCtl(t, epfd, syscall.EPOLL_CTL_MOD, p[0], in)
		}
		select {
		case evs := <-got:
			if len(evs) != 1 || evs[0].Fd != int32(p[0]) || evs[0].Events&syscall.EPOLLIN == 0 {
				t.Fatalf("round %d: wait returned %+v", round, evs)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d (case %d): the parked wait was not woken", round, round%3)
		}
		f.Close()
		syscall.Close(p[0])
		syscall.Close(p[1])
	}
}

func mustWrite(t *testing.T, fd int) {
	t.Helper()
	if _, err := syscall.Write(fd, []byte{1}); err != nil {
		t.Fatal(err)
	}
}

func mustCtl(t *testing.T, epfd, op, fd int, ev syscall.EpollEvent) {
	t.Helper()
	if err := syscall.EpollCtl(epfd, op, fd, &ev); err != nil {
		t.Fatal(err)
	}
}

// TestEpollStaleFrontEntry: a WebSocket that took the front's socket
// (frontHijacked.takeFD) and ends before it registers (the OPEN packet's
// write failed because the client had gone, the data that came with the
// handshake was a protocol error, or the session could not open) must
// clear the front's table entry of that socket when it removes itself; and
// a new socket whose number an entry of another socket still holds must
// be added to the epoll set (EPOLL_CTL_ADD), not taken for an adoption of
// the front's socket (EPOLL_CTL_MOD, which fails with ENOENT). Before, the
// entry stayed, the kernel gave its number to the next connection, and the
// front closed that one with its request unread: a reset, seen in one CI
// run of TestHostileMaxConnections.
func TestEpollStaleFrontEntry(t *testing.T) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(epfd)
	e := &epoll{fd: epfd}
	pair := func() (int, int) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(fds[1]) })
		return fds[0], fds[1]
	}

	// The front's socket, taken by a WebSocket that ends unregistered.
	fd, _ := pair()
	front := &frontConn{fc: &fdConn{fd: fd}}
	if err := e.add(front, front.fc); err != nil {
		t.Fatal(err)
	}
	ws := &wsConn{raw: front.fc} // takeFD hands the front's fdConn over
	e.remove(ws, front.fc)
	if e.conns[fd] != nil {
		t.Errorf("the front's entry of a socket its WebSocket removed is left: %T", e.conns[fd])
	}
	front.fc.close()

	// The entry left as the code before did, and a new socket with the
	// same number (dup3 puts one there).
	e.conns[fd] = front
	_, peer := pair()
	if err := syscall.Dup3(peer, fd, syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	next := &frontConn{fc: &fdConn{fd: fd}}
	if err := e.add(next, next.fc); err != nil {
		t.Fatalf("a new socket with a stale entry's number: %v", err)
	}
	if e.conns[fd] != next {
		t.Errorf("entry %T, want the new connection", e.conns[fd])
	}
	// It is in the epoll set: MOD succeeds only for a registered socket.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_MOD, fd, &ev); err != nil {
		t.Errorf("the new socket is not in the epoll set: %v", err)
	}

	// Adoption still works: a WebSocket taking this front connection's
	// fdConn replaces its entry (EPOLL_CTL_MOD of the registered socket).
	taker := &wsConn{raw: next.fc}
	if err := e.add(taker, next.fc); err != nil {
		t.Fatalf("adopting the front's socket: %v", err)
	}
	if e.conns[fd] != taker {
		t.Errorf("entry %T after adoption, want the WebSocket", e.conns[fd])
	}
}
