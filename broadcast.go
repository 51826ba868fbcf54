package main

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// broadcast emits event with one argument to every client of the main
// namespace, as io.emit does, encoding the packet once for all of them.
//
// WebSocket clients get the shared frame payload straight into their send
// queue; polling clients and clients in the middle of an upgrade take the
// library's write path with the same encoding. Binary payloads, and every
// broadcast when connection state recovery or a cluster adapter is on, go
// through the library's adapter, which adds the recovery offset or publishes
// to the other nodes.
func (s *chatServer) broadcast(event string, arg any) {
	if s.cfg.Redis != "" {
		arg = decodeRaw(arg) // the cluster adapter encodes Go values
	}
	if parser.HasBinary(arg) {
		// Encoding drains buffers; the recovery adapter keeps the packet to
		// replay it, so it must hold bytes that can be read twice.
		s.io.Emit(event, detachBuffers(arg))
		return
	}
	if s.libraryBroadcast {
		s.io.Emit(event, arg)
		return
	}
	raw, ok := arg.(rawJSON)
	if !ok {
		b, err := json.Marshal(arg)
		if err != nil {
			s.log.Error("broadcast: cannot encode", "event", event, "err", err)
			return
		}
		raw = b
	}
	name, _ := json.Marshal(event)
	// 4 (Engine.IO MESSAGE) 2 (Socket.IO EVENT) ["event",arg]
	payload := make([]byte, 0, len(name)+len(raw)+5)
	payload = append(append(append(payload, `42[`...), name...), ',')
	payload = append(append(payload, raw...), ']')

	encoded := []types.BufferInterface{types.NewStringBuffer(payload[1:])}
	opts := &socket.WriteOptions{PreEncoded: true}
	opts.WsPreEncodedFrame = types.NewStringBuffer(payload)
	// The library's namespace map, not a list of our own: a socket is in it
	// before its CONNECT answer leaves, so a client that emits as soon as it
	// is connected never misses a broadcast sent after that.
	s.io.Sockets().Sockets().Range(func(_ socket.SocketId, so *socket.Socket) bool {
		if t, ok := so.Conn().Transport().(*wsTransport); !ok || !t.sendDirect(payload) {
			so.Client().WriteToEngine(encoded, opts)
		}
		return true
	})
}

// detachBuffers returns v with every binary buffer replaced by a copy of its
// bytes as []byte, which encoding reads without consuming.
func detachBuffers(v any) any {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = detachBuffers(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = detachBuffers(e)
		}
		return out
	case types.BufferInterface:
		return bytes.Clone(t.Bytes())
	case []byte:
		return t
	case io.Reader:
		b, _ := io.ReadAll(t)
		return b
	default:
		return v
	}
}
