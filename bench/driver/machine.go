package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Machine describes where a run happened.
type Machine struct {
	NProc        int    `json:"nproc"`
	CPUModel     string `json:"cpuModel"`
	MemTotal     string `json:"memTotal"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"goVersion"`
	NodeVersion  string `json:"nodeVersion"`
	OpenFiles    uint64 `json:"openFiles"`
	LoadAvgStart string `json:"loadAvgStart"`
	LoadAvgEnd   string `json:"loadAvgEnd"`
}

func machine(ctx context.Context, openFiles uint64) Machine {
	m := Machine{NProc: runtime.NumCPU(), OpenFiles: openFiles, LoadAvgStart: loadAvg()}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.GoVersion = strings.TrimPrefix(command(ctx, "go", "env", "GOVERSION"), "go")
	m.NodeVersion = strings.TrimPrefix(command(ctx, "node", "--version"), "v")
	return m
}

// procField returns the value of the first "key : value" line in a /proc file.
func procField(file, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func command(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return "?"
	}
	return string(bytes.TrimSpace(out))
}
