package history

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// postgresStore is the Store for clusters: every node opens the same
// PostgreSQL database (each its own postgresStore) and shares one history.
//
// Offsets are global and committed in offset order. Each append transaction
// first locks the single counter row (SELECT … FOR UPDATE), takes its offsets
// from it, inserts the messages, writes the counter back and commits; the row
// lock is released only after the commit is visible to new snapshots. Offsets
// are therefore handed out and made visible in the same order, by whichever
// node: a reader that has seen offset X can never later find a newly
// committed message below X. (A sequence would not do: nextval is not
// transactional, so two transactions can take 7 and 8 and commit 8 first; a
// reader polling "after 6" then sees 8, moves past 7, and misses it.) Offsets
// are also dense: a rolled back append returns its offsets with the counter.
//
// The cost is that appends of the whole cluster are serialized: one append
// transaction commits at a time, holding the lock for about three round trips
// to the server plus the commit's WAL flush. Group commit (Writer) amortizes
// that over whole batches, so cluster throughput is batch size times commits
// per second, not one message per commit. Readers never take the lock.
type postgresStore struct {
	pool   *pgxpool.Pool
	chunk  int
	closed atomic.Bool
}

var _ Store = (*postgresStore)(nil)

// migrateLockKey is the advisory lock that serializes schema migrations of
// nodes starting at once (in one database). Any fixed value works; this is
// "history" in ASCII.
const migrateLockKey int64 = 0x68697374_6f7279

// postgresMigrations are the schema versions in order: migration i brings
// the schema from version i to version i+1. Append only; never edit one that
// shipped.
var postgresMigrations = []string{
	`CREATE TABLE history_messages (
		id            bigint PRIMARY KEY,    -- the offset
		created       timestamptz NOT NULL,
		payload       bytea NOT NULL,        -- the JSON text, byte for byte
		attachments   bytea[],               -- NULL for none
		client_offset text UNIQUE            -- NULL when the client sent none
	);
	CREATE TABLE history_counter (
		id   int PRIMARY KEY CHECK (id = 1),
		last bigint NOT NULL                 -- the highest offset ever committed
	);
	INSERT INTO history_counter (id, last) VALUES (1, 0);`,
}

func openPostgres(ctx context.Context, dsn string, opts Options) (_ *postgresStore, err error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(opts.MaxConns)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = opts.BusyTimeout
	}
	// pgx prepares each statement once per connection. After five runs
	// PostgreSQL may switch a prepared statement to a generic plan made for
	// the table as it was then: planned on a new, tiny history, the duplicate
	// lookup and the reads turn into sequential scans that grow with the
	// table (measured: 0.7 ms → 9 ms per 100-message append after 60 000
	// messages). Planning every execution keeps them index scans, for a few
	// microseconds each.
	if _, ok := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	// An append holds the cluster-wide counter lock only for a few round
	// trips. A node that stalls inside one (stopped, partitioned) would block
	// every node's appends until TCP notices; the server ends such a
	// transaction after this long idle, which releases the lock.
	if _, ok := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "10s"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &postgresStore{pool: pool, chunk: opts.TrimChunk}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// migrate brings the schema to the newest version in one transaction, under
// a transaction-level advisory lock: nodes starting at once migrate one after
// the other, and the later ones find nothing to do. (CREATE TABLE IF NOT
// EXISTS alone is not safe under concurrency in PostgreSQL.)
func (s *postgresStore) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return err
		}
		exec := func(q string) error { _, err := tx.Exec(ctx, q); return err }
		return migrateSchema(exec, func() (v int, ok bool, err error) {
			err = tx.QueryRow(ctx, `SELECT version FROM history_schema`).Scan(&v)
			if errors.Is(err, pgx.ErrNoRows) {
				return 0, false, nil
			}
			return v, err == nil, err
		}, postgresMigrations)
	})
}

// fail wraps err from operation op, reporting ErrClosed when the store was
// closed meanwhile.
func (s *postgresStore) fail(op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("history: %s: %w", op, ErrClosed)
	}
	return fmt.Errorf("history: %s: %w", op, err)
}

