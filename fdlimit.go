package main

import (
	"fmt"
	"log/slog"
	"syscall"

	"github.com/chatio/socketio-chat/chat"
)

// openFileLimit returns the process's open-file limit (RLIMIT_NOFILE),
// raising the soft limit to the hard one first if it is lower. (Go does
// that already as the process starts, since 1.19; a limit lowered since,
// or a process started by a Go older than that, still gets it here.)
func openFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		raised := syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	return lim.Cur, nil
}

// fileHeadroom is how many descriptors are kept for what is not a client:
// the listeners, epoll, the Redis pools (go-redis: 10 per CPU per client),
// the database pools (pgx: 4 or one per CPU), the SQLite files, pprof, the
// runtime: a few dozen on this project's machines. 1% of the limit, at
// least 64 and at most 1024.
func fileHeadroom(nofile uint64) uint64 {
	return min(max(nofile/100, 64), 1024)
}

// fitFileLimit lowers cfg's connection limits so that they fit in nofile
// descriptors: every WebSocket session holds one, every HTTP connection
// one (a polling session's among them), the health reserve its own, and
// fileHeadroom more are kept. Without that, a server past the limit fails
// to accept (EMFILE) and clients time out, where they should get a 503.
// When the limits do not fit, the HTTP connections get at most a tenth of
// what is left (a chat's clients are mostly WebSocket sessions; a polling
// deployment sets both flags), the sessions the rest; the change is logged
// at warn.
// It fails only when not even one session fits.
func fitFileLimit(cfg *chat.Config, nofile uint64, log *slog.Logger) error {
	if nofile == 0 || nofile > 1<<40 { // unknown, or RLIM_INFINITY
		return nil
	}
	budget := int64(nofile) - int64(fileHeadroom(nofile)) - healthReserve
	sessions, httpConns := int64(cfg.MaxConnections), int64(cfg.MaxHTTPConnections)
	if sessions+httpConns <= budget {
		return nil
	}
	httpFit := min(httpConns, max(budget/10, 1))
	sessionFit := min(sessions, budget-httpFit)
	if sessionFit < 1 {
		return fmt.Errorf("the open-file limit (%d, ulimit -n) leaves no room for a session; raise it", nofile)
	}
	log.Warn("lowering the connection limits to fit the open-file limit (raise ulimit -n to serve more)",
		"nofile", nofile, "max_connections", sessions, "effective_max_connections", sessionFit,
		"max_http_connections", httpConns, "effective_max_http_connections", httpFit)
	cfg.MaxConnections, cfg.MaxHTTPConnections = int(sessionFit), int(httpFit)
	return nil
}
