//go:build linux

package main

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/bench/eio"
)

// TestBroadcast: the load generator's clients join the floor, and what one
// sends as user-message reaches every one of them as message.
func TestBroadcast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := serve(ln); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "http://" + ln.Addr().String() + "/socket.io/"
	const n = 3
	got := make(chan string, n*2)
	p, err := eio.NewPoller(1)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		c, err := eio.DialRaw(ctx, nil, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := p.Add(c, func(pkt []byte) {
			if text, ok := eio.MessageText(pkt); ok {
				got <- string(text)
			}
		}, func(error) {}); err != nil {
			t.Fatal(err)
		}
		if c.SocketID == "" {
			t.Fatal("no socket id in the CONNECT answer")
		}
	}
	sender, err := eio.DialRaw(ctx, nil, url)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	if err := sender.Emit(eio.AppendUserMessage(nil, []byte("hello.1"))); err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case text := <-got:
			if text != "hello.1" {
				t.Fatalf("got %q", text)
			}
		case <-ctx.Done():
			t.Fatal("a client did not get the broadcast")
		}
	}
}

// FuzzParseFrame: any input is either an incomplete frame (n == 0) or a
// frame whose length is within the input, and frames written by
// appendFrame read back.
func FuzzParseFrame(f *testing.F) {
	f.Add(appendFrame(nil, []byte("40")))
	f.Add([]byte{0x81, 0x82, 1, 2, 3, 4, 'a' ^ 1, 'b' ^ 2})
	f.Add([]byte{0x81, 0xfe, 0, 200})
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, payload, n := parseFrame(bytes.Clone(b))
		if n < 0 || n > len(b) || len(payload) > n {
			t.Fatalf("n %d payload %d of %d bytes", n, len(payload), len(b))
		}
		if n == 0 {
			return
		}
		op2, p2, n2 := parseFrame(appendFrame(nil, payload))
		if op2 != 0x1 || !bytes.Equal(p2, payload) || n2 == 0 {
			t.Fatalf("round trip of op %d payload %q: op %d %q", op, payload, op2, p2)
		}
	})
}
