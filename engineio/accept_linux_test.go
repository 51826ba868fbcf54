package engineio

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// acceptPair is a connection an AcceptListener accepted, and its client.
func acceptPair(tb testing.TB, ln net.Listener) (*acceptedConn, net.Conn) {
	tb.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	c, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	ac, ok := c.(*acceptedConn)
	if !ok {
		tb.Fatalf("Accept returned %T", c)
	}
	tb.Cleanup(func() { _ = ac.Close() })
	return ac, client
}

func newAcceptListener(tb testing.TB, addr string) net.Listener {
	tb.Helper()
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	ln := AcceptListener(tl)
	if _, ok := ln.(*acceptListener); !ok {
		tb.Fatalf("AcceptListener returned %T", ln)
	}
	tb.Cleanup(func() { _ = ln.Close() })
	return ln
}

// openFDs is the number of the process's open descriptors.
func openFDs(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// fdOpen reports whether fd is an open descriptor.
func fdOpen(fd int) bool {
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	return errno == 0
}

// readFD reads what the client sent through the raw descriptor, waiting
// for it to arrive.
func readFD(tb testing.TB, fd int, want string) {
	tb.Helper()
	buf := make([]byte, 64)
	deadline := time.Now().Add(waitTimeout)
	for {
		n, err := syscall.Read(fd, buf)
		if err == nil {
			if got := string(buf[:n]); got != want {
				tb.Fatalf("read %q through the descriptor, want %q", got, want)
			}
			return
		}
		if err != syscall.EAGAIN || time.Now().After(deadline) {
			tb.Fatalf("read through the descriptor: %v", err)
		}
		_, _ = ppoll(fd, pollIn, time.Until(deadline))
	}
}

// TestAcceptListener: connections come with their addresses, write on
// the raw socket, become connections of Go's poller when read (keeping the
// deadlines set before), and leave no descriptor behind; Close ends
// Accept with net.ErrClosed.
func TestAcceptListener(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::]:0"} {
		t.Run(addr, func(t *testing.T) {
			before := openFDs(t)
			ln := newAcceptListener(t, addr)
			ac, client := acceptPair(t, ln)
			if got, want := ac.RemoteAddr().String(), client.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr %s, want %s", got, want)
			}
			if got, want := ac.LocalAddr().String(), client.RemoteAddr().String(); got != want {
				t.Errorf("LocalAddr %s, want %s", got, want)
			}
			ac.mu.Lock()
			nodelay, err := syscall.GetsockoptInt(ac.fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
			ac.mu.Unlock()
			if err != nil || nodelay == 0 {
				t.Errorf("TCP_NODELAY %d, %v; want set", nodelay, err)
			}
			if n, err := ac.Write([]byte("from the server\n")); n != 16 || err != nil {
				t.Fatalf("Write: %d, %v", n, err)
			}
			_ = client.SetReadDeadline(time.Now().Add(waitTimeout))
			buf := make([]byte, 64)
			if n, err := io.ReadAtLeast(client, buf, 16); err != nil || string(buf[:n]) != "from the server\n" {
				t.Fatalf("client read %q, %v", buf[:n], err)
			}
			// A read deadline set before the connection is one of Go's
			// poller is kept: this Read makes it one, and times out.
			if err := ac.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			if _, err := ac.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read with a past deadline: %v, want a timeout", err)
			}
			if ac.NetConn() == nil {
				t.Fatal("no connection of Go's poller after a Read")
			}
			_ = ac.SetReadDeadline(time.Time{})
			if _, err := client.Write([]byte("to the server")); err != nil {
				t.Fatal(err)
			}
			if n, err := io.ReadAtLeast(ac, buf, 13); err != nil || string(buf[:n]) != "to the server" {
				t.Fatalf("server read %q, %v", buf[:n], err)
			}
			if err := ac.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := ac.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close: %v, want net.ErrClosed", err)
			}
			if n, err := client.Read(buf); err != io.EOF {
				t.Errorf("client read %q, %v after Close; want EOF", buf[:n], err)
			}

			accepted := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if c != nil {
					_ = c.Close()
				}
				accepted <- err
			}()
			_ = ln.Close()
			select {
			case err := <-accepted:
				var oe *net.OpError
				if !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "accept" {
					t.Errorf("Accept after Close: %v, want an accept *net.OpError for net.ErrClosed", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("Accept did not return after Close")
			}
			_ = client.Close()
			if after := openFDs(t); after != before {
				t.Errorf("%d descriptors open, %d before", after, before)
			}
		})
	}
}

