package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pprofOverlay is compiled into the profiling build of our server (go build
// -overlay adds it to package main without touching the tree): a
// net/http/pprof listener on $BENCH_PPROF_ADDR, separate from the chat's own
// handler.
const pprofOverlay = `package main

import (
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("BENCH_PPROF_ADDR"); addr != "" {
		go func() { log.Println("pprof:", http.ListenAndServe(addr, nil)) }()
	}
}
`

// build compiles the load generator and each Go server into dir: "go" from
// the working tree, "go@REV" from `git archive REV` (a committed version, to
// compare against); servers are base labels (variants share their base's
// binary). With profiling, the Go servers get the pprof overlay. It returns
// the server binaries by base label.
func build(ctx context.Context, root, dir string, servers []string, profiling bool, log io.Writer) (bins map[string]string, loadgen string, err error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, "", err
	}
	loadgen = filepath.Join(dir, "loadgen")
	if err := goCmd(ctx, abs, log, "build", "-o", loadgen, "./bench/loadgen"); err != nil {
		return nil, "", err
	}
	bins = map[string]string{}
	for _, name := range servers {
		if name == floorServer {
			bin := filepath.Join(dir, "floor")
			if err := goCmd(ctx, abs, log, "build", "-o", bin, "./bench/floor"); err != nil {
				return nil, "", err
			}
			bins[name] = bin
			continue
		}
		if !isGo(name) {
			continue
		}
		src := abs
		if rev, ok := strings.CutPrefix(name, "go@"); ok {
			src = filepath.Join(dir, "src-"+sanitize(rev))
			if err := gitExport(ctx, abs, rev, src, log); err != nil {
				return nil, "", err
			}
		}
		bin := filepath.Join(dir, "socketio-chat-"+sanitize(name))
		args := []string{"build", "-o", bin}
		if profiling {
			overlay, err := writeOverlay(dir, src, sanitize(name))
			if err != nil {
				return nil, "", err
			}
			args = append(args, "-overlay", overlay)
		}
		if err := goCmd(ctx, src, log, append(args, ".")...); err != nil {
			return nil, "", err
		}
		bins[name] = bin
	}
	return bins, loadgen, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

func goCmd(ctx context.Context, dir string, log io.Writer, args ...string) error {
	fmt.Fprintf(log, "driver: (cd %s && go %s)\n", dir, strings.Join(args, " "))
	c := exec.CommandContext(ctx, "go", args...)
	c.Dir, c.Stdout, c.Stderr = dir, log, log
	if err := c.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// gitExport writes the tree of rev into dst (read-only for the repository).
func gitExport(ctx context.Context, root, rev, dst string, log io.Writer) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(log, "driver: git archive %s → %s\n", rev, dst)
	archive := exec.CommandContext(ctx, "git", "-C", root, "archive", "--format=tar", rev)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", dst)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	archive.Stderr = log
	untar.Stdin, untar.Stderr = pipe, log
	if err := untar.Start(); err != nil {
		return err
	}
	if err := archive.Run(); err != nil {
		return fmt.Errorf("git archive %s: %w", rev, err)
	}
	return untar.Wait()
}

// writeOverlay writes the pprof listener source and a go build -overlay file
// that adds it to package main in src.
func writeOverlay(dir, src, tag string) (string, error) {
	file := filepath.Join(dir, "zz_bench_pprof_"+tag+".go")
	if err := os.WriteFile(file, []byte(pprofOverlay), 0o644); err != nil {
		return "", err
	}
	overlay := filepath.Join(dir, "overlay-"+tag+".json")
	js, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(src, "zz_bench_pprof.go"): file}})
	if err != nil {
		return "", err
	}
	return overlay, os.WriteFile(overlay, js, 0o644)
}

