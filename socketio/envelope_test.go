package socketio

import (
	"encoding/json"
	"testing"
)

// TestConnectErrorFallbackJSON: a ConnectError whose Data cannot be
// encoded still gives the client a valid {"message":…}, its message
// intact, whatever it holds.
func TestConnectErrorFallbackJSON(t *testing.T) {
	for _, msg := range []string{"plain", `quote " backslash \ <tag> & amp`, "line\nbreak\u2028\x00", "invalid \xff utf-8"} {
		b := errorPayload(&ConnectError{Message: msg, Data: make(chan int)}, 5)
		var got struct {
			Message string `json:"message"`
			Data    any    `json:"data"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: payload %s is not JSON: %v", msg, b, err)
		}
		want := msg
		if msg == "invalid \xff utf-8" {
			want = "invalid \uFFFD utf-8"
		}
		if got.Message != want || got.Data != nil {
			t.Errorf("%q: payload %s", msg, b)
		}
	}
}
