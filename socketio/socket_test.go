package socketio

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

var transports = []transport{wsTransport, pollingTransport}

func TestConnect(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			sockets := make(chan *Socket, 1)
			s := startIO(t, Options{}, func(io *Server) { io.OnConnection(func(so *Socket) { sockets <- so }) })
			c := dial(t, s, tr)
			a := c.connect("/", `{"token":"abc"}`)
			so := recv(t, sockets)
			if so.ID() != a.SID || len(a.SID) != 20 || a.PID != "" {
				t.Errorf("CONNECT answer %+v, socket %s", a, so.ID())
			}
			if so.ID() == c.sid {
				t.Error("the socket id is the Engine.IO session id, which must stay private")
			}
			h := so.Handshake()
			if string(h.Auth) != `{"token":"abc"}` || h.Query.Get("EIO") != "4" || h.Address == "" || !strings.HasPrefix(h.URL, "/socket.io/?") {
				t.Errorf("Handshake() = %+v", h)
			}
			if !so.Connected() || so.Recovered() || so.Namespace().Name() != "/" || so.Conn().ID() != c.sid {
				t.Errorf("socket: connected %v recovered %v nsp %s", so.Connected(), so.Recovered(), so.Namespace().Name())
			}
			if s.Sockets().Socket(so.ID()) != so || s.Sockets().Len() != 1 {
				t.Error("the namespace does not list the socket")
			}
			if got := so.Rooms(); len(got) != 1 || got[0] != so.ID() {
				t.Errorf("Rooms() = %q, want its own room", got)
			}
		})
	}
}

func TestNamespaces(t *testing.T) {
	events := make(chan string, 10)
	s := startIO(t, Options{}, func(io *Server) {
		for _, name := range []string{"/", "/admin", "chat"} { // "chat" is "/chat"
			io.Of(name).OnConnection(func(so *Socket) {
				so.On("where", func(e *Event) { events <- so.Namespace().Name() + " " + string(e.Arg(0).JSON) })
			})
		}
	})
	c := dial(t, s, wsTransport)
	admin := c.connect("/admin", "")
	main := c.connect("/", "")
	chat := c.connect("/chat", "")
	if admin.SID == main.SID || main.SID == chat.SID {
		t.Error("one socket id for two namespaces")
	}
	c.send(`2/admin,["where",1]`)
	c.send(`2["where",2]`)
	c.send(`2/chat,["where",3]`)
	for _, want := range []string{"/admin 1", "/ 2", "/chat 3"} {
		if got := recv(t, events); got != want {
			t.Errorf("event reached %q, want %q", got, want)
		}
	}
	// An unknown namespace is refused; the session stays.
	c.send("0/nope,")
	c.expect(`4/nope,{"message":"Invalid namespace"}`)
	s.Of("/admin").To(admin.SID).Emit("hi")
	c.expect(`2/admin,["hi"]`)
	if n := len(s.Namespaces()); n != 3 {
		t.Errorf("%d namespaces, want 3", n)
	}
}

