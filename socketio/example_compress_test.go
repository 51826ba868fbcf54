package socketio_test

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/gorilla/websocket"
)

// WebSocket compression, as Node's perMessageDeflate option: the clients
// that offer permessage-deflate (browsers, socket.io-client) get the
// messages of 1024 bytes or more compressed, but those emitted with
// Compress(false).
func ExampleSocket_Compress() {
	io, _ := socketio.NewServer(socketio.Options{
		Engine: engineio.Options{PerMessageDeflate: true},
		Logger: slog.New(slog.DiscardHandler),
	})
	defer io.Close()
	report := strings.Repeat("all quiet. ", 200)
	io.OnConnection(func(socket *socketio.Socket) {
		socket.Emit("report", report)                 // compressed: 2 kB
		socket.Compress(false).Emit("report", report) // as it is
		io.Compress(false).Emit("news", "a broadcast, as it is")
	})
	srv := httptest.NewServer(io)
	defer srv.Close()

	d := websocket.Dialer{EnableCompression: true} // offers permessage-deflate
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Println(resp.Header.Get("Sec-WebSocket-Extensions"))
	_, _, _ = conn.ReadMessage() // Engine.IO OPEN
	_ = conn.WriteMessage(websocket.TextMessage, []byte("40"))
	_, _, _ = conn.ReadMessage() // CONNECT
	for range 3 {
		_, b, _ := conn.ReadMessage() // inflated by the client when compressed
		fmt.Printf("%.24s… (%d bytes)\n", b, len(b))
	}
	fmt.Println(io.Engine().Stats().DeflatedMessages, "message compressed")
	// Output:
	// permessage-deflate; server_no_context_takeover; client_no_context_takeover
	// 42["report","all quiet. … (2215 bytes)
	// 42["report","all quiet. … (2215 bytes)
	// 42["news","a broadcast, … (34 bytes)
	// 1 message compressed
}
