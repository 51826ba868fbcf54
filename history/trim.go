package history

import (
	"context"
	"time"
)

// stamped is a stored message's offset and time.
type stamped struct {
	offset int64
	time   time.Time
}

// trimmer is what the shared retention loop needs from a store.
type trimmer interface {
	// nthNewest returns the offset of the n-th newest message (n >= 1), or
	// false when fewer than n are stored.
	nthNewest(ctx context.Context, n int64) (int64, bool, error)
	// oldest returns the offsets and times of the n oldest messages,
	// ascending.
	oldest(ctx context.Context, n int) ([]stamped, error)
	// deleteThrough deletes every message with an offset <= offset in one
	// transaction and returns how many it deleted.
	deleteThrough(ctx context.Context, offset int64) (int64, error)
}

// trim applies r in chunks of at most chunk messages, each deleted in its own
// short transaction, so that an append waits for at most one chunk. Appends
// running meanwhile only add higher offsets, so deleting "through offset X"
// after reading the oldest chunk never deletes more than that chunk.
func trim(ctx context.Context, s trimmer, r Retention, chunk int, now time.Time) (int64, error) {
	if r.MaxCount <= 0 && r.MaxAge <= 0 {
		return 0, nil
	}
	var byCount int64 // delete offsets <= byCount because of MaxCount
	if r.MaxCount > 0 {
		off, ok, err := s.nthNewest(ctx, r.MaxCount+1)
		if err != nil {
			return 0, err
		}
		if ok {
			byCount = off
		}
	}
	var cutoff time.Time
	if r.MaxAge > 0 {
		cutoff = now.Add(-r.MaxAge)
	}
	var deleted int64
	for {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		rows, err := s.oldest(ctx, chunk)
		if err != nil {
			return deleted, err
		}
		k := 0
		for k < len(rows) && (rows[k].offset <= byCount || (r.MaxAge > 0 && rows[k].time.Before(cutoff))) {
			k++
		}
		if k == 0 {
			return deleted, nil
		}
		n, err := s.deleteThrough(ctx, rows[k-1].offset)
		deleted += n
		if err != nil {
			return deleted, err
		}
		if k < len(rows) || len(rows) < chunk {
			return deleted, nil
		}
	}
}