// revision describes what a server label was built from.
func revision(ctx context.Context, root, name string) string {
	switch {
	case name == "go":
		return "working tree at " + command(ctx, "git", "-C", root, "describe", "--always", "--dirty")
	case strings.HasPrefix(name, "go@"):
		return "git " + command(ctx, "git", "-C", root, "rev-parse", "--short", strings.TrimPrefix(name, "go@"))
	case name == floorServer:
		return "bench/floor (the floor: one write(2) of one pre-encoded frame per recipient, no protocol), working tree at " + command(ctx, "git", "-C", root, "describe", "--always", "--dirty")
	case name == "node":
		return "bench/node-tutorial/index.js, socket.io " + nodeModuleVersion(root, "socket.io") + ", express " + nodeModuleVersion(root, "express")
	}
	return ""
}

func nodeModuleVersion(root, mod string) string {
	b, err := os.ReadFile(filepath.Join(root, "node_modules", mod, "package.json"))
	if err != nil {
		return "?"
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &pkg) != nil {
		return "?"
	}
	return pkg.Version
}

// floorServer is the label of the floor broadcaster (bench/floor): the
// least a server can do per delivery, run in the scenarios that measure CPU
// per delivery (floorScenarios) so that ours is also reported as a ratio to
// it.
const floorServer = "floor"

// floorScenarios are the scenarios the floor runs in; it skips the others
// (it has no polling, no limits, no sessions to hold idle).
var floorScenarios = map[string]bool{"cpu": true, "fanout": true}

// server is one running chat server under test.
type server struct {
	name     string
	cmd      *exec.Cmd
	port     int
	pprofURL string
	exited   chan error
}

func (s *server) url() string { return fmt.Sprintf("http://127.0.0.1:%d/socket.io/", s.port) }
func (s *server) pid() int    { return s.cmd.Process.Pid }

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts "go", "go@REV" or one of their variants (our binary,
// -log-level warn, then goArgs) or "node" (the tutorial's index.js, --quiet)
// on a free loopback port, with extraEnv added to its environment, and
// waits until it accepts connections.
func startServer(ctx context.Context, name, root string, bins map[string]string, goArgs []string, profiling bool, log io.Writer, extraEnv ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{name: name, port: port, exited: make(chan error, 1)}
	env := append(os.Environ(), extraEnv...)
	switch {
	case isGo(name):
		// -max-http-connections 1500: the scenarios' polling clients need
		// fewer, and the rest of the open-file limit (20 000 on the project's
		// machines) goes to sessions, so that the 18 000 idle WebSocket
		// clients fit (see fitFileLimit); a variant's own flags come after.
		args := append([]string{"-addr", "127.0.0.1:" + strconv.Itoa(port), "-log-level", "warn", "-max-http-connections", "1500"}, goArgs...)
		s.cmd = exec.Command(bins[baseOf(name)], args...)
		if profiling {
			pp, err := freePort()
			if err != nil {
				return nil, err
			}
			env = append(env, "BENCH_PPROF_ADDR=127.0.0.1:"+strconv.Itoa(pp))
			s.pprofURL = "http://127.0.0.1:" + strconv.Itoa(pp)
		}
	case name == floorServer:
		s.cmd = exec.Command(bins[floorServer], "-addr", "127.0.0.1:"+strconv.Itoa(port))
	case name == "node":
		s.cmd = exec.Command("node", "bench/node-tutorial/index.js", "--quiet")
		env = append(env, "PORT="+strconv.Itoa(port), "HOST=127.0.0.1")
	default:
		return nil, fmt.Errorf("unknown server %q (want go, go@REV, node or floor)", name)
	}
	s.cmd.Dir, s.cmd.Env = root, env
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := dialLoopback(port)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-s.exited:
			return nil, fmt.Errorf("%s server exited at start: %v", name, err)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s server did not listen within 20s", name)
		}
	}
	if s.pprofURL != "" {
		for time.Now().Before(deadline) {
			if c, err := net.DialTimeout("tcp", s.pprofURL[len("http://"):], time.Second); err == nil {
				c.Close()
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Let the process finish starting up (Node compiles lazily) before its
	// RSS at zero clients is sampled.
	time.Sleep(time.Second)
	return s, nil
}

// dialLoopback connects to a server's loopback port.
func dialLoopback(port int) (net.Conn, error) {
	return net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
}

// stop sends SIGTERM and waits up to 15 s, then kills.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}
