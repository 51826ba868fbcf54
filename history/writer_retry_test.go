package history

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// flakyStore is a fake Store that fails every Append while it is down, and
// refuses (ErrRejected) any batch holding a message whose payload is "bad".
type flakyStore struct {
	gateStore
	mu      sync.Mutex
	down    bool
	stored  []string // the payloads stored, in offset order
	batches []int
	// uncertain "lost": the next Append stores nothing and reports an
	// unknown outcome; uncertainAt n: the nth Append stores its batch and
	// reports an unknown outcome.
	uncertain   string
	uncertainAt int
	settles     int
}

var errDown = errors.New("connection refused")

func (f *flakyStore) Append(_ context.Context, msgs []Message) ([]Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, fmt.Errorf("history: append: %w", errDown)
	}
	for _, m := range msgs {
		if bytes.Equal(m.Payload, []byte("bad")) {
			return nil, fmt.Errorf("history: append: %w", rejected(errors.New("invalid byte sequence")))
		}
	}
	f.batches = append(f.batches, len(msgs))
	res := make([]Result, len(msgs))
	for i := range msgs {
		res[i] = Result{Offset: int64(len(f.stored) + i + 1)}
	}
	switch f.uncertain {
	case "stored":
		f.uncertain = ""
	case "lost":
		f.uncertain = ""
		return nil, &UncertainError{Err: errors.New("connection reset"), Results: res}
	}
	for _, m := range msgs {
		f.stored = append(f.stored, string(m.Payload))
	}
	if f.uncertain == "" && len(f.batches) == f.uncertainAt {
		return nil, &UncertainError{Err: errors.New("connection reset"), Results: res}
	}
	return res, nil
}

func (f *flakyStore) Settle(_ context.Context, u *UncertainError, msgs []Message) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return false, errDown
	}
	f.settles++
	off := u.Results[0].Offset
	return off <= int64(len(f.stored)) && f.stored[off-1] == string(msgs[0].Payload), nil
}

func (f *flakyStore) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// outcome is one callback: its payload, offset and error.
type outcome struct {
	payload string
	offset  int64
	err     error
}

type outcomes struct {
	mu  sync.Mutex
	got []outcome
}

func (o *outcomes) submit(w *Writer, payload string) {
	w.Submit(msg(payload, ""), func(r Result, err error) {
		o.mu.Lock()
		o.got = append(o.got, outcome{payload, r.Offset, err})
		o.mu.Unlock()
	})
}

func (o *outcomes) list() []outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]outcome(nil), o.got...)
}

// With RetryFor, an outage of the store delays the messages instead of
// failing them: everything submitted while it is down is stored once it is
// back, in submission order, and the outage is reported (each failed
// attempt, then one success). Without RetryFor every one of them failed.
func TestWriterRetriesThroughOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &flakyStore{}
		var (
			rmu     sync.Mutex
			reports []error
		)
		w := NewWriter(f, WriterOptions{RetryFor: time.Minute, Report: func(err error) {
			rmu.Lock()
			reports = append(reports, err)
			rmu.Unlock()
		}})
		var o outcomes
		o.submit(w, "0")
		synctest.Wait()
		f.setDown(true)
		for i := 1; i <= 20; i++ {
			o.submit(w, fmt.Sprint(i))
			time.Sleep(500 * time.Millisecond) // 10 s of outage
		}
		synctest.Wait()
		if got := len(o.list()); got != 1 {
			t.Fatalf("%d callbacks while the store was down, want only the first message's", got)
		}
		f.setDown(false)
		time.Sleep(3 * time.Second) // the longest pause between two attempts is 2 s
		synctest.Wait()
		got := o.list()
		if len(got) != 21 {
			t.Fatalf("%d callbacks, want 21", len(got))
		}
		for i, g := range got {
			if g.err != nil || g.payload != fmt.Sprint(i) || g.offset != int64(i+1) {
				t.Fatalf("callback %d: %+v; want payload %d stored at %d, in order", i, g, i, i+1)
			}
		}
		if err := w.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		rmu.Lock()
		defer rmu.Unlock()
		if len(reports) < 3 || reports[0] != nil || reports[1] == nil || reports[len(reports)-1] != nil {
			t.Fatalf("reports %v: want a success, the failures, then a success", reports)
		}
	})
}

// A submission that waited RetryFor while the store kept failing is failed
// with ErrUnavailable (wrapping the store's error); the ones submitted later
// go on waiting, and are stored when the store is back.
func TestWriterRetryForBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &flakyStore{}
		f.setDown(true)
		w := NewWriter(f, WriterOptions{RetryFor: 10 * time.Second})
		var o outcomes
		start := time.Now()
		o.submit(w, "old")
		time.Sleep(8 * time.Second)
		o.submit(w, "new")
		time.Sleep(2*time.Second + 2*time.Second) // past the old one's bound, and an attempt
		synctest.Wait()
		got := o.list()
		if len(got) != 1 || got[0].payload != "old" || !errors.Is(got[0].err, ErrUnavailable) || !errors.Is(got[0].err, errDown) {
			t.Fatalf("callbacks %+v: want only the old message, failed with ErrUnavailable wrapping the store's error", got)
		}
		if waited := time.Since(start); waited > 13*time.Second {
			t.Errorf("the old message was failed after %v, want about 10 s", waited)
		}
		f.setDown(false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if got := o.list(); len(got) != 2 || got[1].payload != "new" || got[1].err != nil || got[1].offset != 1 {
			t.Fatalf("callbacks %+v: want the new message stored at 1", got)
		}
		w.Close(context.Background())
	})
}

