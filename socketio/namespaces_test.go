package socketio

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
)

// TestNamespacesBroadcastInParallel: each namespace has its own order
// lock, so a broadcast of one namespace does not wait for another's
// fan-out. /a's lock is held here as a long fan-out holds it (a broadcast
// to many recipients); meanwhile /b broadcasts, takes a new socket and
// changes rooms, and its clients (one of them in /a too, on the same
// Engine.IO session) get its packets; /a's broadcast goes out once its
// fan-out ends. With one lock for every namespace, /b's broadcast would
// wait for /a's and the test would fail at its deadline.
func TestNamespacesBroadcastInParallel(t *testing.T) {
	s := startIO(t, Options{}, func(io *Server) {
		io.Of("/a")
		io.Of("/b")
	})
	both := dial(t, s, wsTransport)
	both.connect("/a", "")
	both.connect("/b", "")
	polling, _ := connected(t, s, pollingTransport, "/b", "")
	a, b := s.Of("/a"), s.Of("/b")

	a.mu.Lock() // /a's fan-out is under way
	locked := true
	defer func() {
		if locked {
			a.mu.Unlock()
		}
	}()
	aDone := make(chan error, 1)
	go func() { aDone <- a.Emit("from a") }()

	bDone := make(chan error, 1)
	go func() { bDone <- b.Emit("from b") }()
	if err := recv(t, bDone); err != nil {
		t.Fatal(err)
	}
	both.expect(`2/b,["from b"]`)
	polling.expect(`2/b,["from b"]`)

	// /b's membership is not held by /a's lock either.
	late, _ := connected(t, s, wsTransport, "/b", "")
	joined := make(chan error, 1)
	go func() {
		for _, so := range b.localSockets(BroadcastOptions{}) {
			so.Join("room")
		}
		joined <- b.To("room").Emit("to room")
	}()
	if err := recv(t, joined); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*rawClient{both, polling, late} {
		c.expect(`2/b,["to room"]`)
	}

	select {
	case err := <-aDone:
		t.Fatalf("/a's broadcast returned (%v) while its fan-out was under way", err)
	default:
	}
	locked = false
	a.mu.Unlock()
	if err := recv(t, aDone); err != nil {
		t.Fatal(err)
	}
	both.expect(`2/a,["from a"]`)
}

