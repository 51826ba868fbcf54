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
