package history

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test runs this test binary again as a child process
// (TestCrashChild) that stores messages through a Writer and prints one line
// "ack CLIENT-OFFSET OFFSET" from each success callback, that is, only after
// the store reported the message durable. The parent kills the child with
// SIGKILL in the middle of that, reopens the history and checks that every
// acknowledged message is there exactly once, at its acknowledged offset.
const (
	crashDSNEnv  = "HISTORY_CRASH_DSN"
	crashSyncEnv = "HISTORY_CRASH_SYNC"
)

func testCrashDurability(t *testing.T, dsn string) {
	modes := []Sync{SyncFull}
	if !isPostgres(dsn) {
		modes = append(modes, SyncNormal)
	}
	for i, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			d := dsn
			if i > 0 {
				d = dsnFor(t, dsn)
			}
			crashOnce(t, d, mode)
		})
	}
}

func crashOnce(t *testing.T, dsn string, mode Sync) {
	// Migrate first, so that the child's start-up is not what gets killed.
	s0, err := Open(testCtx(t, 30*time.Second), dsn, Options{Synchronous: mode})
	if err != nil {
		t.Fatal(err)
	}
	s0.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDSNEnv+"="+dsn, crashSyncEnv+"="+strconv.Itoa(int(mode)))
	cmd.Stderr = &prefixWriter{t: t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 300 // acknowledgements
	acked := map[string]int64{}
	enough := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				continue
			}
			off, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				readDone <- fmt.Errorf("bad line %q", sc.Text())
				return
			}
			if prev, ok := acked[f[1]]; ok && prev != off {
				readDone <- fmt.Errorf("%s acknowledged at %d and %d", f[1], prev, off)
				return
			}
			acked[f[1]] = off
			if len(acked) >= killAfter && !signalled {
				signalled = true
				close(enough)
			}
		}
		readDone <- sc.Err()
	}()
	select {
	case <-enough:
	case err := <-readDone:
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child stopped before %d acknowledgements: %v", killAfter, err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("fewer than %d acknowledgements within 60s", killAfter)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Lines the child wrote before it died are still in the pipe; they are
	// acknowledgements too.
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}

	s := mustOpen(t, dsn, Options{Synchronous: mode})
	recs := readAll(t, s)
	stored := map[string]int64{}
	for i, r := range recs {
		if i > 0 && r.Offset <= recs[i-1].Offset {
			t.Fatalf("offsets not increasing: %d after %d", r.Offset, recs[i-1].Offset)
		}
		if _, dup := stored[r.ClientOffset]; dup {
			t.Fatalf("%s stored twice", r.ClientOffset)
		}
		stored[r.ClientOffset] = r.Offset
		if string(r.Payload) != `{"text":"`+r.ClientOffset+`"}` {
			t.Fatalf("%s stored with payload %q", r.ClientOffset, r.Payload)
		}
	}
	for co, off := range acked {
		got, ok := stored[co]
		if !ok {
			t.Fatalf("acknowledged %s (offset %d) lost in the crash", co, off)
		}
		if got != off {
			t.Fatalf("acknowledged %s at %d, stored at %d", co, off, got)
		}
	}
	// The clients retry what they sent: stored ones come back as duplicates.
	var retry []Message
	var want []int64
	for co, off := range acked {
		retry = append(retry, Message{Payload: []byte(`{"text":"` + co + `"}`), ClientOffset: co})
		want = append(want, off)
	}
	for i, r := range appendOK(t, s, retry...) {
		if !r.Duplicate || r.Offset != want[i] {
			t.Fatalf("retry of %s: %+v, want duplicate of %d", retry[i].ClientOffset, r, want[i])
		}
	}
	t.Logf("%d acknowledged before SIGKILL, %d stored (the rest were in flight)", len(acked), len(recs))
}

// TestCrashChild is the child process of the crash test; it does nothing
// unless started by it.
func TestCrashChild(t *testing.T) {
	dsn := os.Getenv(crashDSNEnv)
	if dsn == "" {
		t.Skip("run by the crash test only")
	}
	mode, _ := strconv.Atoi(os.Getenv(crashSyncEnv))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Open(ctx, dsn, Options{Synchronous: Sync(mode)})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(s, WriterOptions{MaxBatch: 32})
	var mu sync.Mutex // serializes writes to stdout with the test framework's
	const submitters = 8
	var wg sync.WaitGroup
	for g := 0; g < submitters; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each submitter is a client that waits for its ack, until the
			// parent kills the process (or two minutes pass).
			for i := 0; ctx.Err() == nil; i++ {
				co := fmt.Sprintf("c%d-%d", g, i)
				ack := make(chan error, 1)
				w.Submit(Message{Payload: []byte(`{"text":"` + co + `"}`), ClientOffset: co}, func(r Result, err error) {
					if err == nil {
						mu.Lock()
						fmt.Fprintf(os.Stdout, "ack %s %d\n", co, r.Offset)
						mu.Unlock()
					}
					ack <- err
				})
				if err := <-ack; err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// prefixWriter logs a child's stderr through the test's log.
type prefixWriter struct{ t *testing.T }

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.t.Logf("child: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
