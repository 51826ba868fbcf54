package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// sqliteStore is the embedded Store: one SQLite file in WAL mode.
//
// All writes (appends, trims, the migration) go through one dedicated
// connection, so they are serialized in this process without busy-waiting,
// and each starts with BEGIN IMMEDIATE, so that another process opening the
// same file is serialized too (waiting up to Options.BusyTimeout). Reads use
// a separate pool of query-only connections and, in WAL mode, neither wait
// for the writer nor block it; a read sees only committed transactions.
//
// Offsets come from a counter row updated in the same transaction as the
// inserted messages, under the write lock, so they are dense, strictly
// increasing in commit order, and never reused, even after Trim empties the
// table (a rowid alone would restart at max+1). Each message is inserted
// with the next offset and ON CONFLICT (client_offset) DO NOTHING: one
// statement for a new message; a duplicate costs one more, to read the
// stored copy's offset, and does not take an offset.
type sqliteStore struct {
	w      *sql.DB // one connection: every write
	r      *sql.DB // query-only pool: reads
	chunk  int
	closed atomic.Bool

	selCounter, selByClient, insert, updCounter *sql.Stmt
}

var _ Store = (*sqliteStore)(nil)

// sqliteMigrations are the schema versions in order: migration i brings the
// schema from version i to version i+1. Append only; never edit one that
// shipped.
var sqliteMigrations = []string{
	`CREATE TABLE history_messages (
		id            INTEGER PRIMARY KEY, -- the offset
		created       INTEGER NOT NULL,    -- Unix microseconds, UTC
		payload       BLOB NOT NULL,       -- the JSON text, byte for byte
		attachments   BLOB,                -- see attachments.go; NULL for none
		client_offset TEXT UNIQUE          -- NULL when the client sent none
	);
	CREATE TABLE history_counter (
		id   INTEGER PRIMARY KEY CHECK (id = 1),
		last INTEGER NOT NULL -- the highest offset ever committed
	);
	INSERT INTO history_counter (id, last) VALUES (1, 0);`,
}

// sqliteDSN returns the driver name for path with the given pragmas. path is
// turned into a file: URI so that no character of it ('?', '#', '%') is taken
// for a parameter; a path already written as a file: URI is kept as it is.
func sqliteDSN(path string, pragmas ...string) (string, error) {
	name := path
	if !strings.HasPrefix(path, "file:") {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		name = "file:" + strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(filepath.ToSlash(abs))
	}
	sep := "?"
	if strings.Contains(name, "?") {
		sep = "&"
	}
	return name + sep + strings.Join(pragmas, "&"), nil
}

// openSQLiteWaiting is openSQLite, tried again while another connection
// holds the lock that turning a new file to WAL mode needs: SQLite answers
// SQLITE_BUSY there at once, without its busy handler, when several
// processes (or Opens) create the same file together. It waits up to
// opts.BusyTimeout, as any other lock.
func openSQLiteWaiting(ctx context.Context, path string, opts Options) (*sqliteStore, error) {
	deadline := time.Now().Add(opts.BusyTimeout)
	wait := 5 * time.Millisecond
	for {
		s, err := openSQLite(ctx, path, opts)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != 5 || time.Now().Add(wait).After(deadline) {
			return s, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func openSQLite(ctx context.Context, path string, opts Options) (_ *sqliteStore, err error) {
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", opts.BusyTimeout.Milliseconds())
	wdsn, err := sqliteDSN(path,
		busy,
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous("+opts.Synchronous.String()+")",
		"_txlock=immediate",
	)
	if err != nil {
		return nil, err
	}
	rdsn, err := sqliteDSN(path, busy, "_pragma=query_only(1)")
	if err != nil {
		return nil, err
	}
	s := &sqliteStore{chunk: opts.TrimChunk}
	defer func() {
		if err != nil {
			s.closeDBs()
		}
	}()
	if s.w, err = sql.Open("sqlite", wdsn); err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err = s.migrate(ctx); err != nil {
		return nil, err
	}
	// The write connection set journal_mode=WAL (a property of the file), so
	// the readers, opened after it, read in WAL mode.
	if s.r, err = sql.Open("sqlite", rdsn); err != nil {
		return nil, err
	}
	s.r.SetMaxOpenConns(opts.MaxConns)
	s.r.SetMaxIdleConns(opts.MaxConns)
	if err = s.r.PingContext(ctx); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.selCounter, `SELECT last FROM history_counter WHERE id = 1`},
		{&s.selByClient, `SELECT id, created FROM history_messages WHERE client_offset = ?`},
		{&s.insert, `INSERT INTO history_messages (id, created, payload, attachments, client_offset) VALUES (?, ?, ?, ?, ?) ON CONFLICT (client_offset) DO NOTHING`},
		{&s.updCounter, `UPDATE history_counter SET last = ? WHERE id = 1`},
	} {
		if *p.stmt, err = s.w.PrepareContext(ctx, p.sql); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// migrate brings the schema to the newest version in one transaction. BEGIN
// IMMEDIATE takes the file's write lock first, so two processes starting at
// once migrate one after the other and the second finds nothing to do.
func (s *sqliteStore) migrate(ctx context.Context) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("cannot use write-ahead logging (journal_mode is %s)", mode)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	exec := func(q string) error { _, err := tx.ExecContext(ctx, q); return err }
	err = migrateSchema(exec, func() (v int, ok bool, err error) {
		err = tx.QueryRowContext(ctx, `SELECT version FROM history_schema`).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, false, nil
		}
		return v, err == nil, err
	}, sqliteMigrations)
	if err != nil {
		return err
	}
	return tx.Commit()
}

// fail wraps err from operation op, reporting ErrClosed when the store was
// closed meanwhile.
func (s *sqliteStore) fail(op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("history: %s: %w", op, ErrClosed)
	}
	return fmt.Errorf("history: %s: %w", op, err)
}

