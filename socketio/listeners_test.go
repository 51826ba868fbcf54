package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestOnHandlersAddUp: handlers of one event add up, as in Node (they
// replaced each other before); Once runs once; the function On returns
// removes that handler only; Off removes them all.
func TestOnHandlersAddUp(t *testing.T) {
	calls := make(chan string, 20)
	ready := make(chan *Socket, 1)
	var removeSecond func()
	s := startIO(t, Options{}, func(io *Server) {
		io.OnConnection(func(so *Socket) {
			so.On("chat", func(e *Event) { calls <- "first " + string(e.Arg(0).JSON) })
			removeSecond = so.On("chat", func(e *Event) { calls <- "second " + string(e.Arg(0).JSON) })
			so.Once("chat", func(e *Event) { calls <- "once " + string(e.Arg(0).JSON) })
			so.On("done", func(e *Event) { calls <- "done " + string(e.Arg(0).JSON) })
			ready <- so
		})
	})
	c, _ := connected(t, s, wsTransport, "/", "")
	so := recv(t, ready)
	c.send(`2["chat",1]`)
	c.send(`2["done",1]`)
	for _, want := range []string{"first 1", "second 1", "once 1", "done 1"} {
		if got := recv(t, calls); got != want {
			t.Fatalf("call %q, want %q", got, want)
		}
	}
	removeSecond()
	removeSecond() // twice: nothing more
	c.send(`2["chat",2]`)
	c.send(`2["done",2]`)
	for _, want := range []string{"first 2", "done 2"} {
		if got := recv(t, calls); got != want {
			t.Fatalf("call %q, want %q", got, want)
		}
	}
	so.Off("chat")
	removeOnce := so.Once("chat", func(e *Event) { calls <- "once removed" })
	removeOnce()
	c.send(`2["chat",3]`)
	c.send(`2["done",3]`)
	if got := recv(t, calls); got != "done 3" {
		t.Fatalf("call %q after Off, want done 3", got)
	}
}

// TestOnAnyAndOnAnyOutgoing: OnAny and OnAnyOutgoing see every event in
// and out of the socket; their remove functions work.
func TestOnAnyAndOnAnyOutgoing(t *testing.T) {
	seen := make(chan string, 20)
	ready := make(chan *Socket, 1)
	s := startIO(t, Options{}, func(io *Server) {
		io.OnConnection(func(so *Socket) {
			so.OnAnyOutgoing(func(event string, args []Arg) { seen <- fmt.Sprintf("out %s %v", event, args) })
			off := so.OnAny(func(e *Event) { seen <- "in " + e.Name })
			so.On("stop", func(*Event) { off() })
			so.On("ping-me", func(e *Event) { _ = so.Emit("pong", e.Arg(0), 2) })
			ready <- so
		})
	})
	c, _ := connected(t, s, wsTransport, "/", "")
	so := recv(t, ready)
	c.send(`2["ping-me","x"]`)
	for _, want := range []string{`in ping-me`, `out pong ["x" 2]`} {
		if got := recv(t, seen); got != want {
			t.Fatalf("saw %q, want %q", got, want)
		}
	}
	c.expect(`2["pong","x",2]`)
	c.send(`2["stop"]`)
	if got := recv(t, seen); got != "in stop" {
		t.Fatalf("saw %q", got)
	}
	so.OffAnyOutgoing()
	c.send(`2["ping-me","y"]`)
	c.expect(`2["pong","y",2]`) // neither OnAny (removed) nor OnAnyOutgoing saw it
	select {
	case got := <-seen:
		t.Fatalf("a removed handler saw %q", got)
	default:
	}
}

// TestSocketEmitWithAck: the client's answer is returned; a deadline gives
// ErrAckTimeout; a disconnection ErrDisconnected; a late answer after the
// deadline is ignored.
func TestSocketEmitWithAck(t *testing.T) {
	ready := make(chan *Socket, 1)
	s := startIO(t, Options{}, func(io *Server) {
		io.OnConnection(func(so *Socket) { ready <- so })
	})
	c, _ := connected(t, s, wsTransport, "/", "")
	so := recv(t, ready)
	args, err := Args("q?", []byte{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		args []Arg
		err  error
	}
	results := make(chan result, 1)
	ask := func(ctx context.Context) {
		go func() {
			a, err := so.EmitWithAck(ctx, "ask", args...)
			results <- result{a, err}
		}()
	}
	ask(context.Background())
	var id int
	p := c.nextText()
	if _, err := fmt.Sscanf(p, `51-%d["ask","q?"`, &id); err != nil {
		t.Fatalf("got %q: %v", p, err)
	}
	c.next() // the attachment
	c.send(fmt.Sprintf(`3%d["yes",{"n":1}]`, id))
	r := recv(t, results)
	if r.err != nil || len(r.args) != 2 || string(r.args[0].JSON) != `"yes"` || string(r.args[1].JSON) != `{"n":1}` {
		t.Fatalf("EmitWithAck = %v, %v", r.args, r.err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	ask(ctx)
	p = c.nextText()
	c.next()
	r = recv(t, results)
	if !errors.Is(r.err, ErrAckTimeout) || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("after the deadline: %v, want ErrAckTimeout", r.err)
	}
	if _, err := fmt.Sscanf(p, `51-%d["ask"`, &id); err != nil {
		t.Fatal(err)
	}
	c.send(fmt.Sprintf(`3%d["late"]`, id)) // ignored: nobody waits

	ask(context.Background())
	c.nextText()
	c.next()
	so.Disconnect(false)
	if r := recv(t, results); !errors.Is(r.err, ErrDisconnected) {
		t.Fatalf("after Disconnect: %v, want ErrDisconnected", r.err)
	}
	// On a socket disconnected already: at once, not when ctx ends.
	ask(context.Background())
	if r := recv(t, results); !errors.Is(r.err, ErrDisconnected) {
		t.Fatalf("on a disconnected socket: %v, want ErrDisconnected", r.err)
	}
}

// TestBroadcastEmitWithAck: one response per recipient; ctx's deadline
// bounds the wait when no Timeout is set; neither is an error.
func TestBroadcastEmitWithAck(t *testing.T) {
	f := newRoomsFixture(t, wsTransport)
	answer := func(name, reply string) {
		c := f.clients[name]
		p := c.nextText()
		var id int
		if _, err := fmt.Sscanf(p, `2%d["poll"`, &id); err != nil {
			t.Fatalf("%s got %q: %v", name, p, err)
		}
		if reply != "" {
			c.send(fmt.Sprintf(`3%d[%s]`, id, reply))
		}
	}
	type result struct {
		args []Arg
		err  error
	}
	results := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	go func() {
		a, err := f.s.To("r1").EmitWithAck(ctx, "poll", MustArg("q?"))
		results <- result{a, err}
	}()
	answer("a", `"A"`)
	answer("b", `"B"`)
	r := recv(t, results)
	var got []string
	for _, a := range r.args {
		got = append(got, string(a.JSON))
	}
	if r.err != nil || strings.Join(got, " ") != `"A" "B"` && strings.Join(got, " ") != `"B" "A"` {
		t.Fatalf("EmitWithAck = %v, %v", got, r.err)
	}

	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	go func() {
		a, err := f.s.Sockets().EmitWithAck(short, "poll")
		results <- result{a, err}
	}()
	answer("a", `1`)
	answer("b", "")
	answer("c", `3`)
	r = recv(t, results)
	if !errors.Is(r.err, ErrAckTimeout) || len(r.args) != 2 {
		t.Fatalf("EmitWithAck with a silent recipient = %v, %v; want 2 responses and ErrAckTimeout", r.args, r.err)
	}

	if _, err := f.s.Sockets().EmitWithAck(context.Background(), "poll"); err == nil {
		t.Fatal("EmitWithAck with neither Timeout nor deadline: no error")
	}
}

// TestFuncArgumentRefused: a func is not an argument: ToArg and Emit say so
// clearly (a callback with the wrong signature was encoded as JSON's
// error before).
func TestFuncArgumentRefused(t *testing.T) {
	for _, v := range []any{func() {}, func(args []Arg) {}, make(chan int), []any{1, func() {}}} {
		if _, err := ToArg(v); !errors.Is(err, ErrFuncArgument) {
			t.Errorf("ToArg(%T) = %v, want ErrFuncArgument", v, err)
		}
	}
	s := startIO(t, Options{}, nil)
	if err := s.Emit("x", 1, func(args []Arg) {}); !errors.Is(err, ErrFuncArgument) {
		t.Errorf("Emit with a mistyped callback = %v, want ErrFuncArgument", err)
	}
}

// TestRemoteSocketDecodeData: DecodeData gives the same value for a socket
// of this node (a Go value in Data) and one of another node (JSON text).
func TestRemoteSocketDecodeData(t *testing.T) {
	type user struct {
		Name string `json:"name"`
		Age  int    `json:"age"`
	}
	dataSet := make(chan struct{})
	s := startIO(t, Options{}, func(io *Server) {
		io.OnConnection(func(so *Socket) { so.SetData(user{"ann", 7}); close(dataSet) })
	})
	connected(t, s, wsTransport, "/", "")
	// The client hears CONNECT before the connection handler runs (as
	// with Node), so wait for the handler to have set the data.
	select {
	case <-dataSet:
	case <-time.After(5 * time.Second):
		t.Fatal("connection handler did not run")
	}
	local, err := s.FetchSockets(context.Background())
	if err != nil || len(local) != 1 {
		t.Fatalf("FetchSockets = %v, %v", local, err)
	}
	remote := s.Sockets().newRemoteSocket("x", Handshake{}, nil, json.RawMessage(`{"name":"ann","age":7}`))
	for _, rs := range []*RemoteSocket{local[0], remote} {
		var u user
		var m map[string]any
		if err := rs.DecodeData(&u); err != nil || u != (user{"ann", 7}) {
			t.Errorf("DecodeData of %T = %+v, %v", rs.Data, u, err)
		}
		if err := rs.DecodeData(&m); err != nil || m["name"] != "ann" || m["age"] != 7.0 {
			t.Errorf("DecodeData of %T into a map = %v, %v", rs.Data, m, err)
		}
	}
	var u user
	if err := (&RemoteSocket{}).DecodeData(&u); err != nil || u != (user{}) {
		t.Errorf("no data: %+v, %v", u, err)
	}
	if err := (&RemoteSocket{Data: func() {}}).DecodeData(&u); err == nil {
		t.Error("a func as data decoded")
	}
}
