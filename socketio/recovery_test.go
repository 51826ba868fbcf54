package socketio

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recoveryAuth is the auth of a CONNECT that asks to recover.
func recoveryAuthJSON(pid, offset string) string {
	return fmt.Sprintf(`{"pid":%q,"offset":%q}`, pid, offset)
}

// broadcastArgs reads an EVENT with recovery on: its name, arguments and
// offset (the last argument).
func broadcastArgs(packet string) (name string, args []json.RawMessage, offset string, err error) {
	if len(packet) < 2 || packet[:2] != "2[" {
		return "", nil, "", fmt.Errorf("packet %q is not an EVENT of /", packet)
	}
	var a []json.RawMessage
	if err := json.Unmarshal([]byte(packet[1:]), &a); err != nil || len(a) < 2 {
		return "", nil, "", fmt.Errorf("packet %q: %v", packet, err)
	}
	_ = json.Unmarshal(a[0], &name)
	if err := json.Unmarshal(a[len(a)-1], &offset); err != nil {
		return "", nil, "", fmt.Errorf("packet %q has no offset: %v", packet, err)
	}
	return name, a[1 : len(a)-1], offset, nil
}

func TestRecovery(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			var middlewares atomic.Int32
			sockets := make(chan *Socket, 4)
			s := startIO(t, Options{Recovery: &RecoveryOptions{MaxDisconnectionDuration: time.Minute, SkipMiddlewares: true}}, func(io *Server) {
				io.Use(func(*Socket) error { middlewares.Add(1); return nil })
				io.OnConnection(func(so *Socket) {
					if !so.Recovered() {
						so.Join("room")
						so.SetData("kept")
					}
					sockets <- so
				})
			})
			c := dial(t, s, tr)
			a := c.connect("/", "")
			if a.PID == "" {
				t.Fatalf("CONNECT answer %+v without a pid", a)
			}
			first := recv(t, sockets)
			_ = s.Emit("m", 0)
			_, _, offset, err := broadcastArgs(c.nextText())
			if err != nil {
				t.Fatal(err)
			}

			c.kill()
			waitFor(t, "the server noticed", func() bool { return s.Sockets().Socket(a.SID) == nil })
			// Missed: to all, to its room, to itself (Socket.Emit is
			// logged too with recovery); not for it: other rooms.
			_ = s.Emit("m", 1)
			_ = s.To("room").Emit("m", 2)
			_ = s.To("elsewhere").Emit("not for it")
			_ = s.Except("room").Emit("not for it")
			_ = first.Emit("m", 3)
			_ = s.To(a.SID).Emit("m", 4)

			c2 := dial(t, s, tr)
			a2 := c2.connect("/", recoveryAuthJSON(a.PID, offset))
			if a2 != a {
				t.Fatalf("recovered with %+v, want %+v", a2, a)
			}
			so := recv(t, sockets)
			if !so.Recovered() || so.ID() != a.SID || so.Data() != "kept" || fmt.Sprint(so.Rooms()) != fmt.Sprintf("[%s room]", a.SID) {
				t.Errorf("recovered socket: recovered %v id %s data %v rooms %q", so.Recovered(), so.ID(), so.Data(), so.Rooms())
			}
			if n := middlewares.Load(); n != 1 {
				t.Errorf("middlewares ran %d times, want once (SkipMiddlewares)", n)
			}
			_ = s.Emit("m", 5) // live
			for want := 1; want <= 5; want++ {
				name, args, _, err := broadcastArgs(c2.nextText())
				if err != nil || name != "m" || len(args) != 1 || string(args[0]) != strconv.Itoa(want) {
					t.Fatalf("after the recovery: %s %s %v, want m %d", name, args, err, want)
				}
			}
			c2.expectNothing()

			// The saved session is taken: a second recovery fails.
			c3 := dial(t, s, tr)
			if a3 := c3.connect("/", recoveryAuthJSON(a.PID, offset)); a3.SID == a.SID || a3.PID == a.PID {
				t.Errorf("recovered twice: %+v", a3)
			}
			if so := recv(t, sockets); so.Recovered() {
				t.Error("Recovered() of a new socket")
			}
		})
	}
}

