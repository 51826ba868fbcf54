package socketio

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/chatio/socketio-chat/engineio"
)

// TestConnectPayload: the CONNECT answer's payload is what encoding/json
// makes of it, for usual ids and for ids that need escaping.
func TestConnectPayload(t *testing.T) {
	for _, tc := range []struct{ sid, pid string }{
		{engineio.NewID(), ""},
		{engineio.NewID(), engineio.NewID()},
		{"a-b_c=", "x"},
		{`q"<&>\`, ""},
		{"ok", "pid\u2028"},
		{"", ""},
	} {
		want, _ := json.Marshal(struct {
			SID string `json:"sid"`
			PID string `json:"pid,omitempty"`
		}{tc.sid, tc.pid})
		if got := connectPayload(tc.sid, tc.pid); !bytes.Equal(got, want) {
			t.Errorf("connectPayload(%q, %q) = %s, want %s", tc.sid, tc.pid, got, want)
		}
	}
}
