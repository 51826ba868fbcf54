package socketio

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDynamicNamespaceRegexp: a CONNECT to a name the parent's regexp
// matches creates the child, with the parent's middlewares and handlers
// (those added later too); other names stay invalid; a broadcast of the
// parent reaches every child.
func TestDynamicNamespaceRegexp(t *testing.T) {
	events := make(chan string, 20)
	var parent *ParentNamespace
	s := startIO(t, Options{}, func(io *Server) {
		parent = io.OfRegexp(regexp.MustCompile(`^/room-\d+$`))
		parent.Use(func(so *Socket) error { events <- "mw " + so.Namespace().Name(); return nil })
		parent.OnConnection(func(so *Socket) { events <- "conn " + so.Namespace().Name() })
	})
	if io := s.Server; io.OfRegexp(regexp.MustCompile(`^/room-\d+$`)) != parent {
		t.Error("OfRegexp with the same expression: another parent")
	}
	c1, _ := connected(t, s, wsTransport, "/room-1", "")
	for _, want := range []string{"mw /room-1", "conn /room-1"} {
		if got := recv(t, events); got != want {
			t.Fatalf("%q, want %q", got, want)
		}
	}
	parent.Use(func(so *Socket) error {
		if so.Namespace().Name() == "/room-3" {
			return errors.New("full")
		}
		return nil
	})
	c2 := dial(t, s, pollingTransport)
	c2.connect("/room-2", "")
	for _, want := range []string{"mw /room-2", "conn /room-2"} {
		if got := recv(t, events); got != want {
			t.Fatalf("%q, want %q", got, want)
		}
	}
	c2.send(connectPacket("/room-3", ""))
	c2.expect(`4/room-3,{"message":"full"}`)
	recv(t, events) // the first middleware saw /room-3
	c2.send(connectPacket("/lobby", ""))
	c2.expect(`4/lobby,{"message":"Invalid namespace"}`)

	var names []string
	for _, n := range parent.Children() {
		names = append(names, n.Name())
	}
	slices.Sort(names)
	if strings.Join(names, " ") != "/room-1 /room-2 /room-3" {
		t.Errorf("children %v", names)
	}
	if err := parent.Emit("hello", "all"); err != nil {
		t.Fatal(err)
	}
	c1.expect(`2/room-1,["hello","all"]`)
	c2.expect(`2/room-2,["hello","all"]`)
	if err := parent.To("nobody").Emit("hello", "none"); err != nil {
		t.Fatal(err)
	}
	if err := parent.Emit("q", AckFunc(func([]Arg, error) {})); err == nil {
		t.Error("a parent broadcast with an ack: no error")
	}
	// A child is a namespace like any other.
	if err := s.Of("/room-1").Emit("only", 1); err != nil {
		t.Fatal(err)
	}
	c1.expect(`2/room-1,["only",1]`)
	c2.expectNothing()
}

// TestDynamicNamespaceFunc: the function is asked with the name and the
// client's auth payload.
func TestDynamicNamespaceFunc(t *testing.T) {
	s := startIO(t, Options{}, func(io *Server) {
		io.OfFunc(func(name string, auth json.RawMessage) bool {
			var a struct{ Token string }
			_ = json.Unmarshal(auth, &a)
			return strings.HasPrefix(name, "/team-") && a.Token == "secret"
		})
	})
	c := dial(t, s, wsTransport)
	c.send(connectPacket("/team-a", `{"token":"wrong"}`))
	c.expect(`4/team-a,{"message":"Invalid namespace"}`)
	c.connect("/team-a", `{"token":"secret"}`)
}

// TestCleanupEmptyChildNamespaces: with the option, a child whose last
// socket left is removed, and created again by the next CONNECT; without
// it, the child stays.
func TestCleanupEmptyChildNamespaces(t *testing.T) {
	for _, cleanup := range []bool{true, false} {
		s := startIO(t, Options{CleanupEmptyChildNamespaces: cleanup}, func(io *Server) {
			io.OfRegexp(regexp.MustCompile(`^/room-\d+$`))
		})
		has := func() bool {
			return slices.ContainsFunc(s.Namespaces(), func(n *Namespace) bool { return n.Name() == "/room-1" })
		}
		c := dial(t, s, wsTransport)
		c.connect("/room-1", "")
		first := s.Of("/room-1")
		c.send("1/room-1,")
		if cleanup {
			waitFor(t, "the empty child removed", func() bool { return !has() })
			c.connect("/room-1", "")
			if !has() {
				t.Fatal("the child was not created again")
			}
			continue
		}
		c.connect("/room-1", "") // the same namespace, still there
		if s.Of("/room-1") != first {
			t.Error("without cleanup, the child was replaced")
		}
	}
}

// TestCleanupRacesConnect: a CONNECT to a child while its last socket
// leaves never lands in a removed namespace: the new socket is reached by
// the parent's broadcasts, every time.
func TestCleanupRacesConnect(t *testing.T) {
	var parent *ParentNamespace
	s := startIO(t, Options{CleanupEmptyChildNamespaces: true}, func(io *Server) {
		parent = io.OfRegexp(regexp.MustCompile(`^/room-\d+$`))
	})
	b := dial(t, s, wsTransport)
	for i := range 30 {
		a := dial(t, s, wsTransport) // a new one each time: it may get the round's broadcast
		a.connect("/room-1", "")
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.send("1/room-1,")
		}()
		b.connect("/room-1", "")
		<-done
		if err := parent.Emit("round", i); err != nil {
			t.Fatal(err)
		}
		b.expect(`2/room-1,["round",` + strconv.Itoa(i) + `]`)
		b.send("1/room-1,")
		waitFor(t, "the child removed", func() bool { return len(parent.Children()) == 0 })
	}
}
