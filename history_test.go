package main

// Tests of the chat with -history, end to end through the real
// serve loop, each against SQLite (a file in t.TempDir()) and PostgreSQL (a
// database of its own, dropped after the test): offsets in broadcast order,
// catch-up after auth.serverOffset and of the newest -history-last without
// it, no gap and no duplicate at the seam between catch-up and live
// messages while clients connect during a conversation, client offsets
// (a retry is acknowledged again and broadcast once), a store that goes
// down (no ack, no broadcast, a warning, then recovery), a restart that
// keeps the history, and a start that fails clearly.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
	"github.com/chatio/socketio-chat/history"
	"github.com/jackc/pgx/v5"
)

// historyBackend makes fresh, empty histories of one kind.
type historyBackend struct {
	name   string
	newDSN func(tb testing.TB) string
}

var historyBackends = []historyBackend{
	{"sqlite", func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "chat.db") }},
	{"postgres", historyPostgresDSN},
}

// historyPGAdmin is where the tests find PostgreSQL: HISTORY_TEST_POSTGRES
// if set, else the local server as user postgres (trust authentication).
func historyPGAdmin() string {
	if u := os.Getenv("HISTORY_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=5"
}

// historyPostgresDSN creates a database of the test's own and returns its
// URL; the database is dropped when the test ends (after its servers
// stopped: cleanups run last registered first).
func historyPostgresDSN(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, historyPGAdmin())
	if err != nil {
		needs(tb, "PostgreSQL at %s (set HISTORY_TEST_POSTGRES): %v", redactURL(historyPGAdmin()), err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "chat_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, historyPGAdmin())
		if err != nil {
			tb.Errorf("drop database %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(historyPGAdmin())
	u.Path = "/" + name
	return u.String()
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

// historyStart starts a test server with its history at dsn, a rate limit
// that lets tests send fast, and a short poll.
func historyStart(tb testing.TB, dsn string, mutate ...func(*chat.Config)) *testServer {
	tb.Helper()
	return sioStart(tb, func(c *chat.Config) {
		c.History = dsn
		c.EventRate, c.EventBurst = 10_000, 10_000
		c.HistoryPoll = 100 * time.Millisecond
		for _, m := range mutate {
			m(c)
		}
	})
}

// histMsg is a message event as a history client receives it.
type histMsg struct {
	text   string // the first argument's JSON
	offset int64
}

// histMessages parses the message events a raw client received:
// 42["message",<text>,<offset>].
func histMessages(tb testing.TB, c *rawChat) []histMsg {
	tb.Helper()
	var out []histMsg
	for _, p := range c.received() {
		if !strings.HasPrefix(p, `42["message",`) {
			continue
		}
		var args []json.RawMessage
		if err := json.Unmarshal([]byte(p[2:]), &args); err != nil || len(args) < 3 {
			tb.Fatalf("%s: message packet %q: want [\"message\", text, offset]", c.name, p)
		}
		off, err := strconv.ParseInt(string(args[2]), 10, 64)
		if err != nil {
			tb.Fatalf("%s: message packet %q: offset %s is not an integer", c.name, p, args[2])
		}
		out = append(out, histMsg{text: string(args[1]), offset: off})
	}
	return out
}

// histAcks returns the ids of the acknowledgements a raw client received.
func histAcks(c *rawChat) []int64 {
	var out []int64
	for _, p := range c.received() {
		rest, ok := strings.CutPrefix(p, "43")
		if !ok {
			continue
		}
		i := strings.IndexByte(rest, '[')
		if id, err := strconv.ParseInt(rest[:max(i, 0)], 10, 64); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// histSend sends a user-message with the text's JSON, a client offset (none
// when empty) and an ack id (none when negative), as the tutorial's page
// does with retries: 42<id>["user-message",text,clientOffset].
func histSend(tb testing.TB, c *rawChat, ackID int64, text, co string) {
	tb.Helper()
	var b strings.Builder
	b.WriteString("42")
	if ackID >= 0 {
		b.WriteString(strconv.FormatInt(ackID, 10))
	}
	b.WriteString(`["user-message",`)
	b.WriteString(text)
	if co != "" {
		q, _ := json.Marshal(co)
		b.WriteByte(',')
		b.Write(q)
	}
	b.WriteByte(']')
	if err := c.send(b.String()); err != nil {
		tb.Fatalf("%s: send: %v", c.name, err)
	}
}

// histWait waits until c received a message with offset at least off, and
// returns its messages.
func histWait(tb testing.TB, c *rawChat, off int64, timeout time.Duration) []histMsg {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := histMessages(tb, c)
		if n := len(msgs); n > 0 && msgs[n-1].offset >= off {
			return msgs
		}
		if err, ended := c.ended(); ended {
			tb.Fatalf("%s: connection ended (%v) before offset %d; got %d messages", c.name, err, off, len(msgs))
		}
		if time.Now().After(deadline) {
			last := int64(0)
			if n := len(msgs); n > 0 {
				last = msgs[n-1].offset
			}
			tb.Fatalf("%s: timed out after %v waiting for offset %d; got %d messages, the last at %d", c.name, timeout, off, len(msgs), last)
		}
		select {
		case <-c.notify:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// histCheckRun checks that msgs are the offsets first..last, each once, in
// order.
func histCheckRun(tb testing.TB, name string, msgs []histMsg, first, last int64) {
	tb.Helper()
	var got []int64
	for _, m := range msgs {
		got = append(got, m.offset)
	}
	var want []int64
	for o := first; o <= last; o++ {
		want = append(want, o)
	}
	if !slices.Equal(got, want) {
		tb.Fatalf("%s: got offsets %s, want %d..%d each once, in order", name, histSummary(got), first, last)
	}
}

// histSummary shortens a list of offsets for a failure message, showing
// where it is not consecutive.
func histSummary(offs []int64) string {
	if len(offs) == 0 {
		return "[]"
	}
	var parts []string
	start := offs[0]
	for i := 1; i <= len(offs); i++ {
		if i < len(offs) && offs[i] == offs[i-1]+1 {
			continue
		}
		if start == offs[i-1] {
			parts = append(parts, strconv.FormatInt(start, 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d..%d", start, offs[i-1]))
		}
		if i < len(offs) {
			start = offs[i]
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// histStored reads every stored message of a history.
func histStored(tb testing.TB, dsn string) []history.Record {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := history.Open(ctx, dsn, history.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	recs, err := s.After(ctx, 0, 1_000_000)
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

func TestHistory(t *testing.T) {
	for _, b := range historyBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			t.Run("offsets and catch-up", func(t *testing.T) { t.Parallel(); testHistoryCatchup(t, b.newDSN(t)) })
			t.Run("seam under concurrent connects", func(t *testing.T) { t.Parallel(); testHistorySeam(t, b.newDSN(t)) })
			t.Run("client offsets", func(t *testing.T) { t.Parallel(); testHistoryClientOffsets(t, b.newDSN(t)) })
			t.Run("restart keeps history", func(t *testing.T) { t.Parallel(); testHistoryRestart(t, b.newDSN(t)) })
			t.Run("retention", func(t *testing.T) { t.Parallel(); testHistoryRetention(t, b.newDSN(t)) })
		})
	}
}

// Offsets increase in broadcast order and every client sees the same
// sequence over each transport; a client that connects gets the messages
// after its serverOffset (or the newest -history-last without one) before
// any live message.
func testHistoryCatchup(t *testing.T, dsn string) {
	ts := historyStart(t, dsn, func(c *chat.Config) { c.HistoryLast = 10 })
	a := rawChatDial(t, ts, rawChatWS, "a", rawChatOptions{})
	b := rawChatDial(t, ts, rawChatPolling, "b", rawChatOptions{})
	var wg sync.WaitGroup
	for _, s := range []*rawChat{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				histSend(t, s, -1, strconv.Quote(fmt.Sprintf("%s%d", s.name[:1], i)), "")
			}
		}()
	}
	wg.Wait()
	ma, mb := histWait(t, a, 60, 10*time.Second), histWait(t, b, 60, 10*time.Second)
	histCheckRun(t, "a", ma, 1, 60)
	histCheckRun(t, "b", mb, 1, 60)
	if !slices.Equal(ma, mb) {
		t.Fatalf("a and b saw different messages at the same offsets")
	}
	for _, sender := range []string{"a", "b"} { // each sender's order kept
		n := 0
		for _, m := range ma {
			if strings.HasPrefix(m.text, `"`+sender) {
				if want := strconv.Quote(fmt.Sprintf("%s%d", sender, n)); m.text != want {
					t.Fatalf("%s's messages out of order: %s where %s was due", sender, m.text, want)
				}
				n++
			}
		}
	}

	cases := []struct {
		name      string
		transport rawChatTransport
		auth      string
		first     int64
	}{
		{"no auth: the newest 10", rawChatWS, "", 51},
		{"no serverOffset: the newest 10", rawChatPolling, `{"token":"x"}`, 51},
		{"serverOffset 40", rawChatWS, `{"serverOffset":40}`, 41},
		{"serverOffset 40 over polling", rawChatPolling, `{"serverOffset":40}`, 41},
		{"serverOffset 0: everything", rawChatWS, `{"serverOffset":0}`, 1},
		{"serverOffset as a string", rawChatWS, `{"serverOffset":"55"}`, 56},
		{"serverOffset current", rawChatWS, `{"serverOffset":60}`, 61},
		{"serverOffset never given out", rawChatWS, `{"serverOffset":1000000}`, 61},
	}
	late := make([]*rawChat, len(cases))
	for i, c := range cases {
		late[i] = rawChatDial(t, ts, c.transport, c.name, rawChatOptions{auth: c.auth})
		if c.first <= 60 {
			histCheckRun(t, c.name, histWait(t, late[i], 60, 10*time.Second), c.first, 60)
		}
	}
	// Then live messages, after the catch-up.
	histSend(t, a, -1, `"live"`, "")
	for i, c := range cases {
		msgs := histWait(t, late[i], 61, 10*time.Second)
		histCheckRun(t, c.name, msgs, c.first, 61)
		if msgs[len(msgs)-1].text != `"live"` {
			t.Fatalf("%s: last message %s, want \"live\"", c.name, msgs[len(msgs)-1].text)
		}
	}
}

// Clients connecting while messages are being sent each get every message
// after their offset exactly once, in order: the catch-up, then the live
// messages, with nothing lost or repeated at the seam.
func testHistorySeam(t *testing.T, dsn string) {
	ts := historyStart(t, dsn, func(c *chat.Config) { c.HistoryLast = 20 })
	sender := rawChatDial(t, ts, rawChatWS, "sender", rawChatOptions{})
	const before, total = 100, 700
	for i := range before {
		histSend(t, sender, -1, strconv.Quote(fmt.Sprint("m", i)), "")
	}
	histWait(t, sender, before, 10*time.Second)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := before; i < total; i++ {
			histSend(t, sender, -1, strconv.Quote(fmt.Sprint("m", i)), "")
			time.Sleep(2 * time.Millisecond)
		}
	}()
	type joiner struct {
		c     *rawChat
		first int64 // 0: unknown (the newest 20 at the time)
	}
	var mu sync.Mutex
	var joiners []joiner
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 15 * time.Millisecond)
			tr := rawChatWS
			if i%4 == 3 {
				tr = rawChatPolling
			}
			j := joiner{}
			opts := rawChatOptions{}
			if i%2 == 1 {
				// An offset the client could have seen: one the sender got.
				var off int64
				if msgs := histMessages(t, sender); len(msgs) > 0 {
					off = max(msgs[len(msgs)-1].offset-int64(i%50), 0)
				}
				opts.auth, j.first = fmt.Sprintf(`{"serverOffset":%d}`, off), off+1
			}
			j.c = rawChatDial(t, ts, tr, fmt.Sprintf("joiner%d", i), opts)
			mu.Lock()
			joiners = append(joiners, j)
			mu.Unlock()
		}()
	}
	wg.Wait()
	<-sent
	for _, j := range joiners {
		msgs := histWait(t, j.c, total, 20*time.Second)
		first := j.first
		if first == 0 {
			first = msgs[0].offset
		}
		histCheckRun(t, j.c.name, msgs, first, total)
		for _, m := range msgs {
			if want := strconv.Quote(fmt.Sprint("m", m.offset-1)); m.text != want {
				t.Fatalf("%s: offset %d carries %s, want %s", j.c.name, m.offset, m.text, want)
			}
		}
	}
	histCheckRun(t, "sender", histWait(t, sender, total, 10*time.Second), 1, total)
}

// A message retried with the same client offset is stored and broadcast
// once and acknowledged each time; messages without offset or ack (the
// unmodified page) are stored and broadcast; refused messages are neither
// stored nor acknowledged.
func testHistoryClientOffsets(t *testing.T, dsn string) {
	ts := historyStart(t, dsn, func(c *chat.Config) { c.MaxMessageBytes = 100 })
	c := rawChatDial(t, ts, rawChatWS, "client", rawChatOptions{})
	observer := rawChatDial(t, ts, rawChatPolling, "observer", rawChatOptions{})

	histSend(t, c, 1, `"hello"`, c.id+"-0")
	histSend(t, c, 2, `"hello"`, c.id+"-0") // the retry of a client whose ack was lost
	histSend(t, c, -1, `"plain"`, "")       // the tutorial's page
	histSend(t, c, 3, `"no offset"`, "")
	histSend(t, c, 4, strconv.Quote(strings.Repeat("x", 200)), c.id+"-1")          // too large
	histSend(t, c, 5, `"long offset"`, strings.Repeat("o", 300))                   // client offset too long
	histSend(t, c, 6, `{"a":[1,2.50,"\u00e9"]}`, c.id+"-2")                        // JSON kept byte for byte
	histSend(t, c, 7, `"numeric offset"`, "")                                      // no offset
	if err := c.send(`428["user-message","number as offset",12345]`); err != nil { // a number as the offset
		t.Fatal(err)
	}
	if err := c.send(`429["user-message","number as offset again",12345]`); err != nil {
		t.Fatal(err)
	}
	histSend(t, c, 10, `"last"`, c.id+"-3")
	want := []string{`"hello"`, `"plain"`, `"no offset"`, `{"a":[1,2.50,"\u00e9"]}`, `"numeric offset"`, `"number as offset"`, `"last"`}
	for _, r := range []*rawChat{c, observer} {
		msgs := histWait(t, r, int64(len(want)), 10*time.Second)
		histCheckRun(t, r.name, msgs, 1, int64(len(want)))
		var texts []string
		for _, m := range msgs {
			texts = append(texts, m.text)
		}
		if !slices.Equal(texts, want) {
			t.Fatalf("%s: got %q, want %q", r.name, texts, want)
		}
	}
	sioEventually(t, 5*time.Second, "the acknowledgements", func() bool { return len(histAcks(c)) >= 8 })
	time.Sleep(100 * time.Millisecond) // an ack of a refused message would have come by now
	acks := histAcks(c)
	slices.Sort(acks)
	if wantAcks := []int64{1, 2, 3, 6, 7, 8, 9, 10}; !slices.Equal(acks, wantAcks) {
		t.Fatalf("acknowledged %v, want %v (4 too large, 5 with a too long offset: refused)", acks, wantAcks)
	}
	stored := histStored(t, dsn)
	if len(stored) != len(want) {
		t.Fatalf("stored %d messages, want %d", len(stored), len(want))
	}
	for i, r := range stored {
		if string(r.Payload) != want[i] || r.Offset != int64(i+1) {
			t.Fatalf("stored #%d: %d %s, want %d %s", i, r.Offset, r.Payload, i+1, want[i])
		}
	}
	if !strings.Contains(ts.Log.String(), "client offset longer than 256 bytes") {
		t.Error("no warning for the too long client offset")
	}
}

// A restarted server keeps the history and its offsets.
func testHistoryRestart(t *testing.T, dsn string) {
	ts := historyStart(t, dsn)
	c := rawChatDial(t, ts, rawChatWS, "before", rawChatOptions{})
	for i := range 10 {
		histSend(t, c, int64(i), strconv.Quote(fmt.Sprint("m", i)), fmt.Sprint(c.id, "-", i))
	}
	histWait(t, c, 10, 10*time.Second)
	sioEventually(t, 5*time.Second, "10 acks", func() bool { return len(histAcks(c)) == 10 })
	ts.Stop(t)

	ts2 := historyStart(t, dsn)
	d := rawChatDial(t, ts2, rawChatWS, "after, serverOffset 4", rawChatOptions{auth: `{"serverOffset":4}`})
	histCheckRun(t, d.name, histWait(t, d, 10, 10*time.Second), 5, 10)
	e := rawChatDial(t, ts2, rawChatPolling, "after, no offset", rawChatOptions{})
	histCheckRun(t, e.name, histWait(t, e, 10, 10*time.Second), 1, 10)
	// The same client offset as before the restart: acknowledged, not stored again.
	histSend(t, d, 100, `"m9"`, c.id+"-9")
	histSend(t, d, 101, `"new"`, "")
	msgs := histWait(t, d, 11, 10*time.Second)
	histCheckRun(t, d.name, msgs, 5, 11)
	if msgs[len(msgs)-1].text != `"new"` {
		t.Fatalf("offset 11 is %s, want \"new\"", msgs[len(msgs)-1].text)
	}
	sioEventually(t, 5*time.Second, "both acks", func() bool { return len(histAcks(d)) == 2 })
}

// Retention deletes from the store on its own goroutine, and a catch-up
// never sends what it deletes, also from the feed's memory before it ran.
func testHistoryRetention(t *testing.T, dsn string) {
	ts := historyStart(t, dsn, func(c *chat.Config) {
		c.HistoryMaxMessages = 5
		c.HistoryMaxAge = 2 * time.Second
		c.HistoryTrimInterval = 50 * time.Millisecond
	})
	c := rawChatDial(t, ts, rawChatWS, "sender", rawChatOptions{})
	for i := range 20 {
		histSend(t, c, -1, strconv.Quote(fmt.Sprint("m", i)), "")
	}
	histWait(t, c, 20, 10*time.Second)
	for _, auth := range []string{"", `{"serverOffset":0}`, `{"serverOffset":3}`} {
		late := rawChatDial(t, ts, rawChatWS, "late "+auth, rawChatOptions{auth: auth})
		histCheckRun(t, late.name, histWait(t, late, 20, 10*time.Second), 16, 20)
	}
	sioEventually(t, 10*time.Second, "retention to keep 5 messages", func() bool { return len(histStored(t, dsn)) == 5 })
	if recs := histStored(t, dsn); recs[0].Offset != 16 {
		t.Fatalf("kept offsets from %d, want 16..20", recs[0].Offset)
	}
	// By age: once they are older than 2 s, none is sent, and all are deleted.
	time.Sleep(2500 * time.Millisecond)
	late := rawChatDial(t, ts, rawChatWS, "after the age limit", rawChatOptions{auth: `{"serverOffset":0}`})
	histSend(t, c, -1, `"fresh"`, "")
	histCheckRun(t, late.name, histWait(t, late, 21, 10*time.Second), 21, 21)
	sioEventually(t, 10*time.Second, "retention by age", func() bool { return len(histStored(t, dsn)) == 1 })
}

// A store that fails turns into a warning (once) and a message that waits:
// it is neither acknowledged nor broadcast while the store fails (the
// client retries meanwhile), and once the store is back it is stored,
// broadcast once and acknowledged, the retries as duplicates.
func TestHistoryStoreDown(t *testing.T) {
	for _, b := range historyBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dsn := b.newDSN(t)
			ts := historyStart(t, dsn)
			c := rawChatDial(t, ts, rawChatWS, "client", rawChatOptions{})
			observer := rawChatDial(t, ts, rawChatWS, "observer", rawChatOptions{})
			histSend(t, c, 1, `"before"`, "co-1")
			histWait(t, observer, 1, 10*time.Second)

			restore := historyBreak(t, b.name, dsn)
			histSend(t, c, 2, `"during"`, "co-2")
			sioEventually(t, 20*time.Second, "the warning", func() bool {
				return strings.Contains(ts.Log.String(), "history: storing a chat message failed")
			})
			histSend(t, c, 3, `"during"`, "co-2") // the client's retry, still failing
			time.Sleep(500 * time.Millisecond)
			if acks := histAcks(c); !slices.Equal(acks, []int64{1}) {
				t.Fatalf("acknowledged %v while the store was down, want only 1", acks)
			}
			if msgs := histMessages(t, observer); len(msgs) != 1 {
				t.Fatalf("the observer got %d messages while the store was down, want 1", len(msgs))
			}
			restore()
			// The client retries until it is acknowledged, as socket.io-client
			// does (the attempt in flight may succeed first).
			deadline := time.Now().Add(30 * time.Second)
			for id := int64(4); len(histAcks(c)) == 1; id++ {
				if time.Now().After(deadline) {
					t.Fatal("no acknowledgement within 30s of the store's return")
				}
				histSend(t, c, id, `"during"`, "co-2")
				time.Sleep(300 * time.Millisecond)
			}
			msgs := histWait(t, observer, 2, 10*time.Second)
			histCheckRun(t, "observer", msgs, 1, 2)
			time.Sleep(300 * time.Millisecond) // the other retries' acks: duplicates
			if msgs := histMessages(t, observer); len(msgs) != 2 {
				t.Fatalf("the observer got %d messages, want 2: the retries must not be broadcast", len(msgs))
			}
			if n := strings.Count(ts.Log.String(), "history: storing a chat message failed"); n != 1 {
				t.Errorf("the outage was logged %d times, want once", n)
			}
			sioEventually(t, 5*time.Second, "the recovery line", func() bool {
				return strings.Contains(ts.Log.String(), "history: storing a chat message works again")
			})
			if got := len(histStored(t, dsn)); got != 2 {
				t.Fatalf("stored %d messages, want 2", got)
			}
		})
	}
}

// historyBreak makes the store fail and returns what repairs it: PostgreSQL
// refuses connections to the database (and drops the open ones); SQLite's
// file is locked by another connection, so that the server's writes time
// out busy.
func historyBreak(t *testing.T, backend, dsn string) (restore func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch backend {
	case "postgres":
		u, _ := url.Parse(dsn)
		name := strings.TrimPrefix(u.Path, "/")
		admin, err := pgx.Connect(ctx, historyPGAdmin())
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		for _, q := range []string{
			"ALTER DATABASE " + name + " WITH ALLOW_CONNECTIONS false",
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name + "' AND pid <> pg_backend_pid()",
		} {
			if _, err := admin.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			admin, err := pgx.Connect(ctx, historyPGAdmin())
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close(ctx)
			if _, err := admin.Exec(ctx, "ALTER DATABASE "+name+" WITH ALLOW_CONNECTIONS true"); err != nil {
				t.Fatal(err)
			}
		}
	default:
		db, err := sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		release := func() {
			once.Do(func() {
				_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
				_ = conn.Close()
				_ = db.Close()
			})
		}
		t.Cleanup(release)
		return release
	}
}

// A history that cannot be opened stops the start with a message that
// names it.
func TestHistoryStartFailure(t *testing.T) {
	for _, c := range []struct {
		name, dsn, want string
	}{
		{"missing directory", filepath.Join(t.TempDir(), "no", "such", "dir", "chat.db"), "open history"},
		{"unreachable PostgreSQL", "postgres://postgres:secret@127.0.0.1:1/chat?connect_timeout=2", "open history postgres://postgres:xxxxx@127.0.0.1:1/chat"},
		{"not a database", historyNotADatabase(t), "open history"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"-addr", "127.0.0.1:0", "-client-dir", sioFakeBundle(t), "-history", c.dsn}
			code := run(context.Background(), args, confEnv(nil), &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != exitFailed {
				t.Fatalf("exit status %d, want %d; output:\n%s", code, exitFailed, out)
			}
			if !strings.Contains(out, c.want) || strings.Contains(out, "secret") {
				t.Fatalf("output %q: want it to contain %q and no password", out, c.want)
			}
			if strings.Contains(out, "Server started") {
				t.Fatal("the server started")
			}
		})
	}
}

func historyNotADatabase(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "chat.db")
	if err := os.WriteFile(p, bytes.Repeat([]byte("not a database\n"), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
