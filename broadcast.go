package main

import (
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// broadcast emits event with one argument to every client of the main
// namespace, as io.emit does, encoding the packet once for all of them.
//
// WebSocket clients get the shared frame payload straight into their send
// queue; polling clients, clients in the middle of an upgrade and binary
// payloads take the library's path. With connection state recovery or a
// cluster adapter every broadcast takes the library's path, which adds the
// recovery offset or publishes to the other nodes.
func (s *chatServer) broadcast(event string, arg any) {
	if s.libraryBroadcast || parser.HasBinary(arg) {
		s.io.Emit(event, arg) // binary: encoding consumes the buffers, so encode once, there
		return
	}
	encoded := s.io.Encoder().Encode(&parser.Packet{Type: parser.EVENT, Nsp: "/", Data: []any{event, arg}})
	text, ok := encoded[0].(*types.StringBuffer)
	if len(encoded) != 1 || !ok {
		s.log.Error("broadcast: unexpected encoding", "event", event, "packets", len(encoded))
		return
	}
	payload := make([]byte, 0, 1+text.Len())
	payload = append(payload, '4') // Engine.IO MESSAGE
	payload = append(payload, text.Bytes()...)
	opts := &socket.WriteOptions{PreEncoded: true}
	opts.WsPreEncodedFrame = types.NewStringBuffer(payload)

	s.io.Sockets().Sockets().Range(func(_ socket.SocketId, so *socket.Socket) bool {
		if t, ok := so.Conn().Transport().(*wsTransport); !ok || !t.sendDirect(payload) {
			so.Client().WriteToEngine(encoded, opts)
		}
		return true
	})
}
