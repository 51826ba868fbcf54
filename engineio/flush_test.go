package engineio

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// TestFlushCoalescesSmallFrames: a flush copies small frames after their
// headers, so that a run of them is one buffer (one chat message: a
// write(2)), and writes a large payload from where it is; the frames read
// back are those sent.
func TestFlushCoalescesSmallFrames(t *testing.T) {
	h := newFrameHarness(t, Options{}, 4, discardLogger())
	defer h.stop()
	h.io.runFlushes() // nothing queued yet
	big := bytes.Repeat([]byte("x"), copyPayload+1)
	for _, tc := range []struct {
		name     string
		msgs     []Message
		wantBufs int
	}{
		{"one small", []Message{TextMessage([]byte("4hello"))}, 1},
		{"small, large, small, small", []Message{
			TextMessage([]byte("4a")), BinaryMessage(big), TextMessage([]byte("4b")), BinaryMessage([]byte("c")),
		}, 3}, // a and big's header; big; b and c
		{"large", []Message{BinaryMessage(big)}, 2}, // header; payload
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.raw.mu.Lock()
			h.raw.out.Reset()
			h.raw.bufs = nil
			h.raw.mu.Unlock()
			if err := h.c.sess.SendAll(tc.msgs...); err != nil {
				t.Fatal(err)
			}
			h.io.runFlushes()
			if got, want := h.raw.bufs, []int{tc.wantBufs}; !slices.Equal(got, want) {
				t.Errorf("writev calls with %v buffers, want %v", got, want)
			}
			got := h.raw.frames(t)
			if len(got) != len(tc.msgs) {
				t.Fatalf("%d frames, want %d", len(got), len(tc.msgs))
			}
			for i, m := range tc.msgs {
				op := byte(opText)
				if m.binary {
					op = opBinary
				}
				if f := got[i]; !f.fin || f.op != op || !bytes.Equal(f.payload, m.b) {
					t.Errorf("frame %d: fin %v op %d %q, want a final frame, op %d %q", i, f.fin, f.op, f.payload, op, m.b)
				}
			}
		})
	}
}

// TestFlushIdleHoldsNothing: once a flush has written everything, neither
// the connection nor the session holds a buffer (the flush buffer and the
// queue's array went back to the pool together), whether the sends found
// the connection idle or came while a flush was writing (the session is
// then handed the array the last fill emptied, for the next).
func TestFlushIdleHoldsNothing(t *testing.T) {
	h := newFrameHarness(t, Options{}, 4, discardLogger())
	defer h.stop()
	s := h.c.sess
	check := func(when string) {
		t.Helper()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.queue != nil || h.c.fb != nil || h.c.flushing {
			t.Errorf("%s: queue %v (cap %d), flush buffer %v, flushing %v; want none held", when, s.queue, cap(s.queue), h.c.fb, h.c.flushing)
		}
	}
	send := func(p string) {
		t.Helper()
		if err := s.Send(TextMessage([]byte("4" + p))); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i := range 3 {
		p := fmt.Sprint(i)
		send(p)
		want = append(want, "4"+p)
		h.io.runFlushes()
		check("after a send")
		// Three sends, each while the last one's flush writes.
		during := 0
		h.raw.onWrite = func() {
			if during++; during < 3 {
				send(p + "+" + fmt.Sprint(during))
			}
		}
		send(p + "+0")
		want = append(want, "4"+p+"+0", "4"+p+"+1", "4"+p+"+2")
		h.io.runFlushes()
		h.raw.onWrite = nil
		check("after sends during a flush")
	}
	var got []string
	for _, f := range h.raw.frames(t) {
		got = append(got, string(f.payload))
	}
	if !slices.Equal(got, want) {
		t.Errorf("frames written: %q, want %q", got, want)
	}
}
