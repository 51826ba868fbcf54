// Package rediscluster starts a throw-away Redis Cluster of three primaries
// on loopback for the tests: redis-server --cluster-enabled yes on three
// free ports (each with its bus port, +10000, free too), then
// redis-cli --cluster create, then waits until every node reports
// cluster_state:ok.
package rediscluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cluster is a running cluster.
type Cluster struct {
	Addrs []string // host:port of each primary
	dir   string
	procs []*exec.Cmd
}

// URLs is the -redis value naming the cluster: its nodes' URLs, comma-separated.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Addrs))
	for i, a := range c.Addrs {
		urls[i] = "redis://" + a
	}
	return strings.Join(urls, ",")
}

// Available reports whether redis-server and redis-cli are installed.
func Available() error {
	for _, b := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(b); err != nil {
			return err
		}
	}
	return nil
}

// Start starts a cluster of three primaries whose files live under dir,
// ready within timeout.
func Start(dir string, timeout time.Duration) (*Cluster, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := &Cluster{dir: dir}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	for _, p := range ports {
		c.Addrs = append(c.Addrs, "127.0.0.1:"+strconv.Itoa(p))
		c.procs = append(c.procs, nil)
		if err := c.startNode(len(c.procs) - 1); err != nil {
			c.Stop()
			return nil, err
		}
	}
	for _, a := range c.Addrs {
		if err := waitCmd(ctx, a, "PING", "PONG"); err != nil {
			c.Stop()
			return nil, err
		}
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	for _, a := range c.Addrs {
		if err := waitCmd(ctx, a, "CLUSTER INFO", "cluster_state:ok"); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) startNode(i int) error {
	_, ps, _ := strings.Cut(c.Addrs[i], ":")
	cmd := exec.Command("redis-server", "--port", ps, "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes-"+ps+".conf",
		"--cluster-node-timeout", "2000", "--dir", c.dir, "--save", "", "--appendonly", "no",
		"--logfile", filepath.Join(c.dir, "redis-"+ps+".log"))
	// A test binary that panics skips TestMain's Stop: the nodes then go
	// with it instead of staying on their ports.
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return err
	}
	c.procs[i] = cmd
	return nil
}

// Stop kills the nodes and waits for them.
func (c *Cluster) Stop() {
	for i, p := range c.procs {
		if p != nil {
			_ = p.Process.Kill()
			_ = p.Wait()
			c.procs[i] = nil
		}
	}
}

// Restart starts the nodes again after Stop, on the same ports with the
// same cluster configuration (nodes-PORT.conf), and waits until the
// cluster is ok again.
func (c *Cluster) Restart(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i := range c.Addrs {
		if c.procs[i] == nil {
			if err := c.startNode(i); err != nil {
				return err
			}
		}
	}
	for _, a := range c.Addrs {
		if err := waitCmd(ctx, a, "CLUSTER INFO", "cluster_state:ok"); err != nil {
			return err
		}
	}
	return nil
}

// waitCmd sends cmd (inline protocol) to addr until the answer contains want.
func waitCmd(ctx context.Context, addr, cmd, want string) error {
	var last error
	for {
		ans, err := inline(addr, cmd)
		if err == nil && strings.Contains(ans, want) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%s answered %q", cmd, ans)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis %s: %q not seen: %w", addr, want, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func inline(addr, cmd string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(line, "$") {
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf), nil
	}
	return line, nil
}

// freePorts finds n ports free with their cluster bus port (+10000).
func freePorts(n int) ([]int, error) {
	var out []int
	for tries := 0; len(out) < n && tries < 200; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		if p+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		l.Close()
		if err != nil {
			continue
		}
		bus.Close()
		out = append(out, p)
	}
	if len(out) < n {
		return nil, errors.New("no free ports for a Redis Cluster")
	}
	return out, nil
}

var (
	shared    *Cluster
	sharedErr error
	sharedDir string
	once      sync.Once
)

// Shared returns the package's cluster, started at the first call and
// stopped by StopShared (call it from TestMain). Without redis-server the
// test is skipped, or fails under CI=true.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("Redis Cluster tests need redis-server and redis-cli: %v", err)
		}
		tb.Skipf("no redis-server: %v", err)
	}
	once.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "rediscluster-")
		if sharedErr == nil {
			shared, sharedErr = Start(sharedDir, 30*time.Second)
		}
	})
	if sharedErr != nil {
		tb.Fatalf("starting a Redis Cluster: %v", sharedErr)
	}
	return shared
}

// StopShared stops the package's cluster, if it was started.
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
	if sharedDir != "" {
		_ = os.RemoveAll(sharedDir)
	}
}
