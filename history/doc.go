// Package history is the chat's message store: a durable, ordered history of
// chat messages with offsets for server delivery (the Socket.IO tutorial's
// serverOffset) and client offsets for storing a retried message once (its
// clientOffset).
//
// # Pieces
//
//   - Store (store.go) is the small interface the chat calls. Open picks the
//     implementation from the name: a postgres:// or postgresql:// URL opens
//     PostgreSQL (store_postgres.go), anything else is a SQLite file
//     (store_sqlite.go). Each migrates its own schema on Open.
//   - Writer (writer.go) puts group commit on top of a Store: one goroutine
//     commits whatever is waiting in one transaction and then runs the
//     callbacks in offset order, on that goroutine, so the chat can ack and
//     broadcast from the callback in order.
//
// Apart from a Writer's goroutine (and the database drivers' own pool
// housekeeping) the package starts none; Store methods run on the caller's
// goroutine, and Trim (retention) is meant to be called now and
// then from a goroutine of the chat's own, off the broadcast path.
//
// # Guarantees
//
// A message whose Append returned nil, or whose Writer callback reported
// success, is durable: it survives kill -9 of the process (tested: the crash
// test acknowledges messages from a child process, kills it with SIGKILL,
// and finds every acknowledged message exactly once). Offsets are strictly
// increasing in commit order, dense (1, 2, 3, … with no hole but the prefix
// that retention removed; a duplicate or a rolled back append uses none),
// never reused, and never 0, so 0 means
// "from the beginning". A reader that has seen offset X never later finds a
// new message below X, also with several nodes on one PostgreSQL database.
// Payload bytes are stored and returned exactly as given.
//
// An Append error means nothing of the batch was stored, except an
// *UncertainError (ErrUncertain): a PostgreSQL connection lost while its
// COMMIT was on the way may or may not have committed. Store.Settle finds
// out (it waits for the counter's lock, then compares the rows at the
// planned offsets), and a Writer settles such a batch before it appends it
// again, so a message is stored once also without a client offset. A
// client that retries with the same client offset gets the first copy as a
// Duplicate instead of storing it twice. Deduplication covers what
// retention kept. Errors caused by a message's data wrap ErrRejected: a
// Writer with RetryFor tries such a batch one message at a time, so that
// only the message at fault fails, and holds the other failures (the store
// down) for up to RetryFor, in order, bounded by QueueSize and QueueBytes.
//
// # SQLite driver: modernc.org/sqlite
//
// Both cgo-free drivers were measured on the test machine (2 cores, shared;
// Go 1.26.8, linux/amd64) with a throwaway program that, for each driver in
// its own binary, opened a new file in WAL mode through database/sql,
// created the table, inserted 3 000 messages in one transaction each and
// 50 000 in transactions of 100, with synchronous=NORMAL and FULL; three
// runs each, ranges shown:
//
//	                              modernc.org/sqlite v1.62.0   ncruces/go-sqlite3 v0.37.0
//	binary size over database/sql     +7.4 MB (9.9 MB)            +10.7 MB (13.1 MB)
//	process start to table created    1.7–2.4 ms                  2.7–3.6 ms
//	1 msg/tx, NORMAL                  19 000–26 600 msg/s         13 400–17 800 msg/s
//	1 msg/tx, FULL                    7 300–8 700 msg/s           6 800–9 100 msg/s
//	100 msgs/tx, NORMAL               115 000–173 000 msg/s       126 000–162 000 msg/s
//	100 msgs/tx, FULL                 102 000–128 000 msg/s       119 000–133 000 msg/s
//
// Batched throughput is a tie within the noise; modernc.org/sqlite (SQLite
// translated from C to Go) gives a binary 3.3 MB smaller, starts faster and
// commits single messages faster than ncruces/go-sqlite3 (SQLite compiled to
// Wasm and translated to Go), and needs no separate Wasm module. Its one
// catch: modernc.org/libc must stay at the version modernc.org/sqlite's own
// go.mod names (go get modernc.org/sqlite@vX does that; never go get libc
// on its own).
//
// # Durability setting: WAL with synchronous=FULL
//
// SQLite runs in WAL mode (readers never block the writer). With
// synchronous=NORMAL a commit is written to the WAL but fsynced only at
// checkpoints: it survives a process crash (the data is in the kernel's page
// cache) but not a power loss or kernel crash. With synchronous=FULL (the
// default here, SyncFull) every commit fsyncs the WAL: it survives both. The
// crash test passes with both. FULL is the default because an ack tells the
// client to stop retrying, so "acknowledged" should mean "on disk", and with
// group commit the fsync is paid once per batch: measured (see below), FULL
// stores 33 000–52 000 msg/s through a Writer against 48 000–67 000 with
// NORMAL, both over 100 times the chat's sustained broadcast rate (a few
// hundred messages per second). Options.Synchronous =
// SyncNormal trades power-loss safety for speed. PostgreSQL's durability is
// the server's synchronous_commit (on by default: flushed before the commit
// is acknowledged).
//
// # Cluster ordering (PostgreSQL)
//
// Offsets come from one counter row, locked (SELECT … FOR UPDATE) at the
// start of every append transaction and written back in it; the lock is
// released only once the commit is visible. So offsets are taken and made
// visible in the same order, whichever node appends: there is never a moment
// when offset 8 is visible and 7 is still to come. A sequence would not do:
// nextval is outside transactions, two nodes can take 7 and 8 and commit 8
// first, and a reader polling "after 6" that sees 8 skips 7 forever
// (TestClusterOrdering catches exactly that within a second when the lock is
// replaced by such an allocation). The cost is that the cluster's appends
// are serialized: one append transaction at a time, holding the lock for
// two round trips (BEGIN and the lock, the reads; the inserts, the counter
// and COMMIT, each a pipelined batch). Group commit amortizes it over the batch;
// readers never wait for it. The alternative, readers that stop at a "safe
// watermark", would keep appends parallel but delay every reader by the
// slowest transaction and need a clock or a heartbeat to move the watermark.
//
// # Throughput
//
// go test -run '^$' -bench . -benchtime=2s -count=3 ./history/ on the same
// machine (load average 2.3–2.7 from other work, hence the spread; ranges of
// the three runs; PostgreSQL 15 on localhost, default settings). Writer: 64
// clients that each wait for their ack before sending again; "batched" is
// MaxBatch 256 (about 32 messages per commit at that concurrency),
// "unbatched" MaxBatch 1, one transaction per message. Append: one goroutine
// calling Store.Append directly with 1 or 100 messages.
//
//	msg/s           Writer batched   Writer unbatched   Append ×1       Append ×100
//	SQLite, FULL    33 000–52 000    3 400–5 800        3 300–4 700     43 000–73 000
//	SQLite, NORMAL  48 000–67 000    9 700–10 700       11 300–14 500   69 000–101 000
//	PostgreSQL      12 000–14 000    1 100–1 600        1 200–1 600     21 000–27 000
//
// Group commit is worth 6–10 times on each store. Allocations per message
// through a batched Writer: 19–22 (about 1 KB) on SQLite, 23 (2 KB) on
// PostgreSQL.
//
// Those PostgreSQL numbers are for appends in four round trips (BEGIN,
// reads, writes, COMMIT). With BEGIN and COMMIT pipelined into the batches
// (two round trips, as now), the same command on a quiet machine gives:
// Writer batched 18 900, unbatched 2 000, Append ×1 1 700, Append ×100
// 25 700 msg/s.
//
// The PostgreSQL pool sets plan_cache_mode=force_custom_plan: a prepared
// statement's generic plan, made while the table was tiny, turned the
// duplicate lookup into a scan that grew with the table (0.7 ms → 9 ms per
// 100-message append after 60 000 messages); planned per execution, an
// append of 100 stays at about 3 ms up to 150 000 messages and more.
package history
