package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// profiler fetches net/http/pprof profiles from a profiling build of the
// server (see bench/driver -profile). A nil profiler does nothing.
type profiler struct {
	base, dir string
	hc        *http.Client
	log       io.Writer
	files     []string
}

func newProfiler(cfg *config, log io.Writer) *profiler {
	if cfg.pprofURL == "" || cfg.profileDir == "" {
		return nil
	}
	return &profiler{base: strings.TrimRight(cfg.pprofURL, "/"), dir: cfg.profileDir, hc: &http.Client{}, log: log}
}

// goroutines returns the server's goroutine count, or 0.
func (pr *profiler) goroutines() int {
	if pr == nil {
		return 0
	}
	resp, err := pr.hc.Get(pr.base + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		fmt.Fprintf(pr.log, "loadgen: pprof: %v\n", err)
		return 0
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	// "goroutine profile: total 1234"
	n, _ := strconv.Atoi(strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:]))
	return n
}

// saved lists the files written so far.
func (pr *profiler) saved() []string {
	if pr == nil {
		return nil
	}
	return pr.files
}

// save writes the profile at path (e.g. /debug/pprof/heap) to dir/name.
func (pr *profiler) save(name, path string) {
	if pr == nil {
		return
	}
	if err := pr.fetch(name, pr.base+path); err != nil {
		fmt.Fprintf(pr.log, "loadgen: pprof %s: %v\n", path, err)
	}
}

func (pr *profiler) fetch(name, url string) error {
	resp, err := pr.hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	file := filepath.Join(pr.dir, name)
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	pr.files = append(pr.files, file)
	return nil
}

// cpu starts a CPU profile of about d in the background; the returned
// function waits for it to be saved.
func (pr *profiler) cpu(name string, d time.Duration) (wait func()) {
	if pr == nil {
		return func() {}
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := pr.fetch(name, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", pr.base, secs)); err != nil {
			fmt.Fprintf(pr.log, "loadgen: pprof cpu: %v\n", err)
		}
	}()
	return func() { <-done }
}
