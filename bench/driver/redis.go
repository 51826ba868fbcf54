package main

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// redisFlush empties the database of a redis:// URL (SELECT n, FLUSHDB), so
// every run of a Redis variant starts from the same state. It speaks RESP
// directly: the driver needs nothing else from Redis.
func redisFlush(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "redis" || u.Host == "" {
		return fmt.Errorf("-redis-url %q: want redis://host:port/db", rawURL)
	}
	db := strings.Trim(u.Path, "/")
	if db == "" {
		db = "0"
	}
	if _, err := strconv.Atoi(db); err != nil {
		return fmt.Errorf("-redis-url %q: database %q is not a number", rawURL, db)
	}
	c, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
	if err != nil {
		return fmt.Errorf("redis at %s: %w", u.Host, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	cmds := [][]string{{"SELECT", db}, {"FLUSHDB"}}
	if pw, ok := u.User.Password(); ok {
		cmds = append([][]string{{"AUTH", pw}}, cmds...)
	}
	var req strings.Builder
	for _, cmd := range cmds {
		fmt.Fprintf(&req, "*%d\r\n", len(cmd))
		for _, a := range cmd {
			fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if _, err := c.Write([]byte(req.String())); err != nil {
		return fmt.Errorf("redis at %s: %w", u.Host, err)
	}
	r := bufio.NewReader(c)
	for _, cmd := range cmds {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("redis at %s: %s: %w", u.Host, cmd[0], err)
		}
		if line = strings.TrimSpace(line); line != "+OK" {
			return fmt.Errorf("redis at %s: %s answered %q", u.Host, cmd[0], line)
		}
	}
	return nil
}
