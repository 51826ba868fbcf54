package history

import (
	"errors"
	"testing"
	"time"
)

// Settle tells a batch that is stored from one that is not, on both stores:
// the records at the planned offsets must be the batch's (same time,
// payload and client offset); a batch of duplicates only is settled as
// stored. And a message the store refuses for its data is ErrRejected.
func TestStoreSettle(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := mustOpen(t, b.newDSN(t), Options{})
			ctx := testCtx(t, 30*time.Second)
			batch := []Message{msg(`"a"`, ""), msg(`"b"`, "co-b")}
			res := appendOK(t, s, batch...)
			settle := func(u *UncertainError, msgs []Message) bool {
				t.Helper()
				ok, err := s.Settle(ctx, u, msgs)
				if err != nil {
					t.Fatalf("Settle: %v", err)
				}
				return ok
			}
			if !settle(&UncertainError{Err: errors.New("lost"), Results: res}, batch) {
				t.Error("a stored batch was settled as not stored")
			}
			// The same offsets, another batch (another node's, say): not ours.
			other := []Message{msg(`"x"`, ""), msg(`"y"`, "")}
			if settle(&UncertainError{Err: errors.New("lost"), Results: res}, other) {
				t.Error("another batch at the same offsets was settled as stored")
			}
			// The same payload at another time: not ours.
			moved := append([]Result(nil), res...)
			moved[0].Time = moved[0].Time.Add(time.Microsecond)
			if settle(&UncertainError{Err: errors.New("lost"), Results: moved}, batch) {
				t.Error("a batch with another time was settled as stored")
			}
			// Beyond what is committed: not stored.
			next := []Result{{Offset: res[1].Offset + 1, Time: res[1].Time}}
			if settle(&UncertainError{Err: errors.New("lost"), Results: next}, []Message{msg(`"c"`, "")}) {
				t.Error("a batch beyond the last offset was settled as stored")
			}
			// Only duplicates: their results hold.
			dup := []Result{{Offset: res[1].Offset, Time: res[1].Time, Duplicate: true}}
			if !settle(&UncertainError{Err: errors.New("lost"), Results: dup}, []Message{msg(`"b"`, "co-b")}) {
				t.Error("a batch of duplicates was settled as not stored")
			}
		})
	}
}

// PostgreSQL cannot store a NUL character in text: a client offset with
// one is refused for its data (ErrRejected), not taken for an outage.
func TestStoreRejectsNUL(t *testing.T) {
	s := mustOpen(t, newPostgresDSN(t), Options{})
	_, err := s.Append(testCtx(t, 30*time.Second), []Message{msg(`"a"`, "co-\x00")})
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("Append = %v, want ErrRejected", err)
	}
}