// TestProtocolViolations: packets Node's server answers by closing the
// client close the session here too.
func TestProtocolViolations(t *testing.T) {
	tests := []struct {
		name    string
		packets []string
	}{
		{"event before connect", []string{`2["x"]`}},
		{"event for another namespace", []string{"0", `2/other,["x"]`}},
		{"connect twice", []string{"0", "0"}},
		{"bad packet", []string{"0", `2[`}},
		{"reserved event", []string{"0", `2["disconnect"]`}},
		{"connect error from a client", []string{"0", `4{"message":"x"}`}},
		{"text inside a binary packet", []string{"0", `51-["x",{"_placeholder":true,"num":0}]`, `2["y"]`}},
		// Node acks it as 9007199254740992, an id no client asked for.
		{"ack id beyond Number.MAX_SAFE_INTEGER", []string{"0", `29007199254740992["x"]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reasons := make(chan string, 1)
			s := startIO(t, Options{}, func(io *Server) {
				io.OnConnection(func(so *Socket) { so.OnDisconnect(func(r string, _ error) { reasons <- r }) })
			})
			c := dial(t, s, wsTransport)
			for _, p := range tt.packets {
				c.send(p)
			}
			code, _ := c.waitClosed()
			if code != websocket.CloseNormalClosure {
				t.Errorf("close code %d, want 1000", code)
			}
			if tt.packets[0] == "0" {
				if r := recv(t, reasons); r != ReasonForcedClose {
					t.Errorf("disconnect reason %q, want %q", r, ReasonForcedClose)
				}
			}
		})
	}
	t.Run("binary without a packet", func(t *testing.T) {
		s := startIO(t, Options{}, nil)
		c, _ := connected(t, s, wsTransport, "/", "")
		c.sendBinary([]byte{1})
		c.waitClosed()
	})
	t.Run("attachments over MaxAttachmentBytes", func(t *testing.T) {
		s := startIO(t, Options{MaxAttachmentBytes: 10}, nil)
		c, _ := connected(t, s, wsTransport, "/", "")
		c.send(`52-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)
		c.sendBinary(make([]byte, 6))
		c.sendBinary(make([]byte, 6))
		c.waitClosed()
	})
}

func TestMiddleware(t *testing.T) {
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	s := startIO(t, Options{}, func(io *Server) {
		io.Use(func(so *Socket) error { note("first"); return nil })
		io.Use(func(so *Socket) error {
			note("second")
			var auth struct{ Token string }
			_ = json.Unmarshal(so.Handshake().Auth, &auth)
			switch auth.Token {
			case "ok":
				so.SetData(map[string]any{"user": "alice"})
				return nil
			case "plain":
				return errors.New("plain error")
			}
			return &ConnectError{Message: "not authorized", Data: map[string]any{"code": 401, "hint": "<token>"}}
		})
		io.Use(func(so *Socket) error { note("third"); return nil })
		io.OnConnection(func(so *Socket) { note("connected " + fmt.Sprint(so.Data())) })
		io.Of("/open").OnConnection(func(*Socket) { note("open") })
	})
	c := dial(t, s, wsTransport)
	c.send(connectPacket("/", `{"token":"bad"}`))
	c.expect(`4{"data":{"code":401,"hint":"<token>"},"message":"not authorized"}`)
	c.send(connectPacket("/", `{"token":"plain"}`))
	c.expect(`4{"message":"plain error"}`)
	// Refused, the session stays: the client may try again, or join
	// another namespace (whose middlewares are its own).
	c.connect("/open", "")
	c.connect("/", `{"token":"ok"}`)
	// The connection handlers run after the CONNECT answer is queued: the
	// client may read it before the last one has run.
	want := "first second first second open first second third connected map[user:alice]"
	got := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(order, " ") }
	waitFor(t, "the connection handler", func() bool { return strings.Count(got(), " ") >= strings.Count(want, " ") })
	if got := got(); got != want {
		t.Errorf("calls: %s\nwant:  %s", got, want)
	}
}

