package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

func TestGuardCheckPlaceholders(t *testing.T) {
	cases := []struct {
		header string
		want   uint64
		bad    bool
	}{
		{`451-["ev",{"_placeholder":true,"num":0}]`, 1, false},
		{`452-/custom,12["ev",{"_placeholder":true,"num":1},[{"_placeholder":true,"num":0}]]`, 2, false},
		{`462-7[{"_placeholder":true,"num":1.0}]`, 2, false},
		{`451-["ev",{"_placeholder":false,"num":"x"}]`, 1, false},
		{`451-["ev",{"_placeholder":"yes","num":"x"}]`, 1, false},
		{`450-["ev"]`, 0, false},
		{`451-["ev",{"_placeholder":true,"num":1}]`, 0, true},
		{`451-["ev",{"_placeholder":true,"num":-1}]`, 0, true},
		{`451-["ev",{"_placeholder":true,"num":0.5}]`, 0, true},
		{`451-["ev",{"_placeholder":true,"num":"0"}]`, 0, true},
		{`451-["ev",{"_placeholder":true}]`, 0, true},
		{`451-["ev",{"a":{"b":[1,{"_placeholder":true,"num":9}]}}]`, 0, true},
		{`451-/nsp,["ev",{"_placeholder":true,"num":1e300}]`, 0, true},
		// Headers the parser refuses by itself pass with a count of 0.
		{`45-["ev"]`, 0, false},
		{`45x-["ev"]`, 0, false},
		{`4599-["ev",{"_placeholder":true,"num":50}]`, 0, false},
		{`451-/nsp["ev"]`, 0, false},
		{`451-["ev"`, 0, false},
	}
	for _, tc := range cases {
		got, err := checkPlaceholders(tc.header[1:]) // without the Engine.IO type
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("checkPlaceholders(%s) = %d, %v; want %d, refused %v", tc.header, got, err, tc.want, tc.bad)
		}
		if err != nil && !errors.Is(err, errIllegalAttachments) {
			t.Errorf("checkPlaceholders(%s) error %v is not errIllegalAttachments", tc.header, err)
		}
	}
}

// TestGuardStrictDecoder: the strict parser wraps the library's parser and
// the chat's rawParser alike, refuses attachments over its byte budget, and
// remembers why it refused a packet.
func TestGuardStrictDecoder(t *testing.T) {
	for name, inner := range map[string]parser.Parser{"library": parser.NewParser(), "raw": rawParser{}} {
		t.Run(name, func(t *testing.T) {
			p := newStrictParser(inner, 10)
			d := p.NewDecoder()
			var decoded []*parser.Packet
			_ = d.On("decoded", func(args ...any) { decoded = append(decoded, args[0].(*parser.Packet)) })

			if err := d.Add(types.NewStringBufferString(`2["ev",{"a":1}]`)); err != nil {
				t.Fatal(err)
			}
			if err := d.Add(types.NewStringBufferString(`52-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)); err != nil {
				t.Fatal(err)
			}
			for _, b := range [][]byte{make([]byte, 5), make([]byte, 5)} {
				if err := d.Add(types.NewBytesBuffer(b)); err != nil {
					t.Fatalf("attachments of 10 bytes in all: %v", err)
				}
			}
			if len(decoded) != 2 {
				t.Fatalf("%d packets decoded, want 2", len(decoded))
			}

			if err := d.Add(types.NewStringBufferString(`52-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)); err != nil {
				t.Fatal(err)
			}
			_ = d.Add(types.NewBytesBuffer(make([]byte, 6)))
			big := types.NewBytesBuffer(make([]byte, 5))
			if err := d.Add(big); err == nil || !strings.Contains(err.Error(), "attachments over 10 bytes") {
				t.Fatalf("attachments of 11 bytes: %v, want refused", err)
			}
			if why, ok := p.refused.LoadAndDelete(big); !ok || !strings.Contains(why.(error).Error(), "over 10 bytes") {
				t.Fatalf("refusal not recorded: %v %v", why, ok)
			}

			d2 := p.NewDecoder()
			lie := types.NewStringBufferString(`51-["ev",{"_placeholder":true,"num":"x"}]`)
			if err := d2.Add(lie); !errors.Is(err, errIllegalAttachments) {
				t.Fatalf("placeholder num x: %v", err)
			}
			if _, ok := p.refused.Load(lie); !ok {
				t.Fatal("refusal not recorded")
			}
		})
	}
}

// TestGuardAdmission: a handshake the engine refuses gives its room back;
// open sessions keep theirs.
func TestGuardAdmission(t *testing.T) {
	ts := startTestServer(t, func(c *Config) { c.MaxConnections = 2 })
	hc := &http.Client{Timeout: 10 * time.Second}
	for range 10 {
		status, _ := confDo(t, hc, http.MethodGet, ts.URL+"/socket.io/?EIO=4&transport=carrier-pigeon", "")
		if status != http.StatusBadRequest {
			t.Fatalf("unknown transport = %d, want 400", status)
		}
		// The engine upgrades, then closes: polling does not take upgrades.
		if w, _, err := confDial(t, confWSURL(ts.URL, "/socket.io/", "EIO=4&transport=polling"), nil); err == nil {
			w.closed(3 * time.Second)
		}
	}
	// Both slots come back (a refused handshake returns its own just after
	// the client got the answer, hence the wait).
	for range 2 {
		confEventually(t, 5*time.Second, "room for a session", func() bool {
			status, _ := confDo(t, hc, http.MethodGet, ts.URL+"/socket.io/?EIO=4&transport=polling", "")
			return status == 200
		})
	}
	if status, body := confDo(t, hc, http.MethodGet, ts.URL+"/socket.io/?EIO=4&transport=polling", ""); status != http.StatusServiceUnavailable {
		t.Fatalf("third handshake = %d %q, want 503", status, body)
	}
}
