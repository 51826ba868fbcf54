package shardedadapter_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/chatio/socketio-chat/socketio/shardedadapter"
)

// A node of a cluster on a Redis Cluster (the list of its nodes), next to
// Node.js nodes using createShardedAdapter. (Not run: it needs Redis.)
func ExampleNew() {
	ad, err := shardedadapter.New(shardedadapter.Options{
		URL: "redis://10.0.0.1:7000,redis://10.0.0.2:7000,redis://10.0.0.3:7000",
	})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := socketio.NewServer(socketio.Options{Adapter: ad})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	defer ad.Close()
	srv.OnConnection(func(s *socketio.Socket) {
		s.Join("lobby") // this node subscribes to socket.io#/#lobby# while the room has members here
		s.On("chat message", func(ev *socketio.Event) {
			_ = srv.Of("/").To("lobby").Emit("chat message", ev.Arg(0))
		})
	})
	http.Handle("/socket.io/", srv)

	st := ad.Stats()
	fmt.Println(ad.Up(), st.Published, st.Received, st.Dropped, st.Reconnects, st.Queued)
}
