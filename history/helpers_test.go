package history

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A backend makes fresh, empty histories of one kind for tests.
type backend struct {
	name string
	// newDSN returns the DSN of a new, empty history that is removed when
	// the test ends.
	newDSN func(tb testing.TB) string
}

// backends returns the SQLite backend and, when PostgreSQL is reachable, the
// PostgreSQL one. Without PostgreSQL the test fails under CI=true and skips
// the PostgreSQL subtests otherwise.
func backends() []backend {
	return []backend{
		{name: "sqlite", newDSN: newSQLiteDSN},
		{name: "postgres", newDSN: newPostgresDSN},
	}
}

func newSQLiteDSN(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(tb.TempDir(), "chat.db")
}

// testCtx returns a context that ends with the test or after d.
func testCtx(tb testing.TB, d time.Duration) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// mustOpen opens dsn and closes the store when the test ends.
func mustOpen(tb testing.TB, dsn string, opts Options) Store {
	tb.Helper()
	s, err := Open(testCtx(tb, 30*time.Second), dsn, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// pgAdminURL is where the tests find PostgreSQL: HISTORY_TEST_POSTGRES if
// set, else the local server as user postgres (trust authentication).
func pgAdminURL() string {
	if u := os.Getenv("HISTORY_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=5"
}

// The tests of one process share one database, created on first use and
// dropped by TestMain; each test gets its own schema in it.
var pgDB struct {
	once sync.Once
	url  string // of the test database; "" when none
	name string
	err  error
}

// requirePostgres returns the URL of this process's test database, or skips
// the test (fails it under CI=true) when PostgreSQL is not reachable.
func requirePostgres(tb testing.TB) string {
	tb.Helper()
	pgDB.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, pgAdminURL())
		if err != nil {
			pgDB.err = err
			return
		}
		defer admin.Close(ctx)
		name := randomName("history_test_")
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			pgDB.err = err
			return
		}
		u, err := url.Parse(pgAdminURL())
		if err != nil {
			pgDB.err = err
			return
		}
		u.Path = "/" + name
		pgDB.url, pgDB.name = u.String(), name
	})
	if pgDB.err != nil {
		msg := fmt.Sprintf("PostgreSQL not reachable at %s (set HISTORY_TEST_POSTGRES to point elsewhere): %v", redact(pgAdminURL()), pgDB.err)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg + "; skipping (CI=true makes this a failure)")
	}
	return pgDB.url
}

// dropTestDatabase drops the database that requirePostgres created.
func dropTestDatabase() error {
	if pgDB.name == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, pgAdminURL())
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgDB.name+" WITH (FORCE)")
	return err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := dropTestDatabase(); err != nil {
		fmt.Fprintln(os.Stderr, "drop test database:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// newPostgresDSN creates a schema with a random name in the test database
// and returns a URL whose search_path is that schema. The schema is dropped
// when the test ends.
func newPostgresDSN(tb testing.TB) string {
	tb.Helper()
	return postgresDSNVia(tb, "")
}

// postgresDSNVia is newPostgresDSN with the host:port of the returned URL
// replaced by hostport (a proxy), unless hostport is empty.
func postgresDSNVia(tb testing.TB, hostport string) string {
	tb.Helper()
	dbURL := requirePostgres(tb)
	ctx := testCtx(tb, 30*time.Second)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatalf("connect to test database: %v", err)
	}
	defer conn.Close(ctx)
	schema := randomName("s_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, _ := url.Parse(dbURL)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	if hostport != "" {
		u.Host = hostport
	}
	return u.String()
}

// tcpProxy forwards connections from a local port to target, and can be
// taken down (every connection cut, new ones refused) and brought up again
// on the same port: a database server that goes away and comes back.
type tcpProxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startProxy(tb testing.TB, target string) *tcpProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("proxy listen: %v", err)
	}
	p := &tcpProxy{target: target, addr: ln.Addr().String(), conns: make(map[net.Conn]bool)}
	p.serve(ln)
	tb.Cleanup(func() {
		p.down()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			if !p.track(c, u) {
				return
			}
			p.wg.Add(2)
			go p.pipe(c, u)
			go p.pipe(u, c)
		}
	}()
}

// track registers a proxied pair, or closes it when the proxy went down
// meanwhile.
func (p *tcpProxy) track(c, u net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		u.Close()
		return false
	}
	p.conns[c], p.conns[u] = true, true
	return true
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// down closes the listener and cuts every connection.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// up listens on the proxy's address again.
func (p *tcpProxy) up(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		tb.Fatalf("proxy listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// submitWait submits m to w and waits for its callback. Safe to call from
// any goroutine.
func submitWait(tb testing.TB, w *Writer, m Message) (Result, error) {
	type out struct {
		r   Result
		err error
	}
	ch := make(chan out, 1)
	w.Submit(m, func(r Result, err error) { ch <- out{r, err} })
	select {
	case o := <-ch:
		return o.r, o.err
	case <-time.After(30 * time.Second):
		return Result{}, errors.New("test: callback not called within 30s")
	}
}

func msg(payload, clientOffset string) Message {
	return Message{Payload: []byte(payload), ClientOffset: clientOffset}
}