// A message the store refuses for its data fails alone: its batch is tried
// again one message at a time and the others are stored, in order. It is
// not retried.
func TestWriterRejectedFailsAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &flakyStore{}
		f.setDown(true) // the messages pile up into one batch
		w := NewWriter(f, WriterOptions{RetryFor: time.Minute})
		var o outcomes
		for _, p := range []string{"1", "2", "bad", "3", "4"} {
			o.submit(w, p)
		}
		synctest.Wait()
		f.setDown(false)
		time.Sleep(time.Second)
		synctest.Wait()
		got := o.list()
		want := []outcome{{"1", 1, nil}, {"2", 2, nil}, {"bad", 0, ErrRejected}, {"3", 3, nil}, {"4", 4, nil}}
		if len(got) != len(want) {
			t.Fatalf("callbacks %+v, want %+v", got, want)
		}
		for i := range want {
			if got[i].payload != want[i].payload || got[i].offset != want[i].offset || !errors.Is(got[i].err, want[i].err) {
				t.Fatalf("callback %d: %+v, want %+v", i, got[i], want[i])
			}
		}
		w.Close(context.Background())
	})
}

// QueueBytes bounds what waits, in bytes: past it Submit refuses with
// ErrQueueFull, and what waits is stored once the store is back.
func TestWriterQueueBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &flakyStore{}
		f.setDown(true)
		w := NewWriter(f, WriterOptions{RetryFor: time.Minute, QueueBytes: 10 * (1000 + 64)})
		var o outcomes
		big := string(bytes.Repeat([]byte("x"), 1000))
		for range 12 {
			o.submit(w, big)
		}
		got := o.list()
		if len(got) != 2 || !errors.Is(got[0].err, ErrQueueFull) || !errors.Is(got[1].err, ErrQueueFull) {
			t.Fatalf("callbacks %+v: want the two submissions past 10 refused with ErrQueueFull", got)
		}
		f.setDown(false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n := len(f.stored); n != 10 {
			t.Fatalf("stored %d, want the 10 that waited", n)
		}
		o.submit(w, big) // the bytes were released
		synctest.Wait()
		if got := o.list(); len(got) != 13 || got[12].err != nil {
			t.Fatalf("a submission after the queue drained: %+v", got[len(got)-1])
		}
		w.Close(context.Background())
	})
}

// An append whose outcome is unknown (the connection was lost while its
// COMMIT was on the way) is settled before anything else: a batch that was
// stored after all is reported stored, once; one that was not is appended
// again, once. Retrying it blindly stored the first kind twice.
func TestWriterSettlesUncertainAppends(t *testing.T) {
	for _, stored := range []bool{true, false} {
		t.Run(fmt.Sprint("stored=", stored), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &flakyStore{}
				if stored {
					f.uncertainAt = 1
				} else {
					f.uncertain = "lost"
				}
				f.setDown(true) // the three pile up into one batch
				w := NewWriter(f, WriterOptions{RetryFor: time.Minute})
				var o outcomes
				for _, p := range []string{"a", "b", "c"} {
					o.submit(w, p)
				}
				synctest.Wait()
				f.setDown(false)
				time.Sleep(5 * time.Second)
				synctest.Wait()
				got := o.list()
				if len(got) != 3 {
					t.Fatalf("callbacks %+v, want 3", got)
				}
				for i, g := range got {
					if g.err != nil || g.offset != int64(i+1) {
						t.Fatalf("callback %d: %+v, want stored at %d", i, g, i+1)
					}
				}
				f.mu.Lock()
				defer f.mu.Unlock()
				if want := []string{"a", "b", "c"}; !slices.Equal(f.stored, want) {
					t.Fatalf("stored %v, want %v: each once", f.stored, want)
				}
				if f.settles != 1 {
					t.Fatalf("settled %d times, want 1", f.settles)
				}
				w.Close(context.Background())
			})
		})
	}
}

// What waits for a store that is down is bounded in memory: 128 MiB
// offered in 64 KiB messages grows the heap by about QueueBytes (16 MiB),
// not by what was offered; the rest is refused at once.
func TestWriterHeldMemoryBounded(t *testing.T) {
	f := &flakyStore{}
	f.setDown(true)
	w := NewWriter(f, WriterOptions{RetryFor: time.Hour, CommitTimeout: time.Second})
	defer func() {
		f.setDown(false)
		w.Close(testCtx(t, 30*time.Second))
	}()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	var refused atomic.Int64
	for range 2048 {
		w.Submit(Message{Payload: bytes.Repeat([]byte("x"), 64<<10)}, func(_ Result, err error) {
			if errors.Is(err, ErrQueueFull) {
				refused.Add(1)
			}
		})
	}
	grown := int64(heap()) - int64(before)
	t.Logf("heap in use grew by %.1f MiB; %d of 2048 refused", float64(grown)/(1<<20), refused.Load())
	if grown > 24<<20 {
		t.Fatalf("heap in use grew by %.1f MiB holding messages for a store that is down, want at most 24 MiB (QueueBytes is 16 MiB)", float64(grown)/(1<<20))
	}
	if refused.Load() < 2048-260 {
		t.Fatalf("%d refused, want all but about 256", refused.Load())
	}
}