// TestEventsAndAcksFromClient: the client's events reach the handlers in
// order with their arguments byte for byte; its acks are answered once.
func TestEventsAndAcksFromClient(t *testing.T) {
	type got struct {
		name  string
		args  string
		wants bool
	}
	events := make(chan got, 10)
	anys := make(chan string, 10)
	s := startIO(t, Options{}, func(io *Server) {
		io.OnConnection(func(so *Socket) {
			so.OnAny(func(e *Event) { anys <- e.Name })
			for _, name := range []string{"chat", "42", "ask", "late"} {
				so.On(name, func(e *Event) {
					var args []string
					for _, a := range e.Args {
						args = append(args, string(a.JSON))
					}
					events <- got{e.Name, strings.Join(args, "|"), e.WantsAck()}
					switch e.Name {
					case "ask":
						if err := e.Ack("answer", 2, nil, []byte("bin")); err != nil {
							t.Error(err)
						}
						_ = e.Ack("twice") // ignored
					case "late":
						go func() { _ = e.Ack("later") }() // from another goroutine, later
					case "chat":
						_ = e.Ack("not asked") // no ack id: nothing sent
					}
				})
			}
			so.Off("chat") // handlers add up: the one above is removed
			so.On("chat", func(e *Event) {
				events <- got{"replaced " + e.Name, string(e.Arg(0).JSON) + "|" + string(e.Arg(5).JSON), e.WantsAck()}
			})
		})
	})
	c, _ := connected(t, s, wsTransport, "/", "")
	c.send(`2["chat", {"b":1, "a":"\u00e9\ud800"} ]`)
	c.send(`2[42,true]`)
	c.send(`27["ask"]`)
	c.send(`28["late",1.50]`)
	for _, want := range []got{
		{"replaced chat", `{"b":1, "a":"\u00e9\ud800"}|null`, false},
		{"42", "true", false},
		{"ask", "", true},
		{"late", "1.50", true},
	} {
		if g := recv(t, events); g != want {
			t.Errorf("event %+v, want %+v", g, want)
		}
	}
	for _, want := range []string{"chat", "42", "ask", "late"} {
		if got := recv(t, anys); got != want {
			t.Errorf("OnAny saw %q, want %q", got, want)
		}
	}
	c.expect(`61-7["answer",2,null,{"_placeholder":true,"num":0}]`, "bin(62696e)", `38["later"]`)
	c.expectNothing()
}

// TestAckIDMaxSafeInteger: an ack id up to Number.MAX_SAFE_INTEGER is a
// valid JavaScript integer, accepted and answered byte for byte as Node
// (socket.io 4.8.4) does: `29007199254740991["ask"]` gets
// `39007199254740991["ok"]`.
func TestAckIDMaxSafeInteger(t *testing.T) {
	s := startIO(t, Options{}, func(io *Server) {
		io.OnConnection(func(so *Socket) {
			so.On("ask", func(e *Event) { _ = e.Ack("ok") })
		})
	})
	c, _ := connected(t, s, wsTransport, "/", "")
	c.send(`29007199254740991["ask"]`)
	c.send(`20000000000000000000000000042["ask"]`) // Number() drops the zeros
	c.expect(`39007199254740991["ok"]`, `342["ok"]`)
}

// TestEventMiddleware: Socket.Use sees events first; an error drops the
// event and goes to OnError.
func TestEventMiddleware(t *testing.T) {
	handled := make(chan string, 10)
	errs := make(chan error, 10)
	s := startIO(t, Options{}, func(io *Server) {
		io.OnConnection(func(so *Socket) {
			so.Use(func(e *Event) error {
				if e.Name == "forbidden" {
					return errors.New("no " + e.Name)
				}
				return nil
			})
			so.OnError(func(err error) { errs <- err })
			so.On("forbidden", func(e *Event) { handled <- e.Name })
			so.On("fine", func(e *Event) { handled <- e.Name })
		})
	})
	c, _ := connected(t, s, wsTransport, "/", "")
	c.send(`2["forbidden"]`)
	c.send(`2["fine"]`)
	if got := recv(t, handled); got != "fine" {
		t.Errorf("handled %q, want fine only", got)
	}
	if err := recv(t, errs); err.Error() != "no forbidden" {
		t.Errorf("OnError got %v", err)
	}
}

