package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The history variants run our server with -history (docs/HISTORY.md):
// "history" on a SQLite file, "history-pg" on a PostgreSQL database. Each
// server that uses one starts on an empty store: the driver deletes the
// file, or drops and creates the database, before the server starts and
// after it stops.

// addHistoryVariants defines the history variants on file and pgURL.
func addHistoryVariants(vs variantSet, file, pgURL string) {
	vs["history"] = []string{"-history", file}
	vs["history-pg"] = []string{"-history", pgURL}
}

// historyOf returns the -history value of label l's flags, or "".
func (vs variantSet) historyOf(l serverLabel) string {
	f, _ := vs.flags(l)
	dsn := ""
	for i, a := range f {
		switch {
		case (a == "-history" || a == "--history") && i+1 < len(f):
			dsn = f[i+1]
		case strings.HasPrefix(a, "-history="), strings.HasPrefix(a, "--history="):
			_, dsn, _ = strings.Cut(a, "=")
		}
	}
	return dsn
}

func isPostgresURL(dsn string) bool {
	l := strings.ToLower(dsn)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// historyReset empties the store of dsn: the SQLite file and its WAL are
// deleted; the PostgreSQL database is dropped and created again (through
// the server's "postgres" database).
func historyReset(dsn string) error {
	if !isPostgresURL(dsn) {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(dsn + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("history %s: %w", dsn, err)
			}
		}
		return nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("-history-pg: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" || strings.ContainsAny(name, `"; `) {
		return fmt.Errorf("-history-pg %s: want a database of the benchmark's own, e.g. postgres://postgres@127.0.0.1:5432/bench_history", u.Redacted())
	}
	admin := *u
	admin.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("postgres at %s: %w", u.Host, err)
	}
	defer c.Close(ctx)
	for _, q := range []string{`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`, `CREATE DATABASE "` + name + `"`} {
		if _, err := c.Exec(ctx, q); err != nil {
			return fmt.Errorf("postgres at %s: %s: %w", u.Host, q, err)
		}
	}
	return nil
}

// historyDrop removes what historyReset made, after the run.
func historyDrop(dsn string) error {
	if !isPostgresURL(dsn) {
		return historyReset(dsn)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return err
	}
	admin := *u
	admin.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, `DROP DATABASE IF EXISTS "`+strings.TrimPrefix(u.Path, "/")+`" WITH (FORCE)`)
	return err
}
