package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Profile is the text summary of one pprof profile of our server.
type Profile struct {
	Title   string `json:"title"`
	File    string `json:"file"`
	Command string `json:"command"`
	Top     string `json:"top"`
}

// summarizeProfiles runs `go tool pprof -top` on the profiles the load
// generator saved: CPU per load point, allocations per load point (the
// difference between the allocs profiles before and after it) and the live
// heap with idle clients.
func summarizeProfiles(ctx context.Context, root string, res *Run, log io.Writer) []Profile {
	var out []Profile
	for _, s := range res.Scenarios {
		if !isGo(s.Server) {
			continue
		}
		files := append([]string(nil), s.Profiles...)
		sort.Strings(files)
		for _, f := range files {
			base := filepath.Base(f)
			var args []string
			var title string
			switch {
			case strings.HasPrefix(base, "cpu-"):
				title = fmt.Sprintf("%s: CPU, %s at %s msg/s", s.Server, s.Name, rateOf(base))
				args = []string{"tool", "pprof", "-top", "-nodecount=15", f}
			case strings.HasPrefix(base, "allocs-") && strings.HasSuffix(base, "-after.pprof"):
				before := strings.TrimSuffix(f, "-after.pprof") + "-before.pprof"
				title = fmt.Sprintf("%s: allocated bytes, %s at %s msg/s", s.Server, s.Name, rateOf(base))
				args = []string{"tool", "pprof", "-top", "-nodecount=15", "-sample_index=alloc_space", "-base", before, f}
			case strings.HasPrefix(base, "heap-idle-"):
				title = fmt.Sprintf("%s: live heap, %s clients idle", s.Server, strings.TrimSuffix(strings.TrimPrefix(base, "heap-idle-"), ".pprof"))
				args = []string{"tool", "pprof", "-top", "-nodecount=15", "-sample_index=inuse_space", f}
			default:
				continue
			}
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Dir = root
			b, err := cmd.CombinedOutput()
			if err != nil {
				fmt.Fprintf(log, "driver: go %s: %v\n%s", strings.Join(args, " "), err, b)
				continue
			}
			out = append(out, Profile{Title: title, File: f, Command: "go " + strings.Join(args, " "), Top: trimPprofHeader(string(b))})
		}
	}
	return out
}

// rateOf extracts the rate from cpu-go-websocket-100.pprof or
// allocs-go-websocket-100-after.pprof.
func rateOf(base string) string {
	base = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base, ".pprof"), "-after"), "-before")
	return base[strings.LastIndexByte(base, '-')+1:]
}

// trimPprofHeader drops the File/Build ID/Time lines pprof prints first.
func trimPprofHeader(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}
