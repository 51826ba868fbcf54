package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// fdMargin is what a process needs besides one descriptor per connection:
// listeners, epoll, pipes, files, the pprof listener.
const fdMargin = 64

// fdNeed is how many open files a server and the load generator each need
// for a loadgen invocation with args: one per WebSocket client, two per
// polling client (a long-poll GET and a POST), plus a margin. The last
// -clients and -transport win, as in the load generator's flag parsing.
func fdNeed(args []string) int {
	clients, transport := "1000", "websocket"
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !hasVal && i+1 < len(args) {
			val = args[i+1]
		}
		switch name {
		case "clients":
			clients = val
		case "transport":
			transport = val
		}
	}
	most := 0
	for _, s := range strings.Split(clients, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			most = max(most, n)
		}
	}
	if transport == "polling" {
		most *= 2
	}
	return most + fdMargin
}

// lastClients is the -clients value of args (the last one wins), or 0.
func lastClients(args []string) int {
	n := 0
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !hasVal && i+1 < len(args) {
			val = args[i+1]
		}
		if name == "clients" {
			n = 0
			for _, s := range strings.Split(val, ",") {
				if v, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
					n = max(n, v)
				}
			}
		}
	}
	return n
}

// raiseNoFile lifts the open-file soft limit to the hard limit; calling
// Setrlimit explicitly also makes the servers and the load generator started
// from here inherit it. It returns the soft and hard limits in force.
func raiseNoFile() (soft, hard uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0
	}
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur, lim.Max
}

// procNoFile reads the open-file soft limit of a running process from
// /proc/PID/limits ("Max open files  20000  20000  files").
func procNoFile(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Max open files")
		if !ok {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			break
		}
		if fs[0] == "unlimited" {
			return 1 << 62, nil
		}
		return strconv.ParseUint(fs[0], 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/limits: no Max open files line", pid)
}
