// Package engineio is an Engine.IO v4 server (v3 behind
// Options.AllowEIO3), the transport layer under Socket.IO: the HTTP
// endpoint, sessions and their heartbeats, HTTP long-polling (with JSONP
// and gzip), WebSocket (handshake, frames, close handshake) and the
// upgrade from one to the other, send queues with bounds, and an I/O
// engine in which an idle WebSocket costs no goroutine (epoll on Linux).
// Package socketio builds on it; a program can also use it alone, as the
// example does, with a SessionHandler per session.
//
// # Goroutines
//
// A Server is an http.Handler. A session's SessionHandler methods are
// called one at a time, in the order of the client's messages, never
// concurrently: on the goroutine that read the data (a WebSocket reader,
// or the polling POST's request goroutine), or on the session's own
// executor goroutine when something is posted from elsewhere (Session.Do,
// Close, a timer) while no method runs. A slow handler delays its own
// session only; while it runs, that session's reader queues at most 256
// messages (256 KiB), then stops reading the connection. Session.Send and
// the other Session methods are safe from any goroutine; they never call a
// handler. Writes are done by a small pool of flush goroutines (one per
// CPU) with non-blocking writev, so a broadcast's payload is shared by
// every recipient and no writer waits for a slow client: a client whose
// queue passes its bound is told to its handler (OnQueueOverflow).
//
// Engine events of Node's engine.io are Options: OnConnectionError
// ("connection_error", with Node's codes: CodeUnknownTransport …
// CodeUnsupportedProtocol), InitialHeaders ("initial_headers") and
// Headers ("headers"); Cookie and Transports are Node's options of the
// same names.
//
// # A complete program
//
// An echo server on :3000, which any Engine.IO client can talk to (in the
// browser: new eio.Socket("ws://localhost:3000")):
//
//	package main
//
//	import (
//		"log"
//		"net/http"
//
//		"github.com/chatio/socketio-chat/engineio"
//	)
//
//	type echo struct{ s *engineio.Session }
//
//	func (e echo) OnMessage(data []byte, binary bool) {
//		if binary {
//			_ = e.s.Send(engineio.BinaryMessage(data))
//			return
//		}
//		_ = e.s.Send(engineio.TextMessage(append([]byte("4"), data...)))
//	}
//	func (e echo) OnQueueOverflow()                { e.s.Close("slow consumer") }
//	func (e echo) OnClose(reason string, err error) { log.Println("closed:", reason) }
//
//	func main() {
//		srv := engineio.NewServer(engineio.Options{}, func(s *engineio.Session) engineio.SessionHandler {
//			return echo{s}
//		})
//		http.Handle("/engine.io/", srv)
//		log.Fatal(http.ListenAndServe(":3000", nil))
//	}
package engineio
