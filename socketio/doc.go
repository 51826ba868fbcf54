// Package socketio is a Socket.IO v5 server (socket.io 4.x, with v2
// clients behind engineio.Options.AllowEIO3) on the Engine.IO server of
// package engineio: namespaces (static, and dynamic with OfRegexp and
// OfFunc), rooms, sockets, broadcasts encoded once for all their
// recipients, acknowledgements (AckFunc, EmitWithAck), binary attachments,
// middlewares, connection state recovery, and an Adapter interface for
// clusters (socketio/redisadapter speaks the wire format of Node's
// @socket.io/redis-adapter). It follows Node's socket.io where Go allows:
// the same events, disconnect reasons, error messages and options.
//
// # Goroutines
//
// A Server is an http.Handler; the engine serves each client's session on
// the goroutines that read it (a WebSocket reader, a polling POST's
// request) or on the session's own executor goroutine, never on another
// client's. So one socket's handlers (connection handlers, middlewares,
// event handlers, acknowledgement callbacks, disconnect handlers) run one
// at a time, in the order of the client's packets; different sockets'
// handlers run concurrently. A handler that blocks delays its own client
// only. Emitting, joining rooms, broadcasting and disconnecting are safe
// from any goroutine, handlers included: no handler, hook or adapter call
// runs under a lock of the server's. Every broadcast reaches all its
// recipients on this node in one order, the same for all of them.
//
// A handler must not wait for something only its own socket's later
// packets bring (Socket.EmitWithAck's answer, for example): they are
// handled on the same goroutine, after it returns. Wait from another
// goroutine, or use Emit with an AckFunc.
//
// # Listeners
//
// As in Node, handlers add up: Socket.On appends, Once handles the next
// event only, Off removes all of an event's handlers; On, Once, OnAny and
// OnAnyOutgoing return a function that removes the handler they added (Go
// funcs cannot be compared, so there is no Off(event, fn)).
//
// # A complete program
//
// The chat of the Socket.IO tutorial, with the browser client served by
// the server (npm install socket.io-client first), a graceful shutdown on
// SIGTERM, and a dynamic namespace per room:
//
//	package main
//
//	import (
//		"context"
//		"log"
//		"net/http"
//		"os/signal"
//		"regexp"
//		"syscall"
//		"time"
//
//		"github.com/chatio/socketio-chat/socketio"
//	)
//
//	func main() {
//		io, err := socketio.NewServer(socketio.Options{ServeClient: true})
//		if err != nil {
//			log.Fatal(err)
//		}
//		io.OnConnection(func(socket *socketio.Socket) {
//			socket.On("chat message", func(e *socketio.Event) {
//				io.Emit("chat message", e.Arg(0))
//			})
//		})
//		rooms := io.OfRegexp(regexp.MustCompile(`^/room-\d+$`))
//		rooms.OnConnection(func(socket *socketio.Socket) {
//			socket.On("say", func(e *socketio.Event) {
//				socket.Namespace().Emit("said", e.Arg(0))
//			})
//		})
//
//		http.Handle("/socket.io/", io)
//		http.Handle("/", http.FileServer(http.Dir("public")))
//		srv := &http.Server{Addr: ":3000"}
//		go func() {
//			if err := srv.ListenAndServe(); err != http.ErrServerClosed {
//				log.Fatal(err)
//			}
//		}()
//
//		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
//		<-ctx.Done()
//		stop()
//		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//		defer cancel()
//		_ = io.Shutdown(ctx) // every session told, disconnect handlers run
//		_ = srv.Shutdown(ctx)
//	}
//
// The examples of this package are runnable (go test -run Example); each
// shows the packets a client receives.
package socketio