// TestAcksFromServer: Emit with an AckFunc, answered, late, and timed out.
func TestAcksFromServer(t *testing.T) {
	type ack struct {
		args string
		err  error
	}
	sockets := make(chan *Socket, 1)
	s := startIO(t, Options{}, func(io *Server) { io.OnConnection(func(so *Socket) { sockets <- so }) })
	c, _ := connected(t, s, wsTransport, "/", "")
	so := recv(t, sockets)
	acks := make(chan ack, 10)
	onAck := AckFunc(func(args []Arg, err error) {
		var parts []string
		for _, a := range args {
			parts = append(parts, string(a.JSON))
		}
		acks <- ack{strings.Join(parts, "|"), err}
	})

	// Answered: the client's arguments byte for byte.
	if err := so.Emit("question", "q", onAck); err != nil {
		t.Fatal(err)
	}
	p := c.nextText()
	var id int
	if _, err := fmt.Sscanf(p, `2%d["question","q"]`, &id); err != nil {
		t.Fatalf("event with ack %q: %v", p, err)
	}
	c.send(fmt.Sprintf(`3%d["yes", {"n":1.0}]`, id))
	if a := recv(t, acks); a.args != `"yes"|{"n":1.0}` || a.err != nil {
		t.Errorf("ack %+v", a)
	}
	// A second answer to the same id is ignored.
	c.send(fmt.Sprintf(`3%d["again"]`, id))

	// Timed out: ErrAckTimeout, and a late answer is ignored.
	start := time.Now()
	if err := so.Timeout(100*time.Millisecond).Emit("slow", onAck); err != nil {
		t.Fatal(err)
	}
	p = c.nextText()
	if _, err := fmt.Sscanf(p, `2%d["slow"]`, &id); err != nil {
		t.Fatalf("event with ack %q: %v", p, err)
	}
	a := recv(t, acks)
	if !errors.Is(a.err, ErrAckTimeout) || a.args != "" {
		t.Errorf("ack %+v, want ErrAckTimeout", a)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("timed out after %v", d)
	}
	c.send(fmt.Sprintf(`3%d["too late"]`, id))

	// Answered in time, with a timeout: the answer.
	if err := so.Timeout(waitTimeout).Emit("quick", []byte{7}, onAck); err != nil {
		t.Fatal(err)
	}
	p = c.nextText()
	if _, err := fmt.Sscanf(p, `51-%d["quick",{"_placeholder":true,"num":0}]`, &id); err != nil {
		t.Fatalf("binary event with ack %q: %v", p, err)
	}
	c.expect("bin(07)")
	// A binary ack.
	c.send(fmt.Sprintf(`61-%d[{"_placeholder":true,"num":0}]`, id))
	c.sendBinary([]byte("reply"))
	if a := recv(t, acks); a.args != `{"_placeholder":true,"num":0}` || a.err != nil {
		t.Errorf("binary ack %+v", a)
	}
	select {
	case a := <-acks:
		t.Errorf("unexpected ack call %+v", a)
	case <-time.After(quiet):
	}
}

// TestAckOnDisconnect: an AckFunc still waiting when its socket
// disconnects is called with an error (the doc's promise: "an error
// (timeout, disconnection)"); Node calls a callback with a timeout when
// the timeout comes, connected or not.
func TestAckOnDisconnect(t *testing.T) {
	for _, timeout := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run(fmt.Sprint("timeout ", timeout), func(t *testing.T) {
			sockets := make(chan *Socket, 1)
			s := startIO(t, Options{}, func(io *Server) { io.OnConnection(func(so *Socket) { sockets <- so }) })
			c, _ := connected(t, s, wsTransport, "/", "")
			so := recv(t, sockets)
			errs := make(chan error, 1)
			if err := so.Timeout(timeout).Emit("q", AckFunc(func(_ []Arg, err error) { errs <- err })); err != nil {
				t.Fatal(err)
			}
			c.nextText()
			c.kill()
			if err := recv(t, errs); err == nil {
				t.Error("AckFunc called without an error")
			}
		})
	}
}

