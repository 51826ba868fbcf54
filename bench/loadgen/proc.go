package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is 100
// on every Linux architecture Go supports (the kernel ABI fixes it).
const clockTicks = 100

// procSample is a server process's cumulative CPU time and current RSS.
type procSample struct {
	at    time.Time
	cpu   time.Duration // utime + stime
	sys   time.Duration // stime: the kernel's work for the process
	rssKB int64
}

// readProc samples /proc/PID/stat (CPU) and /proc/PID/status (VmRSS).
func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	if pid <= 0 {
		return s, nil
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may contain spaces; fields after it are plain.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks
	s.sys = time.Duration(st) * time.Second / clockTicks

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range bytes.Split(status, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			fs := bytes.Fields(rest) // "12345 kB"
			if len(fs) > 0 {
				s.rssKB, _ = strconv.ParseInt(string(fs[0]), 10, 64)
			}
			break
		}
	}
	return s, nil
}

// readProcs sums the samples of the nodes of a cluster (no pid: zero).
func readProcs(pids []int) (procSample, error) {
	s := procSample{at: time.Now()}
	for _, pid := range pids {
		one, err := readProc(pid)
		if err != nil {
			return s, err
		}
		s.cpu += one.cpu
		s.sys += one.sys
		s.rssKB += one.rssKB
	}
	return s, nil
}

// selfCPU is the load generator's own CPU time (user + system) and peak RSS.
func selfCPU() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), int64(ru.Maxrss)
}

// raiseNoFile lifts the open-file soft limit to the hard limit: every client
// is a socket. It returns the soft limit in force and the hard limit.
func raiseNoFile() (soft, hard uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur, lim.Max
}
