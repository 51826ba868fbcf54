package redisadapter_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/chatio/socketio-chat/socketio/redisadapter"
)

// A node of a cluster: its broadcasts reach the clients of every node that
// shares the Redis server and the prefix, Node.js nodes with
// @socket.io/redis-adapter included. (Not run: it needs Redis.)
func ExampleNew() {
	cluster, err := redisadapter.New(redisadapter.Options{URL: "redis://127.0.0.1:6379/0", Prefix: "socket.io"})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := socketio.NewServer(socketio.Options{Adapter: cluster})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close() // closes the cluster too
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("chat message", func(ev *socketio.Event) {
			_ = srv.Emit("chat message", ev.Arg(0)) // every client of every node
		})
	})
	http.Handle("/socket.io/", srv)

	// For metrics:
	s := cluster.Stats()
	fmt.Println(cluster.Up(), s.Published, s.Received, s.Dropped, s.Reconnects, s.Queued)
}