func TestBinaryFromClient(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			args := make(chan []Arg, 1)
			s := startIO(t, Options{}, func(io *Server) {
				io.OnConnection(func(so *Socket) {
					so.On("upload", func(e *Event) {
						args <- e.Args
						_ = io.Emit("echo", e.Args[0], e.Args[1]) // forwarded as received
					})
				})
			})
			c, _ := connected(t, s, tr, "/", "")
			c.send(`52-["upload",{"name":"a.png","data":{"num":1,"_placeholder":true}},{"_placeholder":true,"num":0}]`)
			c.sendBinary([]byte("first"))
			c.sendBinary([]byte("second"))
			got := recv(t, args)
			if string(got[0].JSON) != `{"name":"a.png","data":{"_placeholder":true,"num":0}}` || string(got[0].Attachments[0]) != "second" {
				t.Errorf("arg 0 = %s %q", got[0].JSON, got[0].Attachments)
			}
			if b, ok := got[1].Bytes(); !ok || string(b) != "first" {
				t.Errorf("arg 1 = %s %q", got[1].JSON, got[1].Attachments)
			}
			c.expect(`52-["echo",{"name":"a.png","data":{"_placeholder":true,"num":0}},{"_placeholder":true,"num":1}]`,
				"bin(7365636f6e64)", "bin(6669727374)")
		})
	}
}

func TestBinaryFromServer(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			sockets := make(chan *Socket, 1)
			s := startIO(t, Options{}, func(io *Server) { io.OnConnection(func(so *Socket) { sockets <- so }) })
			c, _ := connected(t, s, tr, "/", "")
			so := recv(t, sockets)
			_ = so.Emit("files", []byte{1, 2}, map[string]any{"thumb": []byte{3}, "name": "x"}, []any{[]byte{}, "y"})
			c.expect(`53-["files",{"_placeholder":true,"num":0},{"name":"x","thumb":{"_placeholder":true,"num":1}},[{"_placeholder":true,"num":2},"y"]]`,
				"bin(0102)", "bin(03)", "bin()")
		})
	}
}

// TestDisconnectReasons: who disconnects, what each side sees.
func TestDisconnectReasons(t *testing.T) {
	type disc struct {
		reason string
		rooms  []string // in OnDisconnecting: still in its rooms
	}
	setup := func(t *testing.T) (*testIO, chan *Socket, chan disc) {
		sockets := make(chan *Socket, 2)
		discs := make(chan disc, 2)
		s := startIO(t, Options{}, func(io *Server) {
			for _, n := range []string{"/", "/other"} {
				io.Of(n).OnConnection(func(so *Socket) {
					so.Join("room")
					var rooms []string
					so.OnDisconnecting(func(string) { rooms = so.Rooms() })
					so.OnDisconnect(func(r string, _ error) { discs <- disc{r, rooms} })
					sockets <- so
				})
			}
		})
		return s, sockets, discs
	}
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Run("client namespace disconnect", func(t *testing.T) {
				s, sockets, discs := setup(t)
				c, sid := connected(t, s, tr, "/", "")
				recv(t, sockets)
				c.send("1")
				d := recv(t, discs)
				if d.reason != ReasonClientNamespaceDisconnect || fmt.Sprint(d.rooms) != fmt.Sprintf("[%s room]", sid) {
					t.Errorf("disconnect %+v", d)
				}
				// The session stays; the client may connect again.
				if c2 := c.connect("/", ""); c2.SID == sid {
					t.Error("reconnected with the same socket id")
				}
				select {
				case d := <-discs:
					t.Errorf("second disconnect %+v", d)
				case <-time.After(quiet):
				}
			})
			t.Run("server namespace disconnect", func(t *testing.T) {
				s, sockets, discs := setup(t)
				c, _ := connected(t, s, tr, "/", "")
				c.connect("/other", "")
				so := recv(t, sockets)
				other := recv(t, sockets)
				so.Disconnect(false)
				c.expect("1")
				if d := recv(t, discs); d.reason != ReasonServerNamespaceDisconnect {
					t.Errorf("disconnect %+v", d)
				}
				if so.Connected() || !other.Connected() {
					t.Error("Disconnect(false) did not disconnect only its namespace")
				}
				_ = other.Emit("still", "here")
				c.expect(`2/other,["still","here"]`)
				so.Disconnect(false) // harmless
			})
			t.Run("transport close", func(t *testing.T) {
				s, sockets, discs := setup(t)
				c, _ := connected(t, s, tr, "/", "")
				recv(t, sockets)
				c.kill()
				// A WebSocket that ends is a transport close; a poll
				// that the client abandons, a transport error (Node's
				// "poll connection closed prematurely").
				want := ReasonTransportClose
				if tr == pollingTransport {
					want = ReasonTransportError
				}
				if d := recv(t, discs); d.reason != want {
					t.Errorf("disconnect %+v, want %q", d, want)
				}
			})
			t.Run("client close packet", func(t *testing.T) {
				s, sockets, discs := setup(t)
				c, _ := connected(t, s, tr, "/", "")
				recv(t, sockets)
				if err := c.writeEngine("1"); err != nil {
					t.Fatal(err)
				}
				if d := recv(t, discs); d.reason != ReasonTransportClose {
					t.Errorf("disconnect %+v", d)
				}
			})
			t.Run("Disconnect(true)", func(t *testing.T) {
				s, sockets, discs := setup(t)
				c, _ := connected(t, s, tr, "/", "")
				c.connect("/other", "")
				so := recv(t, sockets)
				recv(t, sockets)
				_ = so.Emit("before", 1)
				so.Disconnect(true)
				code, before := c.waitClosed()
				want := []string{`2["before",1]`, "1", "1/other,"}
				if fmt.Sprint(before) != fmt.Sprint(want) {
					t.Errorf("before the close: %q, want %q", before, want)
				}
				if tr == wsTransport && code != websocket.CloseNormalClosure {
					t.Errorf("close code %d, want 1000", code)
				}
				for range 2 {
					if d := recv(t, discs); d.reason != ReasonServerNamespaceDisconnect {
						t.Errorf("disconnect %+v", d)
					}
				}
				waitFor(t, "session gone", func() bool { return s.Engine().Len() == 0 })
			})
		})
	}
}