// TestAcceptedConnLend: while the front has the descriptor (lent), the
// connection's Close leaves it open, for the front's unlend to close; one
// the engine took stays open after the connection's Close.
func TestAcceptedConnLend(t *testing.T) {
	ln := newAcceptListener(t, "127.0.0.1:0")

	t.Run("closed while lent", func(t *testing.T) {
		ac, client := acceptPair(t, ln)
		fd := ac.lend()
		if fd < 0 {
			t.Fatal("lend: -1")
		}
		if ac.lend() != -1 {
			t.Error("lent twice")
		}
		if ac.materialize() != nil {
			t.Error("a lent connection became one of Go's poller")
		}
		if err := ac.Close(); err != nil {
			t.Fatal(err)
		}
		_, _ = client.Write([]byte("x"))
		readFD(t, fd, "x") // still open, and the client's
		ac.unlend()
		if fdOpen(fd) {
			t.Error("the descriptor is open after unlend of a closed connection")
		}
		_ = client.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := client.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("client read: %v, want EOF", err)
		}
	})

	t.Run("taken", func(t *testing.T) {
		ac, client := acceptPair(t, ln)
		fd := ac.lend()
		ac.take()
		if err := ac.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := ac.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after take and Close: %v", err)
		}
		_, _ = client.Write([]byte("y"))
		readFD(t, fd, "y") // the taker's still
		_ = syscall.Close(fd)
	})

	t.Run("reclaimed", func(t *testing.T) {
		// A hijacker that reads: reclaim gives the descriptor back, and the
		// connection becomes one of Go's poller.
		ac, client := acceptPair(t, ln)
		fd := ac.lend()
		reclaimed := 0
		ac.setReclaim(func() { reclaimed++; ac.unlend() })
		_, _ = client.Write([]byte("z"))
		_ = ac.SetReadDeadline(time.Now().Add(waitTimeout))
		buf := make([]byte, 4)
		if n, err := ac.Read(buf); err != nil || string(buf[:n]) != "z" {
			t.Fatalf("Read: %q, %v", buf[:n], err)
		}
		if reclaimed != 1 || ac.NetConn() == nil {
			t.Errorf("reclaimed %d times, NetConn %v; want once, and a connection of Go's poller", reclaimed, ac.NetConn())
		}
		if _, ok := ac.NetConn().(*net.TCPConn); !ok {
			t.Errorf("NetConn is %T", ac.NetConn())
		}
		_ = fd
	})
}

// TestAcceptedConnWrite: a Write that finds the socket's buffer full
// waits for room, up to the write deadline, and a Close ends it.
func TestAcceptedConnWrite(t *testing.T) {
	ln := newAcceptListener(t, "127.0.0.1:0")
	big := []byte(strings.Repeat("w", 8<<20)) // more than both sockets' buffers hold

	t.Run("deadline", func(t *testing.T) {
		ac, _ := acceptPair(t, ln)
		_ = ac.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := ac.Write(big)
		if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= len(big) {
			t.Fatalf("Write to a client that does not read: %d, %v; want part of it and a timeout", n, err)
		}
	})

	t.Run("read by the client", func(t *testing.T) {
		ac, client := acceptPair(t, ln)
		done := make(chan int64, 1)
		go func() {
			n, _ := io.Copy(io.Discard, client)
			done <- n
		}()
		if n, err := ac.Write(big); n != len(big) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		_ = ac.Close()
		select {
		case n := <-done:
			if n != int64(len(big)) {
				t.Errorf("client read %d bytes, want %d", n, len(big))
			}
		case <-time.After(waitTimeout):
			t.Fatal("the client did not read to the end")
		}
	})

	t.Run("closed", func(t *testing.T) {
		ac, _ := acceptPair(t, ln)
		errc := make(chan error, 1)
		go func() {
			_, err := ac.Write(big)
			errc <- err
		}()
		_ = ac.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write ended by Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Write did not return after Close")
		}
	})
}
