package main

// The crash test of the chat with -history: the server runs in a child
// process (this test binary again, TestHistoryCrashChild), clients send
// messages with client offsets and acknowledgements as fast as the server
// takes them, and the server is killed with SIGKILL in the middle of that.
// A new server on the same store must have every acknowledged message
// exactly once, every broadcast message at the offset it was broadcast
// with, and take the clients' retries of the others once each.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/testlog"
)

// crashArgsEnv carries the child's command line (JSON) to TestHistoryCrashChild.
const crashArgsEnv = "CHAT_HISTORY_CRASH_ARGS"

// TestHistoryCrashChild is the server process of TestHistoryCrash; it does
// nothing in a normal run.
func TestHistoryCrashChild(t *testing.T) {
	js := os.Getenv(crashArgsEnv)
	if js == "" {
		t.Skip("the server process of TestHistoryCrash")
	}
	var args []string
	if err := json.Unmarshal([]byte(js), &args); err != nil {
		t.Fatal(err)
	}
	os.Exit(run(context.Background(), args, confEnv(nil), os.Stdout, os.Stderr))
}

// crashServer is a server in a child process.
type crashServer struct {
	cmd  *exec.Cmd
	ts   *testServer // Addr and URL, for the raw clients
	done chan error
}

// startCrashServer starts the chat in a child process on dsn and waits for
// its "Server started" line.
func startCrashServer(t *testing.T, dsn, bundle string) *crashServer {
	t.Helper()
	args := []string{"-addr", "127.0.0.1:0", "-log-format", "json", "-log-level", "info", "-client-dir", bundle,
		"-history", dsn, "-event-rate", "100000", "-event-burst", "100000", "-shutdown-grace", "2s"}
	js, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHistoryCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashArgsEnv+"="+string(js))
	cmd.Stderr = testlog.Writer(t)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &crashServer{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "Server started" {
				addr <- rec.Addr
			}
			t.Logf("child: %s", sc.Text())
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() { s.kill(t) })
	select {
	case a := <-addr:
		s.ts = &testServer{Addr: a, URL: "http://" + a}
	case err := <-s.done:
		t.Fatalf("the server exited at start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not start within 60s")
	}
	return s
}

// kill sends SIGKILL and waits for the process to be gone. A second call
// does nothing.
func (s *crashServer) kill(t *testing.T) {
	if s.cmd.ProcessState != nil || s.done == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Error("the server survived SIGKILL for 30s")
	}
	s.done = nil
}

func TestHistoryCrash(t *testing.T) {
	for _, b := range historyBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testHistoryCrash(t, b.newDSN(t))
		})
	}
}

func testHistoryCrash(t *testing.T, dsn string) {
	bundle := sioFakeBundle(t)
	srv := startCrashServer(t, dsn, bundle)
	observer := rawChatDial(t, srv.ts, rawChatWS, "observer", rawChatOptions{})

	// Senders: each keeps a window of messages in flight and sends the
	// next as acknowledgements come, until the connection ends.
	const senders, window = 4, 16
	results := make([]*crashSender, senders)
	var wg sync.WaitGroup
	for k := range senders {
		s := &crashSender{c: rawChatDial(t, srv.ts, rawChatWS, fmt.Sprintf("sender%d", k), rawChatOptions{}), name: fmt.Sprintf("s%d", k)}
		results[k] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(window)
		}()
	}
	sioEventually(t, 60*time.Second, "2000 acknowledgements", func() bool {
		n := 0
		for _, s := range results {
			n += len(histAcks(s.c))
		}
		return n >= 2000
	})
	srv.kill(t) // SIGKILL, under load
	wg.Wait()

	// What the clients were told before the crash.
	acked := map[string]bool{}
	for _, s := range results {
		for _, id := range histAcks(s.c) {
			acked[fmt.Sprintf("%s-%d", s.name, id)] = true
		}
	}
	broadcast := histMessages(t, observer)
	t.Logf("before the crash: %d acknowledged, %d broadcast, %d sent", len(acked), len(broadcast), sumSent(results))

	// A new server on the same store.
	srv2 := startCrashServer(t, dsn, bundle)
	recs := histStored(t, dsn)
	byCO := map[string]int{}
	for i, r := range recs {
		if r.Offset != int64(i+1) {
			t.Fatalf("stored offsets are not 1, 2, 3…: #%d is %d", i, r.Offset)
		}
		byCO[r.ClientOffset]++
		if n := byCO[r.ClientOffset]; n > 1 {
			t.Fatalf("client offset %s stored %d times", r.ClientOffset, n)
		}
	}
	for co := range acked {
		if byCO[co] != 1 {
			t.Fatalf("acknowledged message %s is not stored (of %d acknowledged, %d stored)", co, len(acked), len(recs))
		}
	}
	for _, m := range broadcast {
		if m.offset > int64(len(recs)) || string(recs[m.offset-1].Payload) != m.text {
			t.Fatalf("broadcast message %s at offset %d is not stored there", m.text, m.offset)
		}
	}

	// The clients come back and retry what was not acknowledged, with the
	// same client offsets: each is stored once, and acknowledged.
	retry := rawChatDial(t, srv2.ts, rawChatWS, "retry", rawChatOptions{auth: fmt.Sprintf(`{"serverOffset":%d}`, lastOffset(broadcast))})
	want := 0
	for _, s := range results {
		for id := range s.n {
			want++
			if err := retry.send(fmt.Sprintf(`42%d["user-message","%s #%d","%s-%d"]`, want, s.name, id, s.name, id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	sioEventually(t, 60*time.Second, "every retry acknowledged", func() bool { return len(histAcks(retry)) == want })
	total := int64(want)
	msgs := histWait(t, retry, total, 30*time.Second)
	histCheckRun(t, "the client that came back", msgs, lastOffset(broadcast)+1, total)
	recs = histStored(t, dsn)
	if int64(len(recs)) != total {
		t.Fatalf("stored %d messages after the retries, want %d (every message sent, once)", len(recs), total)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r.ClientOffset] {
			t.Fatalf("client offset %s stored twice", r.ClientOffset)
		}
		seen[r.ClientOffset] = true
		name, id, _ := strings.Cut(r.ClientOffset, "-")
		if want := fmt.Sprintf(`"%s #%s"`, name, id); string(r.Payload) != want {
			t.Fatalf("%s stored as %s, want %s", r.ClientOffset, r.Payload, want)
		}
	}
}

// crashSender is a client of the crash test that sends messages s.name #i
// with client offsets s.name-i and ack ids i.
type crashSender struct {
	c    *rawChat
	name string
	n    int // messages sent (owned by run until it returns)
}

func (s *crashSender) run(window int) {
	c := s.c
	for {
		if _, ended := c.ended(); ended {
			return
		}
		acked := len(histAcks(c))
		for s.n < acked+window {
			if err := c.send(fmt.Sprintf(`42%d["user-message","%s #%d","%s-%d"]`, s.n, s.name, s.n, s.name, s.n)); err != nil {
				return
			}
			s.n++
		}
		select {
		case <-c.notify:
		case <-c.done:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func sumSent(ss []*crashSender) int {
	n := 0
	for _, s := range ss {
		n += s.n
	}
	return n
}

func lastOffset(msgs []histMsg) int64 {
	if len(msgs) == 0 {
		return 0
	}
	return msgs[len(msgs)-1].offset
}
