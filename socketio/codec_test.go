package socketio

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
	"github.com/gorilla/websocket"
)

// mpSend sends a msgpack packet, as socket.io-msgpack-parser writes it.
func (c *rawClient) mpSend(typ int, nsp string, id int64, name string, args []Arg, payload []byte) {
	c.tb.Helper()
	withName := typ == typeEvent
	c.sendBinary(encodeMsgpackPacket(typ, nsp, id, name, withName, args, payload).Payload())
}

// mpPacket is a decoded msgpack packet a test client received.
type mpPacket struct {
	typ  int
	nsp  string
	id   int64
	data string // JSON
	args []Arg
}

// mpNext waits for the next packet, which must be a msgpack one.
func (c *rawClient) mpNext() mpPacket {
	c.tb.Helper()
	m := c.next()
	if !m.binary {
		c.tb.Fatalf("client %s: got text %q, want a msgpack packet", c.sid, m.text)
	}
	p, err := decodeMsgpackPacket(m.bin)
	if err != nil && !strings.Contains(err.Error(), "type") {
		c.tb.Fatalf("client %s: %x: %v", c.sid, m.bin, err)
	}
	if p == nil {
		// CONNECT_ERROR (4), which clients only receive: read it by hand.
		return mpPacket{typ: typeConnectError}
	}
	out := mpPacket{typ: p.typ, nsp: p.nsp, id: p.id, data: string(p.data)}
	if p.typ == typeEvent || p.typ == typeAck {
		out.args, _ = p.argsFrom(0)
	}
	return out
}

// mpConnect joins nsp with the msgpack parser and returns the socket id.
func (c *rawClient) mpConnect(nsp, auth string) connectAnswer {
	c.tb.Helper()
	var payload []byte
	if auth != "" {
		payload = []byte(auth)
	}
	c.mpSend(typeConnect, nsp, -1, "", nil, payload)
	p := c.mpNext()
	var a connectAnswer
	if p.typ != typeConnect || json.Unmarshal([]byte(p.data), &a) != nil || a.SID == "" {
		c.tb.Fatalf("client %s: CONNECT answer %+v", c.sid, p)
	}
	return a
}

func argsText(args []Arg) string {
	var b []string
	for _, a := range args {
		s := string(a.JSON)
		for _, att := range a.Attachments {
			s += "+bin(" + string(att) + ")"
		}
		b = append(b, s)
	}
	return strings.Join(b, ",")
}

// With AutoParser, JSON and msgpack clients, over WebSocket and polling,
// chat together: each gets every message in its own format, binary
// included, and acknowledgements work both ways.
func TestAutoParserChatsWithBothParsers(t *testing.T) {
	s := startIO(t, Options{Parser: AutoParser}, func(io *Server) {
		io.OnConnection(func(s *Socket) {
			s.On("chat", func(e *Event) {
				args := make([]any, len(e.Args))
				for i, a := range e.Args {
					args[i] = a
				}
				_ = io.Emit("chat", args...)
				if e.WantsAck() {
					_ = e.Ack("got", len(e.Args))
				}
			})
		})
	})
	jsonWS, _ := connected(t, s, wsTransport, "/", "")
	jsonPoll, _ := connected(t, s, pollingTransport, "/", "")
	mpWS := dial(t, s, wsTransport)
	mpWS.mpConnect("/", `{"token":"x"}`)
	mpPoll := dial(t, s, pollingTransport)
	mpPoll.mpConnect("/", "")

	// A msgpack client chats, with binary and an ack.
	mpWS.mpSend(typeEvent, "/", 4, "chat", []Arg{{JSON: json.RawMessage(`{"text":"hi","n":1.5,"ok":true,"none":null,"list":[1,"a"]}`)}, Binary([]byte("BIN"))}, nil)
	for _, c := range []*rawClient{jsonWS, jsonPoll} {
		c.expect(`51-["chat",{"text":"hi","n":1.5,"ok":true,"none":null,"list":[1,"a"]},{"_placeholder":true,"num":0}]`, "bin(42494e)")
	}
	for _, c := range []*rawClient{mpWS, mpPoll} {
		p := c.mpNext()
		if p.typ != typeEvent || p.id != -1 || argsText(p.args) != `"chat",{"text":"hi","n":1.5,"ok":true,"none":null,"list":[1,"a"]},{"_placeholder":true,"num":0}+bin(BIN)` {
			t.Fatalf("msgpack client got %+v (%s)", p, argsText(p.args))
		}
	}
	if p := mpWS.mpNext(); p.typ != typeAck || p.id != 4 || argsText(p.args) != `"got",2` {
		t.Fatalf("ack %+v (%s)", p, argsText(p.args))
	}

	// A JSON client chats; the msgpack clients get it in msgpack.
	jsonPoll.send(`2["chat","from json",[{"k":"v"}]]`)
	for _, c := range []*rawClient{jsonWS, jsonPoll} {
		c.expect(`2["chat","from json",[{"k":"v"}]]`)
	}
	for _, c := range []*rawClient{mpWS, mpPoll} {
		if p := c.mpNext(); argsText(p.args) != `"chat","from json",[{"k":"v"}]` {
			t.Fatalf("msgpack client got %+v", p)
		}
	}

	// A text message from a msgpack client is refused, and costs only it.
	mpPoll.send(`2["chat","text"]`)
	mpPoll.waitClosed()
	jsonWS.send(`2["chat","still here"]`)
	jsonWS.expect(`2["chat","still here"]`)
	if p := mpWS.mpNext(); argsText(p.args) != `"chat","still here"` {
		t.Fatalf("msgpack client got %+v", p)
	}
}