func TestRecoveryRefused(t *testing.T) {
	setup := func(t *testing.T, window time.Duration) (*testIO, *rawClient, connectAnswer, string) {
		s := startIO(t, Options{Recovery: &RecoveryOptions{MaxDisconnectionDuration: window}}, nil)
		c := dial(t, s, wsTransport)
		a := c.connect("/", "")
		_ = s.Emit("m")
		_, _, offset, err := broadcastArgs(c.nextText())
		if err != nil {
			t.Fatal(err)
		}
		return s, c, a, offset
	}
	newSocket := func(t *testing.T, s *testIO, auth string, old connectAnswer) {
		t.Helper()
		c := dial(t, s, wsTransport)
		if a := c.connect("/", auth); a.SID == old.SID || a.PID == old.PID || a.PID == "" {
			t.Errorf("CONNECT with %s: %+v, want a new socket (old %+v)", auth, a, old)
		}
		c.expectNothing() // and no replay
	}
	t.Run("client namespace disconnect is not recoverable", func(t *testing.T) {
		s, c, a, offset := setup(t, time.Minute)
		c.send("1")
		waitFor(t, "disconnected", func() bool { return s.Sockets().Socket(a.SID) == nil })
		_ = s.Emit("missed")
		newSocket(t, s, recoveryAuthJSON(a.PID, offset), a)
	})
	t.Run("window over", func(t *testing.T) {
		s, c, a, offset := setup(t, 100*time.Millisecond)
		c.kill()
		waitFor(t, "disconnected", func() bool { return s.Sockets().Socket(a.SID) == nil })
		waitUntil := time.Now().Add(200 * time.Millisecond)
		<-time.After(time.Until(waitUntil))
		newSocket(t, s, recoveryAuthJSON(a.PID, offset), a)
	})
	t.Run("unknown offset", func(t *testing.T) {
		s, c, a, _ := setup(t, time.Minute)
		c.kill()
		waitFor(t, "disconnected", func() bool { return s.Sockets().Socket(a.SID) == nil })
		newSocket(t, s, recoveryAuthJSON(a.PID, "zzzz"), a)
	})
	t.Run("unknown pid", func(t *testing.T) {
		s, c, a, offset := setup(t, time.Minute)
		c.kill()
		waitFor(t, "disconnected", func() bool { return s.Sockets().Socket(a.SID) == nil })
		newSocket(t, s, recoveryAuthJSON("nobody", offset), a)
	})
	t.Run("offset not a string", func(t *testing.T) {
		s, c, a, _ := setup(t, time.Minute)
		c.kill()
		waitFor(t, "disconnected", func() bool { return s.Sockets().Socket(a.SID) == nil })
		newSocket(t, s, fmt.Sprintf(`{"pid":%q,"offset":1}`, a.PID), a)
	})
}

// TestRecoveryExactlyOnce: clients that lose their transport at random
// moments and recover, while broadcasts go on at full speed, get every
// broadcast exactly once and in order, over every transport.
func TestRecoveryExactlyOnce(t *testing.T) {
	const (
		clients    = 8
		broadcasts = 3000
	)
	s := startIO(t, Options{Recovery: &RecoveryOptions{MaxDisconnectionDuration: time.Minute}}, nil)
	type result struct {
		recoveries int
		err        error
	}
	results := make(chan result, clients)
	ready := make(chan struct{}, clients)
	start := make(chan struct{})
	for i := range clients {
		tr := transports[i%2]
		go func() {
			n, err := churn(t, s, tr, broadcasts, rand.New(rand.NewPCG(uint64(i), 1)), ready, start)
			results <- result{n, err}
		}()
	}
	for range clients {
		<-ready
	}
	close(start)
	for i := range broadcasts {
		if err := s.Emit("seq", i); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			<-time.After(time.Millisecond) // let the clients' reconnections interleave
		}
	}
	total := 0
	for range clients {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
		}
		total += r.recoveries
	}
	t.Logf("%d clients, %d broadcasts each, %d recoveries", clients, broadcasts, total)
	if total < clients {
		t.Errorf("only %d recoveries", total)
	}
}

