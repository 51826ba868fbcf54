package engineio

// Protocol behaviours as Node has them (engine.io 6.6, ws 8, socket.io
// 4.8.4), each checked side by side with a Node server: what Node does is
// written in each test's comment.

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// TestCloseFrameStatusCodes: a close frame whose status code RFC 6455 §7.4
// does not allow on the wire is answered with 1002 (protocol error), as
// ws does (isValidStatusCode: 1000–1014 but 1004, 1005 and 1006, and
// 3000–4999); a valid code is echoed. Node, probed with a raw client: 999,
// 1004, 1005, 1006, 1015, 1016, 2999, 5000 and 65535 get 1002; 1000, 1001,
// 1003, 1007, 1011–1014, 3000 and 4999 are echoed.
func TestCloseFrameStatusCodes(t *testing.T) {
	tests := []struct {
		code      uint16
		wantClose int
		wantEnd   string
	}{
		{999, closeProtocolError, "transport error"},
		{0, closeProtocolError, "transport error"},
		{1004, closeProtocolError, "transport error"},
		{1005, closeProtocolError, "transport error"},
		{1006, closeProtocolError, "transport error"},
		{1015, closeProtocolError, "transport error"},
		{1016, closeProtocolError, "transport error"},
		{2999, closeProtocolError, "transport error"},
		{5000, closeProtocolError, "transport error"},
		{65535, closeProtocolError, "transport error"},
		{1000, 1000, "transport close"},
		{1001, 1001, "transport close"},
		{1003, 1003, "transport close"},
		{1007, 1007, "transport close"},
		{1011, 1011, "transport close"},
		{1012, 1012, "transport close"},
		{1014, 1014, "transport close"},
		{3000, 3000, "transport close"},
		{4999, 4999, "transport close"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			h := newFrameHarness(t, Options{}, 4, discardLogger())
			defer h.stop()
			var p [2]byte
			binary.BigEndian.PutUint16(p[:], tt.code)
			h.feed(masked(opClose, string(p[:])+"bye"))
			o := h.outcome(t)
			if got := o.closeCode(); got != tt.wantClose {
				t.Errorf("close %d answered with %d, want %d (%v)", tt.code, got, tt.wantClose, o)
			}
			if o.reason != tt.wantEnd {
				t.Errorf("session end = %q, want %q", o.reason, tt.wantEnd)
			}
		})
	}
}