// TestNamespaceOrderUnderConcurrentSenders: four namespaces broadcast at
// once, from several goroutines each and from clients' handlers; every
// client, in all four on one session, over WebSocket or polling, sees each
// namespace's broadcasts in one order, the same for every client, each
// sender's in its order, none lost or duplicated. (The order between two
// namespaces is not guaranteed, and not checked.)
func TestNamespaceOrderUnderConcurrentSenders(t *testing.T) {
	const sendersPerNsp, perSender = 3, 60
	names := []string{"/", "/n1", "/n2", "/n3"}
	s := startIO(t, Options{}, func(io *Server) {
		for _, name := range names {
			nsp := io.Of(name)
			nsp.OnConnection(func(so *Socket) {
				so.On("say", func(e *Event) { _ = nsp.Emit("said", e.Args[0]) })
			})
		}
	})
	var clients []*rawClient
	for i := range 6 {
		c := dial(t, s, transports[i%2])
		for _, name := range names {
			c.connect(name, "")
		}
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	for _, name := range names {
		nsp := s.Of(name)
		for i := range sendersPerNsp {
			wg.Go(func() {
				for j := range perSender {
					if err := nsp.Emit("said", fmt.Sprintf("s%d:%d", i, j)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	// And a client's events, broadcast from its handlers, in each namespace.
	c0 := clients[0]
	wg.Go(func() {
		for j := range perSender {
			for _, name := range names {
				if err := c0.writeEngine(fmt.Sprintf(`42%s["say","c:%d"]`, nspPrefix(name), j)); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	wg.Wait()
	perNsp := sendersPerNsp*perSender + perSender
	total := len(names) * perNsp
	first := map[string][]string{}
	for r, c := range clients {
		seqs := map[string][]string{}
		next := map[string]int{}
		for range total {
			nsp, v := saidIn(t, c.nextText())
			from, n, _ := strings.Cut(v, ":")
			key := nsp + " " + from
			if want := fmt.Sprint(next[key]); n != want {
				t.Fatalf("client %d, %s: %q after %d of %s: lost, duplicated or reordered", r, nsp, v, next[key], from)
			}
			next[key]++
			seqs[nsp] = append(seqs[nsp], v)
		}
		for _, name := range names {
			if len(seqs[name]) != perNsp {
				t.Fatalf("client %d: %d broadcasts of %s, want %d", r, len(seqs[name]), name, perNsp)
			}
			if r == 0 {
				first[name] = seqs[name]
				continue
			}
			if i := firstDifference(first[name], seqs[name]); i >= 0 {
				t.Errorf("client %d (%s), %s: differs from client 0 at %d: %q, client 0 %q",
					r, c.transport, name, i, seqs[name][i], first[name][i])
			}
		}
	}
}

// TestParentBroadcastOrderPerChild: a dynamic namespace's broadcasts and
// its children's own, made concurrently, reach every client of a child in
// one order (the child's order lock): the guarantee is per child, and the
// order between two children is not checked (it may differ, as in Node).
func TestParentBroadcastOrderPerChild(t *testing.T) {
	const perSender = 60
	var parent *ParentNamespace
	s := startIO(t, Options{}, func(io *Server) {
		parent = io.OfRegexp(regexp.MustCompile(`^/room-\d+$`))
	})
	children := []string{"/room-1", "/room-2"}
	var clients []*rawClient
	for i := range 4 {
		c := dial(t, s, transports[i%2])
		c.connect(children[i%2], "")
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			for j := range perSender {
				if err := parent.Emit("said", fmt.Sprintf("p%d:%d", i, j)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for _, name := range children {
		nsp := s.Of(name)
		wg.Go(func() {
			for j := range perSender {
				if err := nsp.Emit("said", fmt.Sprintf("c:%d", j)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	first := map[string][]string{}
	for r, c := range clients {
		name := children[r%2]
		next := map[string]int{}
		var seq []string
		for range 3 * perSender {
			nsp, v := saidIn(t, c.nextText())
			if nsp != name {
				t.Fatalf("client %d of %s got a broadcast of %s", r, name, nsp)
			}
			from, n, _ := strings.Cut(v, ":")
			if want := fmt.Sprint(next[from]); n != want {
				t.Fatalf("client %d, %s: %q after %d of %s: lost, duplicated or reordered", r, name, v, next[from], from)
			}
			next[from]++
			seq = append(seq, v)
		}
		if first[name] == nil {
			first[name] = seq
			continue
		}
		if i := firstDifference(first[name], seq); i >= 0 {
			t.Errorf("client %d (%s) of %s differs from the child's first client at %d: %q, not %q", r, c.transport, name, i, seq[i], first[name][i])
		}
	}
}

// saidIn parses a "said" EVENT of any namespace: the namespace and the
// argument.
func saidIn(tb testing.TB, packet string) (nsp, arg string) {
	tb.Helper()
	nsp = "/"
	body, ok := strings.CutPrefix(packet, "2")
	if !ok {
		tb.Fatalf("packet %q is not an EVENT", packet)
	}
	if strings.HasPrefix(body, "/") {
		name, rest, ok := strings.Cut(body, ",")
		if !ok {
			tb.Fatalf("packet %q: no end to its namespace", packet)
		}
		nsp, body = name, rest
	}
	var a []string
	if err := json.Unmarshal([]byte(body), &a); err != nil || len(a) != 2 || a[0] != "said" {
		tb.Fatalf("packet %q: %v", packet, err)
	}
	return nsp, a[1]
}

// BenchmarkNamespacesParallel: broadcasts from parallel goroutines, each
// to a room of 100 of 400 clients, with the 4 rooms in one namespace
// (every broadcast takes the same order lock) or one in each of 4
// namespaces (each has its own). The recipients, the code path and the
// bytes are the same; the difference is the wait for the order lock.
// recipients=queued are long-polling clients that do not poll while it
// runs: a broadcast is only its fan-out (encoding once, then a queue
// append per recipient, under the order lock), which 1 namespace runs one
// at a time and 4 run on as many cores as there are; recipients=websocket
// adds the writes (flush goroutines, system calls) of a real client.
func BenchmarkNamespacesParallel(b *testing.B) {
	msg := Arg{JSON: []byte(`{"from":"alice","text":"hello, everyone","at":1712345678901}`)}
	const groups, perGroup = 4, 100
	for _, recipients := range []string{"queued", "websocket"} {
		for _, nsps := range []int{1, 4} {
			b.Run(fmt.Sprintf("recipients=%s/namespaces=%d", recipients, nsps), func(b *testing.B) {
				opts := Options{
					Logger: slog.New(slog.DiscardHandler),
					Engine: engineio.Options{MaxQueuedPackets: 1 << 24, MaxQueuedBytes: 1 << 34},
				}
				name := func(g int) string {
					if nsps == 1 {
						return "/"
					}
					return fmt.Sprintf("/g%d", g)
				}
				s := startIO(b, opts, func(io *Server) {
					for g := range groups {
						io.Of(name(g))
					}
				})
				var sessions []*engineio.Session
				targets := make([]*BroadcastOperator, groups)
				for g := range groups {
					nsp, room := s.Of(name(g)), fmt.Sprintf("room%d", g)
					targets[g] = nsp.To(room)
					for range perGroup {
						if recipients == "websocket" {
							sessions = append(sessions, drainingClientOf(b, s, name(g)))
							continue
						}
						m := manualPollOpen(b, s)
						m.post("4" + connectPacket(name(g), ""))
						if got := m.get(); len(got) != 1 || !strings.HasPrefix(got[0], "40"+nspPrefix(name(g))+"{") {
							b.Fatalf("CONNECT answered %q", got)
						}
					}
					for _, so := range nsp.localSockets(BroadcastOptions{}) {
						if len(so.Rooms()) == 1 {
							so.Join(room)
						}
					}
				}
				var next sync.Mutex
				g := 0
				b.ReportAllocs()
				b.SetParallelism(2) // 2×GOMAXPROCS goroutines, spread over the groups
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					next.Lock()
					op := targets[g%groups]
					g++
					next.Unlock()
					for pb.Next() {
						if err := op.Emit("chat message", msg); err != nil {
							b.Error(err)
							return
						}
					}
				})
				for _, sess := range sessions {
					for {
						if p, _ := sess.Queued(); p == 0 {
							break
						}
						time.Sleep(100 * time.Microsecond)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perGroup), "ns/recipient")
			})
		}
	}
}