// churn is one client of TestRecoveryExactlyOnce: it connects, reads a
// random number of broadcasts, kills its transport, waits until the
// server noticed, recovers from its last offset, and so on until it has
// the last broadcast. Any gap, duplicate or failed recovery is an error.
func churn(tb testing.TB, s *testIO, tr transport, broadcasts int, rnd *rand.Rand, ready chan<- struct{}, start <-chan struct{}) (recoveries int, err error) {
	var (
		a      connectAnswer
		offset string
		next   = 0 // the next seq expected
	)
	for {
		c, err := tryDial(tb, s, tr)
		if err != nil {
			return recoveries, err
		}
		auth := ""
		if a.PID != "" {
			auth = recoveryAuthJSON(a.PID, offset)
		}
		got, err := c.tryConnect("/", auth)
		if err != nil {
			return recoveries, err
		}
		if a.PID != "" {
			if got != a {
				return recoveries, fmt.Errorf("%s client: recovery from offset %s answered %+v, want %+v", tr, offset, got, a)
			}
			recoveries++
		} else {
			a = got
			ready <- struct{}{}
			<-start
		}
		for k := 20 + rnd.IntN(400); k > 0; k-- {
			m, err := c.tryNext()
			if err != nil {
				return recoveries, err
			}
			name, args, off, err := broadcastArgs(m.text)
			if err != nil {
				return recoveries, err
			}
			if name != "seq" || len(args) != 1 || string(args[0]) != strconv.Itoa(next) {
				return recoveries, fmt.Errorf("%s client after %d recoveries: got %s %s, want seq %d (lost, duplicated or reordered)", tr, recoveries, name, args, next)
			}
			next++
			offset = off
			if next == broadcasts {
				return recoveries, nil
			}
		}
		// A WebSocket's TCP connection is cut. A polling client that
		// stops polling is noticed only by the heartbeat (or if a GET
		// was pending), so it leaves with a CLOSE packet: the server
		// drops what it had queued for it either way.
		if tr == pollingTransport {
			_ = c.writeEngine("1")
		}
		c.kill()
		deadline := time.Now().Add(waitTimeout)
		for s.Sockets().Socket(a.SID) != nil {
			if time.Now().After(deadline) {
				return recoveries, errors.New("the server did not notice a killed transport")
			}
			<-time.After(time.Millisecond)
		}
	}
}

// TestRecoveryConcurrentBroadcastSeam: many rounds of one client
// recovering while several goroutines broadcast, racing with the
// recovery's join: the replay and live traffic never overlap or leave a
// gap.
func TestRecoveryConcurrentBroadcastSeam(t *testing.T) {
	const rounds, senders, perSender = 30, 3, 30
	s := startIO(t, Options{Recovery: &RecoveryOptions{MaxDisconnectionDuration: time.Minute}}, nil)
	c := dial(t, s, wsTransport)
	a := c.connect("/", "")
	_ = s.Emit("start")
	_, _, offset, err := broadcastArgs(c.nextText())
	if err != nil {
		t.Fatal(err)
	}
	for round := range rounds {
		c.kill()
		waitFor(t, "disconnected", func() bool { return s.Sockets().Socket(a.SID) == nil })
		var wg sync.WaitGroup
		for i := range senders {
			wg.Go(func() {
				for j := range perSender {
					_ = s.Emit("m", fmt.Sprintf("%d:%d:%d", round, i, j))
				}
			})
		}
		c = dial(t, s, wsTransport)
		if got := c.connect("/", recoveryAuthJSON(a.PID, offset)); got != a {
			t.Fatalf("round %d: not recovered: %+v", round, got)
		}
		wg.Wait()
		next := make([]int, senders)
		for range senders * perSender {
			name, args, off, err := broadcastArgs(c.nextText())
			if err != nil || name != "m" || len(args) != 1 {
				t.Fatalf("round %d: %s %s %v", round, name, args, err)
			}
			var r, i, j int
			var v string
			_ = json.Unmarshal(args[0], &v)
			if _, err := fmt.Sscanf(v, "%d:%d:%d", &r, &i, &j); err != nil || r != round || j != next[i] {
				t.Fatalf("round %d: got %q, want sender %d's %d (lost, duplicated or reordered)", round, v, i, next[i])
			}
			next[i]++
			offset = off
		}
	}
	c.expectNothing() // a duplicate of any round would be here
}