// With MsgpackParser, a JSON client is refused (a text message), as a
// Node server with the msgpack parser refuses it.
func TestMsgpackParserRefusesJSONClients(t *testing.T) {
	s := startIO(t, Options{Parser: MsgpackParser}, nil)
	c := dial(t, s, wsTransport)
	c.send("0")
	c.waitClosed()
	m := dial(t, s, wsTransport)
	m.mpConnect("/", "")
}

// A broadcast is encoded once per wire format among its recipients, not
// once per recipient.
func TestBroadcastEncodedOncePerParser(t *testing.T) {
	m := &multiEncoded{nsp: "/", id: -1, event: "chat", args: []Arg{{JSON: json.RawMessage(`"hi"`)}}}
	first := map[parserKind][]byte{}
	for i := range 10 {
		k := parserKind(i % 2)
		msgs := m.forRecipient(k)
		b := msgs[0].Payload()
		if first[k] == nil {
			first[k] = b
		} else if &first[k][0] != &b[0] {
			t.Fatalf("recipient %d got an encoding of its own", i)
		}
	}
	if bytes.Equal(first[kindJSON], first[kindMsgpack]) {
		t.Fatal("both formats got the same bytes")
	}
}

// A msgpack client recovers its session: the broadcasts it missed come
// in msgpack, transcoded from the recovery log.
func TestMsgpackRecovery(t *testing.T) {
	s := startIO(t, Options{Parser: AutoParser, Recovery: &RecoveryOptions{}}, nil)
	c := dial(t, s, wsTransport)
	a := c.mpConnect("/", "")
	if a.PID == "" {
		t.Fatal("no pid")
	}
	_ = s.Emit("news", "one")
	p := c.mpNext()
	if len(p.args) != 3 {
		t.Fatalf("broadcast %+v", p)
	}
	var offset string
	_ = p.args[2].Decode(&offset)
	c.kill()
	waitFor(t, "the socket to go", func() bool { return len(s.Sockets().localSockets(BroadcastOptions{})) == 0 })
	_ = s.Emit("news", "two", []byte{7})
	d := dial(t, s, pollingTransport)
	b := d.mpConnect("/", `{"pid":"`+a.PID+`","offset":"`+offset+`"}`)
	if b.SID != a.SID {
		t.Fatalf("not recovered: %+v, was %+v", b, a)
	}
	p = d.mpNext()
	if p.typ != typeEvent || len(p.args) != 4 || argsText(p.args[:3]) != `"news","two",{"_placeholder":true,"num":0}+bin(`+"\x07"+`)` {
		t.Fatalf("missed broadcast %+v (%s)", p, argsText(p.args))
	}
}

