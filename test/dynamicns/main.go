// Command dynamicns is the small Socket.IO server of
// test/node/dynamic-namespaces.test.mjs: a dynamic namespace
// (io.of(/^\/room-\d+$/) in Node) on the socketio library, without the
// chat. It listens on -addr (127.0.0.1:0 by default) and prints one JSON
// line {"msg":"Server started","url":…} once it accepts connections.
//
// In every /room-N: "whoami" is acknowledged with the namespace's name;
// "shout" broadcasts "news" (the sender's namespace and its argument) to
// every child of the parent, every room; "/lobby" and other names are
// invalid. SIGTERM or SIGINT shuts the server down gracefully (Shutdown).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cleanup := flag.Bool("cleanup-empty-child-namespaces", false, "remove a room's namespace when its last socket leaves")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	io, err := socketio.NewServer(socketio.Options{Logger: log, CleanupEmptyChildNamespaces: *cleanup})
	if err != nil {
		log.Error("socketio", "err", err)
		os.Exit(1)
	}
	rooms := io.OfRegexp(regexp.MustCompile(`^/room-\d+$`))
	rooms.OnConnection(func(so *socketio.Socket) {
		name := so.Namespace().Name()
		so.On("whoami", func(e *socketio.Event) { _ = e.Ack(name) })
		so.On("shout", func(e *socketio.Event) { _ = rooms.Emit("news", name, e.Arg(0)) })
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", io)
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	line, _ := json.Marshal(map[string]string{"msg": "Server started", "url": "http://" + ln.Addr().String()})
	os.Stdout.Write(append(line, '\n'))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = io.Shutdown(ctx)
	_ = hs.Shutdown(ctx)
}