func (s *postgresStore) Append(ctx context.Context, msgs []Message) ([]Result, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	res, err := s.append(ctx, msgs)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && len(pe.Code) == 5 {
			switch pe.Code[:2] {
			case "22", "23", "54": // data exception, integrity constraint, program limit
				err = rejected(err)
			}
		}
		return nil, s.fail("append", err)
	}
	return res, nil
}

// append runs one append transaction in two round trips: BEGIN, lock the
// counter, read the clock and the already stored client offsets; then insert
// the new messages, write the counter back and COMMIT. Each round trip is one
// pipelined pgx batch on a connection of its own.
func (s *postgresStore) append(ctx context.Context, msgs []Message) (_ []Result, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	// A connection released inside a transaction (a failure between BEGIN
	// and COMMIT) is closed by the pool, which rolls the transaction back;
	// the ROLLBACK first keeps the connection when the server still answers.
	defer func() {
		if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
		conn.Release()
	}()

	var (
		last     int64
		now      time.Time
		existing map[string]Result
	)
	cos := clientOffsets(msgs)
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	// The lock comes first: the clock and the duplicate lookup below run
	// after every earlier append has committed.
	b.Queue(`SELECT last FROM history_counter WHERE id = 1 FOR UPDATE`).QueryRow(func(r pgx.Row) error {
		return r.Scan(&last)
	})
	b.Queue(`SELECT clock_timestamp()`).QueryRow(func(r pgx.Row) error {
		return r.Scan(&now)
	})
	if len(cos) > 0 {
		// A join on unnest, not "= ANY($1)": the cached generic plan for
		// ANY($1) turns into a sequential scan as the table grows.
		b.Queue(`SELECT m.client_offset, m.id, m.created FROM unnest($1::text[]) AS c(co) JOIN history_messages m ON m.client_offset = c.co`, cos).Query(func(rows pgx.Rows) error {
			var co string
			var r Result
			_, err := pgx.ForEachRow(rows, []any{&co, &r.Offset, &r.Time}, func() error {
				if existing == nil {
					existing = make(map[string]Result)
				}
				r.Time = r.Time.UTC()
				existing[co] = r
				return nil
			})
			return err
		})
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	now = now.UTC().Truncate(time.Microsecond)

	results, fresh, newLast := plan(msgs, last, now, existing)
	b = &pgx.Batch{}
	if len(fresh) > 0 {
		for _, i := range fresh {
			m := msgs[i]
			var co *string
			if m.ClientOffset != "" {
				co = &m.ClientOffset
			}
			b.Queue(`INSERT INTO history_messages (id, created, payload, attachments, client_offset) VALUES ($1, $2, $3, $4, $5)`,
				results[i].Offset, now, payloadOf(m), pgAttachments(m.Attachments), co)
		}
		b.Queue(`UPDATE history_counter SET last = $1 WHERE id = 1`, newLast)
	}
	b.Queue(`COMMIT`)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) && !pgconn.SafeToRetry(err) {
			// The COMMIT may have reached the server before the connection
			// was lost: Settle finds out.
			return nil, &UncertainError{Err: err, Results: results}
		}
		return nil, err
	}
	if st := conn.Conn().PgConn().TxStatus(); st != 'I' {
		// COMMIT of an aborted transaction answers ROLLBACK, not an error.
		return nil, fmt.Errorf("append: transaction not committed (status %q)", st)
	}
	return results, nil
}

// pgAttachments returns atts as a bytea[] parameter: NULL for none, and no
// NULL elements (an empty attachment is stored empty, not NULL).
func pgAttachments(atts [][]byte) any {
	if len(atts) == 0 {
		return nil
	}
	for _, a := range atts {
		if a == nil {
			out := make([][]byte, len(atts))
			for i, a := range atts {
				if a == nil {
					a = []byte{}
				}
				out[i] = a
			}
			return out
		}
	}
	return atts
}

const postgresColumns = `id, created, payload, attachments, client_offset`

func (s *postgresStore) After(ctx context.Context, offset int64, limit int) ([]Record, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkLimit(limit); err != nil || limit == 0 {
		return nil, err
	}
	recs, err := s.query(ctx, `SELECT `+postgresColumns+` FROM history_messages WHERE id > $1 ORDER BY id LIMIT $2`, offset, limit)
	if err != nil {
		return nil, s.fail("read", err)
	}
	return recs, nil
}

