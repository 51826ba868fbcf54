package engineio

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
)

// TestFdConnWritev: writev writes every buffer, in order, whatever their
// number: one (a write), a few (iovecs on the stack), more than that (from
// iovecPool) and more than one call takes (maxIovecs), empty ones skipped.
func TestFdConnWritev(t *testing.T) {
	for _, n := range []int{0, 1, 2, stackIovecs, stackIovecs + 1, 2*maxIovecs + 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			fc := &fdConn{fd: fds[0]}
			peer := os.NewFile(uintptr(fds[1]), "peer")
			t.Cleanup(func() { fc.close(); peer.Close() })
			var bufs [][]byte
			var want bytes.Buffer
			for i := range n {
				b := []byte(fmt.Sprintf("<%d>", i))
				if i%5 == 3 {
					b = nil
				}
				bufs = append(bufs, b)
				want.Write(b)
			}
			got := make(chan []byte)
			go func() { b, _ := io.ReadAll(peer); got <- b }()
			written, err := fc.writev(bufs)
			if err != nil || written != want.Len() {
				t.Fatalf("writev = %d, %v; want %d, nil", written, err, want.Len())
			}
			fc.shutdownWrite()
			if b := <-got; !bytes.Equal(b, want.Bytes()) {
				t.Errorf("the peer read %q, want %q", b, want.Bytes())
			}
		})
	}
}

// BenchmarkFdConnWritev is the user-space cost of fdConn.writev around its
// system call (to /dev/null, which costs the kernel little): one buffer
// (a write), a frame's header and payload, and a flush of many frames.
func BenchmarkFdConnWritev(b *testing.B) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fc := &fdConn{fd: int(f.Fd())}
	payload := []byte(`42["chat message",{"from":"alice","text":"hello, everyone"}]`)
	for _, n := range []int{1, 2, 32} {
		b.Run(fmt.Sprintf("bufs=%d", n), func(b *testing.B) {
			bufs := make([][]byte, n)
			for i := range bufs {
				bufs[i] = payload
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fc.writev(bufs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