func (s *sqliteStore) Append(ctx context.Context, msgs []Message) ([]Result, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	res, err := s.append(ctx, msgs)
	if err != nil {
		var se *sqlite.Error
		if errors.As(err, &se) {
			switch se.Code() & 0xff {
			case 18, 19, 20, 25: // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_RANGE
				err = rejected(err)
			}
		}
		return nil, s.fail("append", err)
	}
	return res, nil
}

func (s *sqliteStore) append(ctx context.Context, msgs []Message) ([]Result, error) {
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var last int64
	if err := tx.StmtContext(ctx, s.selCounter).QueryRowContext(ctx).Scan(&last); err != nil {
		return nil, err
	}
	// Under the write lock, so the clock reading is ordered like the offsets
	// (unless the wall clock steps back).
	now := time.UnixMicro(time.Now().UnixMicro()).UTC()
	ins := tx.StmtContext(ctx, s.insert)
	var sel *sql.Stmt
	results := make([]Result, len(msgs))
	first := last
	var seen map[string]Result // client offsets stored earlier in this batch
	for i, m := range msgs {
		co := m.ClientOffset
		if r, ok := seen[co]; ok && co != "" {
			r.Duplicate = true
			results[i] = r
			continue
		}
		var coArg any
		if co != "" {
			coArg = co
		}
		res, err := ins.ExecContext(ctx, last+1, now.UnixMicro(), payloadOf(m), encodeAttachments(m.Attachments), coArg)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		if n == 1 {
			last++
			results[i] = Result{Offset: last, Time: now}
		} else {
			// ON CONFLICT DO NOTHING: the client offset was stored by an
			// earlier transaction.
			if sel == nil {
				sel = tx.StmtContext(ctx, s.selByClient)
			}
			var off, created int64
			if err := sel.QueryRowContext(ctx, co).Scan(&off, &created); err != nil {
				return nil, fmt.Errorf("look up duplicate %q: %w", co, err)
			}
			results[i] = Result{Offset: off, Time: time.UnixMicro(created).UTC(), Duplicate: true}
		}
		if co != "" {
			if seen == nil {
				seen = make(map[string]Result)
			}
			seen[co] = results[i]
		}
	}
	if last != first {
		if _, err := tx.StmtContext(ctx, s.updCounter).ExecContext(ctx, last); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return results, nil
}

const sqliteColumns = `id, created, payload, attachments, client_offset`

func (s *sqliteStore) After(ctx context.Context, offset int64, limit int) ([]Record, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkLimit(limit); err != nil || limit == 0 {
		return nil, err
	}
	recs, err := s.query(ctx, `SELECT `+sqliteColumns+` FROM history_messages WHERE id > ? ORDER BY id LIMIT ?`, offset, limit)
	if err != nil {
		return nil, s.fail("read", err)
	}
	return recs, nil
}

func (s *sqliteStore) Last(ctx context.Context, n int) ([]Record, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkLimit(n); err != nil || n == 0 {
		return nil, err
	}
	recs, err := s.query(ctx, `SELECT * FROM (SELECT `+sqliteColumns+` FROM history_messages ORDER BY id DESC LIMIT ?) ORDER BY id`, n)
	if err != nil {
		return nil, s.fail("read", err)
	}
	return recs, nil
}

func (s *sqliteStore) query(ctx context.Context, q string, args ...any) ([]Record, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []Record
	for rows.Next() {
		var (
			r       Record
			created int64
			atts    []byte
			co      sql.NullString
		)
		if err := rows.Scan(&r.Offset, &created, &r.Payload, &atts, &co); err != nil {
			return nil, err
		}
		r.Time = time.UnixMicro(created).UTC()
		if r.Attachments, err = decodeAttachments(atts); err != nil {
			return nil, fmt.Errorf("offset %d: %w", r.Offset, err)
		}
		if r.Payload == nil {
			r.Payload = []byte{}
		}
		r.ClientOffset = co.String
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

// Settle: a SQLite append never reports an uncertain outcome (a failed
// COMMIT rolls back), but Settle answers as the Store interface says, for
// the write lock's holder of another process too.
func (s *sqliteStore) Settle(ctx context.Context, u *UncertainError, msgs []Message) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: waits for the writer
	if err != nil {
		return false, s.fail("settle", err)
	}
	defer tx.Rollback() //nolint:errcheck // read only
	var last int64
	if err := tx.StmtContext(ctx, s.selCounter).QueryRowContext(ctx).Scan(&last); err != nil {
		return false, s.fail("settle", err)
	}
	stored, err := settleBy(u, msgs, last, func(offset int64) (Record, bool, error) {
		var (
			r       Record
			created int64
			co      sql.NullString
		)
		err := tx.QueryRowContext(ctx, `SELECT created, payload, client_offset FROM history_messages WHERE id = ?`, offset).Scan(&created, &r.Payload, &co)
		if errors.Is(err, sql.ErrNoRows) {
			return r, false, nil
		}
		r.Time, r.ClientOffset = time.UnixMicro(created).UTC(), co.String
		if r.Payload == nil {
			r.Payload = []byte{}
		}
		return r, err == nil, err
	})
	if err != nil {
		return false, s.fail("settle", err)
	}
	return stored, nil
}

func (s *sqliteStore) LastOffset(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	var last int64
	if err := s.r.QueryRowContext(ctx, `SELECT last FROM history_counter WHERE id = 1`).Scan(&last); err != nil {
		return 0, s.fail("read", err)
	}
	return last, nil
}

func (s *sqliteStore) Trim(ctx context.Context, r Retention) (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	n, err := trim(ctx, sqliteTrimmer{s}, r, s.chunk, time.Now())
	if err != nil {
		return n, s.fail("trim", err)
	}
	return n, nil
}

// sqliteTrimmer gives trim its primitives: reads on the read pool, the
// delete on the write connection.
type sqliteTrimmer struct{ s *sqliteStore }

func (t sqliteTrimmer) nthNewest(ctx context.Context, n int64) (int64, bool, error) {
	var off int64
	err := t.s.r.QueryRowContext(ctx, `SELECT id FROM history_messages ORDER BY id DESC LIMIT 1 OFFSET ?`, n-1).Scan(&off)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return off, err == nil, err
}

func (t sqliteTrimmer) oldest(ctx context.Context, n int) ([]stamped, error) {
	rows, err := t.s.r.QueryContext(ctx, `SELECT id, created FROM history_messages ORDER BY id LIMIT ?`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []stamped
	for rows.Next() {
		var st stamped
		var created int64
		if err := rows.Scan(&st.offset, &created); err != nil {
			return nil, err
		}
		st.time = time.UnixMicro(created)
		out = append(out, st)
	}
	return out, rows.Err()
}

func (t sqliteTrimmer) deleteThrough(ctx context.Context, offset int64) (int64, error) {
	res, err := t.s.w.ExecContext(ctx, `DELETE FROM history_messages WHERE id <= ?`, offset)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *sqliteStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.closeDBs()
}

func (s *sqliteStore) closeDBs() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.selCounter, s.selByClient, s.insert, s.updCounter} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, db := range []*sql.DB{s.r, s.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}