func (s *postgresStore) Last(ctx context.Context, n int) ([]Record, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkLimit(n); err != nil || n == 0 {
		return nil, err
	}
	recs, err := s.query(ctx, `SELECT * FROM (SELECT `+postgresColumns+` FROM history_messages ORDER BY id DESC LIMIT $1) AS newest ORDER BY id`, n)
	if err != nil {
		return nil, s.fail("read", err)
	}
	return recs, nil
}

func (s *postgresStore) query(ctx context.Context, q string, args ...any) ([]Record, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var (
		recs []Record
		r    Record
		co   *string
	)
	_, err = pgx.ForEachRow(rows, []any{&r.Offset, &r.Time, &r.Payload, &r.Attachments, &co}, func() error {
		rec := r
		rec.Time = rec.Time.UTC()
		if rec.Payload == nil {
			rec.Payload = []byte{}
		}
		if co != nil {
			rec.ClientOffset = *co
		}
		recs = append(recs, rec)
		r, co = Record{}, nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}

func (s *postgresStore) Settle(ctx context.Context, u *UncertainError, msgs []Message) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	var stored bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The counter's lock waits for an append still in progress: the
		// lost one, if the server has not ended it yet.
		var last int64
		if err := tx.QueryRow(ctx, `SELECT last FROM history_counter WHERE id = 1 FOR UPDATE`).Scan(&last); err != nil {
			return err
		}
		var err error
		stored, err = settleBy(u, msgs, last, func(offset int64) (Record, bool, error) {
			var r Record
			var co *string
			err := tx.QueryRow(ctx, `SELECT created, payload, client_offset FROM history_messages WHERE id = $1`, offset).Scan(&r.Time, &r.Payload, &co)
			if errors.Is(err, pgx.ErrNoRows) {
				return r, false, nil
			}
			if co != nil {
				r.ClientOffset = *co
			}
			if r.Payload == nil {
				r.Payload = []byte{}
			}
			return r, err == nil, err
		})
		return err
	})
	if err != nil {
		return false, s.fail("settle", err)
	}
	return stored, nil
}

func (s *postgresStore) LastOffset(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	var last int64
	if err := s.pool.QueryRow(ctx, `SELECT last FROM history_counter WHERE id = 1`).Scan(&last); err != nil {
		return 0, s.fail("read", err)
	}
	return last, nil
}

func (s *postgresStore) Trim(ctx context.Context, r Retention) (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	// Times are the server's clock (clock_timestamp at append), so compare
	// with the server's clock too.
	var now time.Time
	if err := s.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		return 0, s.fail("trim", err)
	}
	n, err := trim(ctx, postgresTrimmer{s}, r, s.chunk, now)
	if err != nil {
		return n, s.fail("trim", err)
	}
	return n, nil
}

// postgresTrimmer gives trim its primitives. Nodes trimming at once are
// harmless: the later DELETE waits for the earlier one's row locks and then
// finds the rows gone.
type postgresTrimmer struct{ s *postgresStore }

func (t postgresTrimmer) nthNewest(ctx context.Context, n int64) (int64, bool, error) {
	var off int64
	err := t.s.pool.QueryRow(ctx, `SELECT id FROM history_messages ORDER BY id DESC LIMIT 1 OFFSET $1`, n-1).Scan(&off)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return off, err == nil, err
}

func (t postgresTrimmer) oldest(ctx context.Context, n int) ([]stamped, error) {
	rows, err := t.s.pool.Query(ctx, `SELECT id, created FROM history_messages ORDER BY id LIMIT $1`, n)
	if err != nil {
		return nil, err
	}
	var (
		out []stamped
		st  stamped
	)
	_, err = pgx.ForEachRow(rows, []any{&st.offset, &st.time}, func() error {
		out = append(out, st)
		return nil
	})
	return out, err
}

func (t postgresTrimmer) deleteThrough(ctx context.Context, offset int64) (int64, error) {
	tag, err := t.s.pool.Exec(ctx, `DELETE FROM history_messages WHERE id <= $1`, offset)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (s *postgresStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.pool.Close()
	return nil
}