// TestConnectTimeout: a session that joins no namespace in time is
// closed; one that joins is not.
func TestConnectTimeout(t *testing.T) {
	s := startIO(t, Options{ConnectTimeout: 200 * time.Millisecond}, nil)
	lazy := dial(t, s, wsTransport)
	prompt, _ := connected(t, s, wsTransport, "/", "")
	start := time.Now()
	if code, _ := lazy.waitClosed(); code != websocket.CloseNormalClosure {
		t.Errorf("close code %d", code)
	}
	if d := time.Since(start); d > 200*time.Millisecond+waitTimeout/2 {
		t.Errorf("closed after %v", d)
	}
	select {
	case <-prompt.done:
		t.Error("a connected client was closed")
	case <-time.After(300 * time.Millisecond):
	}
}

// TestEmitReserved: reserved names cannot be emitted.
func TestEmitReserved(t *testing.T) {
	sockets := make(chan *Socket, 1)
	s := startIO(t, Options{}, func(io *Server) { io.OnConnection(func(so *Socket) { sockets <- so }) })
	connected(t, s, wsTransport, "/", "")
	so := recv(t, sockets)
	for _, name := range []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener", "connection"} {
		if so.Emit(name) == nil || s.Emit(name) == nil {
			t.Errorf("Emit(%q) succeeded", name)
		}
	}
}

// TestSocketSize: a Socket fits the 192-byte allocation class (an idle
// connection's budget, docs/ARCHITECTURE.md "Per-connection budget"). A
// field that makes it grow past it costs 16 bytes or more per connection:
// put what few sockets use in socketRare or socketExtra.
func TestSocketSize(t *testing.T) {
	if n := unsafe.Sizeof(Socket{}); n > 192 {
		t.Errorf("Socket is %d bytes, over its 192-byte budget", n)
	}
}
