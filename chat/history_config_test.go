package chat

import (
	"io"
	"strings"
	"testing"
	"time"
)

// The -history flags: defaults (off, as the tutorial's server), environment
// fallbacks, flags over the environment, and refusals.
func TestHistoryConfig(t *testing.T) {
	cfg, err := ParseConfig(nil, confEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	confEq(t, "History", cfg.History, "")
	confEq(t, "HistoryLast", cfg.HistoryLast, 100)
	confEq(t, "HistoryMaxCatchup", cfg.HistoryMaxCatchup, 10_000)
	confEq(t, "HistorySync", cfg.HistorySync, "full")
	confEq(t, "HistoryPoll", cfg.HistoryPoll, time.Second)
	confEq(t, "HistoryTrimInterval", cfg.HistoryTrimInterval, time.Minute)
	confEq(t, "HistoryMaxMessages", cfg.HistoryMaxMessages, int64(0))
	confEq(t, "HistoryMaxAge", cfg.HistoryMaxAge, time.Duration(0))

	env := map[string]string{
		"HISTORY": "env.db", "HISTORY_LAST": "5", "HISTORY_MAX_CATCHUP": "0", "HISTORY_MAX_MESSAGES": "1000",
		"HISTORY_MAX_AGE": "720h", "HISTORY_TRIM_INTERVAL": "10s", "HISTORY_SYNC": "normal", "HISTORY_POLL": "250ms",
	}
	cfg, err = ParseConfig(nil, confEnv(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	confEq(t, "History (env)", cfg.History, "env.db")
	confEq(t, "HistoryLast (env)", cfg.HistoryLast, 5)
	confEq(t, "HistoryMaxCatchup (env)", cfg.HistoryMaxCatchup, 0)
	confEq(t, "HistoryMaxMessages (env)", cfg.HistoryMaxMessages, int64(1000))
	confEq(t, "HistoryMaxAge (env)", cfg.HistoryMaxAge, 720*time.Hour)
	confEq(t, "HistoryTrimInterval (env)", cfg.HistoryTrimInterval, 10*time.Second)
	confEq(t, "HistorySync (env)", cfg.HistorySync, "normal")
	confEq(t, "HistoryPoll (env)", cfg.HistoryPoll, 250*time.Millisecond)

	cfg, err = ParseConfig([]string{"-history", "postgres://db/chat", "-history-last", "7", "-history-sync", "full"}, confEnv(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	confEq(t, "History (flag over env)", cfg.History, "postgres://db/chat")
	confEq(t, "HistoryLast (flag over env)", cfg.HistoryLast, 7)
	confEq(t, "HistorySync (flag over env)", cfg.HistorySync, "full")

	// -redis with a PostgreSQL history (shared by the nodes) is fine.
	for _, dsn := range []string{"postgres://db/chat", "POSTGRESQL://db/chat"} {
		if _, err := ParseConfig([]string{"-redis", "redis://127.0.0.1:6379/0", "-history", dsn}, confEnv(nil), io.Discard); err != nil {
			t.Errorf("-redis with -history %s: %v", dsn, err)
		}
	}

	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-history-last", "-1"}, nil, "-history-last"},
		{[]string{"-history-max-catchup", "-5"}, nil, "-history-max-catchup"},
		{[]string{"-history-max-messages", "-1"}, nil, "-history-max-messages"},
		{[]string{"-history-max-age", "-1h"}, nil, "-history-max-age"},
		{[]string{"-history-trim-interval", "0s"}, nil, "-history-trim-interval"},
		{[]string{"-history-sync", "off"}, nil, "-history-sync"},
		{[]string{"-history-poll", "0s"}, nil, "-history-poll"},
		{nil, map[string]string{"HISTORY_LAST": "many"}, "HISTORY_LAST"},
		{nil, map[string]string{"HISTORY_MAX_AGE": "a month"}, "HISTORY_MAX_AGE"},
		// A SQLite history is one node's: with -redis every message from
		// another node would be lost.
		{[]string{"-redis", "redis://127.0.0.1:6379/0", "-history", "chat.db"}, nil, "PostgreSQL"},
		{nil, map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "HISTORY": "/var/lib/chat/chat.db"}, "-redis with a SQLite -history"},
	} {
		_, err := ParseConfig(c.args, confEnv(c.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseConfig(%q, %v) = %v, want an error naming %s", c.args, c.env, err, c.want)
		}
	}
}
