package socketio_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"time"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/gorilla/websocket"
)

// The examples talk to the server with a few lines of WebSocket: each
// prints the Socket.IO packets its clients receive, as they are on the
// wire (after the Engine.IO type '4'; socket ids, random, are shown as
// "…").

// client is a minimal Socket.IO client over WebSocket.
type client struct{ conn *websocket.Conn }

// dial opens a connection to the server at url and joins namespace nsp
// with auth (a JSON object, or "").
func dial(url, nsp, auth string) *client {
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		panic(err)
	}
	c := &client{conn}
	c.read() // Engine.IO OPEN
	if nsp != "/" {
		c.send("0" + nsp + "," + auth)
	} else {
		c.send("0" + auth)
	}
	return c
}

// send sends a Socket.IO packet.
func (c *client) send(packet string) {
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte("4"+packet)); err != nil {
		panic(err)
	}
}

var sid = regexp.MustCompile(`"sid":"[^"]*"`)

// read returns the next Socket.IO packet.
func (c *client) read() string {
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		panic(err)
	}
	return sid.ReplaceAllString(strings.TrimPrefix(string(b), "4"), `"sid":"…"`)
}

func quiet() socketio.Options {
	return socketio.Options{Logger: slog.New(slog.DiscardHandler)}
}

// The chat of the Socket.IO tutorial: every "chat message" is sent to
// everyone.
func ExampleServer() {
	io, err := socketio.NewServer(quiet())
	if err != nil {
		panic(err)
	}
	defer io.Close()
	io.OnConnection(func(socket *socketio.Socket) {
		socket.On("chat message", func(e *socketio.Event) {
			io.Emit("chat message", e.Arg(0))
		})
	})
	srv := httptest.NewServer(io) // or http.Handle("/socket.io/", io)
	defer srv.Close()

	alice := dial(srv.URL, "/", "")
	bob := dial(srv.URL, "/", "")
	fmt.Println("alice:", alice.read())
	fmt.Println("bob:", bob.read())
	alice.send(`2["chat message","hello, bob"]`)
	fmt.Println("alice:", alice.read())
	fmt.Println("bob:", bob.read())
	// Output:
	// alice: 0{"sid":"…"}
	// bob: 0{"sid":"…"}
	// alice: 2["chat message","hello, bob"]
	// bob: 2["chat message","hello, bob"]
}

// An emit that asks the client for an acknowledgement, with a timeout.
func ExampleSocket_Emit() {
	io, _ := socketio.NewServer(quiet())
	defer io.Close()
	done := make(chan struct{})
	io.OnConnection(func(socket *socketio.Socket) {
		socket.Timeout(5*time.Second).Emit("question", "ready?", socketio.AckFunc(func(args []socketio.Arg, err error) {
			if errors.Is(err, socketio.ErrAckTimeout) {
				fmt.Println("no answer")
			} else {
				fmt.Println("answer:", args[0])
			}
			close(done)
		}))
	})
	srv := httptest.NewServer(io)
	defer srv.Close()

	c := dial(srv.URL, "/", "")
	fmt.Println(c.read())
	fmt.Println(c.read()) // an EVENT with ack id 0
	c.send(`30["yes"]`)   // the ACK for id 0
	<-done
	// Output:
	// 0{"sid":"…"}
	// 20["question","ready?"]
	// answer: "yes"
}

// Acknowledging a client's event: the client's callback gets the
// arguments of Ack.
func ExampleEvent_Ack() {
	io, _ := socketio.NewServer(quiet())
	defer io.Close()
	io.OnConnection(func(socket *socketio.Socket) {
		socket.On("add", func(e *socketio.Event) {
			var a, b float64
			_ = e.Arg(0).Decode(&a)
			_ = e.Arg(1).Decode(&b)
			e.Ack(a + b)
		})
	})
	srv := httptest.NewServer(io)
	defer srv.Close()

	c := dial(srv.URL, "/", "")
	c.read()
	c.send(`27["add",1,2.5]`) // ack id 7
	fmt.Println(c.read())
	// Output:
	// 37[3.5]
}

// Rooms: sockets join them, and broadcasts go to a room (io.to(room)),
// except a room, or everyone but the sender (socket.broadcast).
func ExampleBroadcastOperator() {
	io, _ := socketio.NewServer(quiet())
	defer io.Close()
	io.OnConnection(func(socket *socketio.Socket) {
		socket.On("subscribe", func(e *socketio.Event) {
			var room string
			_ = e.Arg(0).Decode(&room)
			socket.Join(room)
			e.Ack()
		})
		socket.On("shout", func(e *socketio.Event) {
			socket.Broadcast().Emit("shout", e.Arg(0)) // not to the sender
		})
	})
	srv := httptest.NewServer(io)
	defer srv.Close()

	reader, other := dial(srv.URL, "/", ""), dial(srv.URL, "/", "")
	reader.read()
	other.read()
	reader.send(`21["subscribe","news"]`)
	fmt.Println("reader:", reader.read())

	io.To("news").Emit("headline", "Go 1.26 is out")
	io.Except("news").Emit("digest", "nothing new")
	other.send(`2["shout","hi all"]`)

	fmt.Println("reader:", reader.read())
	fmt.Println("reader:", reader.read())
	fmt.Println("other:", other.read())
	// Output:
	// reader: 31[]
	// reader: 2["headline","Go 1.26 is out"]
	// reader: 2["shout","hi all"]
	// other: 2["digest","nothing new"]
}

// A namespace with a middleware that refuses clients without a token; the
// client receives the error's message and data.
func ExampleNamespace_Use() {
	io, _ := socketio.NewServer(quiet())
	defer io.Close()
	admin := io.Of("/admin")
	admin.Use(func(socket *socketio.Socket) error {
		if !strings.Contains(string(socket.Handshake().Auth), `"token":"secret"`) {
			return &socketio.ConnectError{Message: "not authorized", Data: map[string]any{"retry": false}}
		}
		return nil
	})
	admin.OnConnection(func(socket *socketio.Socket) {
		socket.Emit("welcome", "admin")
	})
	srv := httptest.NewServer(io)
	defer srv.Close()

	fmt.Println(dial(srv.URL, "/admin", "").read())
	c := dial(srv.URL, "/admin", `{"token":"secret"}`)
	fmt.Println(c.read())
	fmt.Println(c.read())
	// Output:
	// 4/admin,{"data":{"retry":false},"message":"not authorized"}
	// 0/admin,{"sid":"…"}
	// 2/admin,["welcome","admin"]
}

// Binary data: []byte arguments travel as attachments, after the packet.
func ExampleSocket_Emit_binary() {
	io, _ := socketio.NewServer(quiet())
	defer io.Close()
	io.OnConnection(func(socket *socketio.Socket) {
		socket.Emit("file", "hello.txt", []byte("hello"))
	})
	srv := httptest.NewServer(io)
	defer srv.Close()

	c := dial(srv.URL, "/", "")
	c.read()
	fmt.Println(c.read())
	_, b, _ := c.conn.ReadMessage()
	fmt.Printf("attachment: %q\n", b)
	// Output:
	// 51-["file","hello.txt",{"_placeholder":true,"num":0}]
	// attachment: "hello"
}
