package socketio_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// Handlers add up; Once handles the next event only; the function On
// returns removes its handler; Off removes all of an event's.
func ExampleSocket_Once() {
	io, _ := socketio.NewServer(quiet())
	defer io.Close()
	io.OnConnection(func(socket *socketio.Socket) {
		socket.Once("hello", func(e *socketio.Event) { socket.Emit("log", "first hello") })
		remove := socket.On("hello", func(e *socketio.Event) { socket.Emit("log", "hello", e.Arg(0)) })
		socket.On("quiet", func(*socketio.Event) { remove() })
		socket.On("reset", func(*socketio.Event) { socket.Off("hello") })
		socket.On("probe", func(*socketio.Event) { socket.Emit("done") })
	})
	srv := httptest.NewServer(io)
	defer srv.Close()

	c := dial(srv.URL, "/", "")
	c.read()
	c.send(`2["hello",1]`)
	fmt.Println(c.read())
	fmt.Println(c.read())
	c.send(`2["hello",2]`)
	fmt.Println(c.read())
	c.send(`2["quiet"]`)
	c.send(`2["hello",3]`) // no handler left
	c.send(`2["probe"]`)
	fmt.Println(c.read())
	// Output:
	// 2["log","first hello"]
	// 2["log","hello",1]
	// 2["log","hello",2]
	// 2["done"]
}

// EmitWithAck waits for the client's acknowledgement; its arguments are
// Args, so that a callback cannot be passed by mistake.
func ExampleSocket_EmitWithAck() {
	io, _ := socketio.NewServer(quiet())
	defer io.Close()
	answers := make(chan string, 1)
	io.OnConnection(func(socket *socketio.Socket) {
		go func() { // not on the socket's handler goroutine: the ack is handled there
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			args, err := socket.EmitWithAck(ctx, "question", socketio.MustArg("ready?"))
			if err != nil {
				answers <- err.Error()
				return
			}
			answers <- args[0].String()
		}()
	})
	srv := httptest.NewServer(io)
	defer srv.Close()

	c := dial(srv.URL, "/", "")
	c.read()
	fmt.Println(c.read()) // an EVENT with ack id 0
	c.send(`30["yes"]`)
	fmt.Println("answer:", <-answers)
	// Output:
	// 20["question","ready?"]
	// answer: "yes"
}

// A broadcast's EmitWithAck returns one response per recipient.
func ExampleBroadcastOperator_EmitWithAck() {
	io, _ := socketio.NewServer(quiet())
	defer io.Close()
	srv := httptest.NewServer(io)
	defer srv.Close()
	a, b := dial(srv.URL, "/", ""), dial(srv.URL, "/", "")
	a.read()
	b.read()

	done := make(chan []socketio.Arg)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		responses, _ := io.EmitWithAck(ctx, "vote")
		done <- responses
	}()
	a.read()
	b.read()
	a.send(`30["yes"]`)
	b.send(`30["no"]`)
	fmt.Println(len(<-done), "responses")
	// Output:
	// 2 responses
}

// Dynamic namespaces: a CONNECT to any /room-N creates it, with the
// parent's handlers; a broadcast of the parent reaches every room.
func ExampleServer_OfRegexp() {
	io, _ := socketio.NewServer(quiet())
	defer io.Close()
	rooms := io.OfRegexp(regexp.MustCompile(`^/room-\d+$`))
	rooms.OnConnection(func(socket *socketio.Socket) {
		socket.Emit("welcome", socket.Namespace().Name())
	})
	srv := httptest.NewServer(io)
	defer srv.Close()

	r1, r2 := dial(srv.URL, "/room-1", ""), dial(srv.URL, "/room-2", "")
	fmt.Println(r1.read())
	fmt.Println(r1.read())
	r2.read()
	fmt.Println(r2.read())
	rooms.Emit("news", "to every room")
	fmt.Println(r1.read())
	fmt.Println(r2.read())
	fmt.Println(dial(srv.URL, "/lobby", "").read())
	// Output:
	// 0/room-1,{"sid":"…"}
	// 2/room-1,["welcome","/room-1"]
	// 2/room-2,["welcome","/room-2"]
	// 2/room-1,["news","to every room"]
	// 2/room-2,["news","to every room"]
	// 4/lobby,{"message":"Invalid namespace"}
}

// A function decides which namespaces exist, from the name and the
// client's auth payload.
func ExampleServer_OfFunc() {
	io, _ := socketio.NewServer(quiet())
	defer io.Close()
	io.OfFunc(func(name string, auth json.RawMessage) bool {
		var a struct{ Team string }
		_ = json.Unmarshal(auth, &a)
		return name == "/team-"+a.Team
	})
	srv := httptest.NewServer(io)
	defer srv.Close()
	fmt.Println(dial(srv.URL, "/team-red", `{"team":"red"}`).read())
	fmt.Println(dial(srv.URL, "/team-blue", `{"team":"red"}`).read())
	// Output:
	// 0/team-red,{"sid":"…"}
	// 4/team-blue,{"message":"Invalid namespace"}
}

// Shutdown closes every session and waits until they are gone (their
// disconnect handlers run), or until ctx ends.
func ExampleServer_Shutdown() {
	io, _ := socketio.NewServer(quiet())
	io.OnConnection(func(socket *socketio.Socket) {
		socket.OnDisconnect(func(reason string, _ error) { fmt.Println("disconnected:", reason) })
	})
	srv := httptest.NewServer(io)
	defer srv.Close()
	dial(srv.URL, "/", "").read()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println("shutdown:", io.Shutdown(ctx))
	// Output:
	// disconnected: server shutting down
	// shutdown: <nil>
}

// The browser client served by the server (Node's serveClient) and a
// cross-origin policy: a page on https://app.example.com may connect.
func ExampleOptions_serveClient() {
	io, err := socketio.NewServer(socketio.Options{
		Logger:      quiet().Logger,
		ServeClient: true,
		ClientDir:   "../node_modules/socket.io-client/dist", // socketio.DefaultClientDir from a project's root
		CORS:        &socketio.CORSOptions{Origins: []string{"https://app.example.com"}},
	})
	if err != nil {
		fmt.Println(err) // socketio.ErrClientMissing: npm install socket.io-client
		return
	}
	defer io.Close()
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", io)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, _ := http.Get(srv.URL + "/socket.io/socket.io.min.js")
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Content-Type"))

	req, _ := http.NewRequest("GET", srv.URL+"/socket.io/?EIO=4&transport=polling", nil)
	req.Header.Set("Origin", "https://evil.example.com")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// 200 OK application/javascript; charset=utf-8
	// 403 Forbidden
}