// drainingMsgpackClient is drainingClient for a msgpack client.
func drainingMsgpackClient(tb testing.TB, s *testIO) *engineio.Session {
	tb.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	_, open, err := conn.ReadMessage()
	if err != nil {
		tb.Fatal(err)
	}
	if err := conn.WriteMessage(websocket.BinaryMessage, encodeMsgpackPacket(typeConnect, "/", -1, "", false, nil, nil).Payload()); err != nil {
		tb.Fatal(err)
	}
	if typ, p, err := conn.ReadMessage(); err != nil || typ != websocket.BinaryMessage {
		tb.Fatalf("CONNECT answer %x %v", p, err)
	}
	go func() { _, _ = io.Copy(io.Discard, conn.NetConn()) }()
	var sid string
	if i := strings.Index(string(open), `"sid":"`); i >= 0 {
		sid = string(open[i+7 : i+27])
	}
	sess := s.Engine().Session(sid)
	if sess == nil {
		tb.Fatalf("no session %q", sid)
	}
	return sess
}

// BenchmarkParserEmit is BenchmarkNamespaceEmit for each parser setting
// and mix of clients: what AutoParser costs JSON clients, and what a
// broadcast to msgpack clients (and to both kinds) costs.
func BenchmarkParserEmit(b *testing.B) {
	msg := Arg{JSON: []byte(`{"from":"alice","text":"hello, everyone","at":1712345678901}`)}
	const n = 1000
	for _, c := range []struct {
		name      string
		parser    Parser
		msgpackOf int // every msgpackOf-th client speaks msgpack; 0: none
	}{
		{"json/json-clients", JSONParser, 0},
		{"auto/json-clients", AutoParser, 0},
		{"auto/half-msgpack", AutoParser, 2},
		{"auto/msgpack-clients", AutoParser, 1},
		{"msgpack/msgpack-clients", MsgpackParser, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := startIO(b, Options{
				Parser: c.parser,
				Logger: slog.New(slog.DiscardHandler),
				Engine: engineio.Options{MaxQueuedPackets: 1 << 24, MaxQueuedBytes: 1 << 34},
			}, nil)
			sessions := make([]*engineio.Session, n)
			for i := range sessions {
				if c.msgpackOf > 0 && i%c.msgpackOf == 0 {
					sessions[i] = drainingMsgpackClient(b, s)
				} else {
					sessions[i] = drainingClient(b, s)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				if err := s.Emit("chat message", msg); err != nil {
					b.Fatal(err)
				}
			}
			for _, sess := range sessions {
				for {
					if p, _ := sess.Queued(); p == 0 {
						break
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/recipient")
			// The process's CPU time (the server's and its clients'), less
			// sensitive than wall time to other processes on the machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*n), "cpu-ns/recipient")
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkParserCodec decodes a chat event as it arrives and encodes the
// broadcast, in each format.
func BenchmarkParserCodec(b *testing.B) {
	args := []Arg{{JSON: []byte(`{"from":"alice","text":"hello, everyone","at":1712345678901}`)}}
	for _, k := range []parserKind{kindJSON, kindMsgpack} {
		name := []string{"json", "msgpack"}[k]
		in := encodeEventFor(k, "/", -1, "chat message", args)[0].Payload()
		b.Run(name+"/decode", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				var p *packet
				var err error
				if k == kindMsgpack {
					p, err = decodeMsgpackPacket(in)
				} else {
					p, err = decodePacket(in)
				}
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.argsFrom(1); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = encodeEventFor(k, "/", -1, "chat message", args)
			}
		})
	}
}

// The count of sessions of each format, which decides what a broadcast
// encodes ahead, follows AutoParser clients in and out.
func TestParserUseCounted(t *testing.T) {
	s := startIO(t, Options{Parser: AutoParser}, nil)
	j, _ := connected(t, s, wsTransport, "/", "")
	m := dial(t, s, pollingTransport)
	m.mpConnect("/", "")
	undecided := dial(t, s, wsTransport) // no packet yet: neither
	if !s.parsers.inUse(kindJSON) || !s.parsers.inUse(kindMsgpack) {
		t.Fatalf("in use: json %d, msgpack %d", s.parsers[kindJSON].Load(), s.parsers[kindMsgpack].Load())
	}
	j.kill()
	m.kill()
	undecided.kill()
	waitFor(t, "no session of either format", func() bool {
		return s.parsers[kindJSON].Load() == 0 && s.parsers[kindMsgpack].Load() == 0 && s.Engine().Len() == 0
	})
}
