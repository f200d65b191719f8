// Package redistest starts a private redis-server on a free port for tests, so no test
// ever touches a shared Redis and faults such as a restart can be tested for real.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// IgnoreRedial is the goleak option for packages whose tests stop a server under live
// clients. After a pool's dials fail PoolSize times, go-redis redials from a goroutine that
// sleeps a second between tries and sees the pool's Close only after that sleep, so it
// outlives the test by up to a second; nothing can stop it sooner.
var IgnoreRedial = goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial")

// Binary is the redis-server executable the helper starts. Tests can override it with the
// REDIS_SERVER environment variable.
const Binary = "redis-server"

// InstallHint says exactly what to install when redis-server is missing.
const InstallHint = "redis-server not found on PATH: install it with `apt-get install -y redis-server` " +
	"(Debian/Ubuntu) or `brew install redis` (macOS), or set REDIS_SERVER to its path; " +
	"`make test` installs it automatically when run as root"

// Server is one private redis-server process.
type Server struct {
	Addr string
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Options tune the server; the zero value is a non-persistent server like a CI cache.
type Options struct {
	// AppendOnly turns AOF persistence on, for tests that restart Redis and expect data back.
	AppendOnly bool
}

// Start launches a redis-server for the test and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		t.Fatalf("redistest: data dir: %v", err)
	}
	s := &Server{dir: dir}
	// Removed after the server and its forked children (AOF rewrites) are gone: a
	// child still writing would make a removal during its last breath fail.
	t.Cleanup(func() { removeAll(dir) })
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.launch(bin, opts); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

func binary() (string, error) {
	if b := os.Getenv("REDIS_SERVER"); b != "" {
		return b, nil
	}
	path, err := exec.LookPath(Binary)
	if err != nil {
		return "", errors.New(InstallHint)
	}
	return path, nil
}

func (s *Server) launch(bin string, opts Options) error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", map[bool]string{true: "yes", false: "no"}[opts.AppendOnly],
		"--maxmemory-policy", "noeviction",
		"--protected-mode", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}
	cmd := exec.Command(bin, args...)
	// Its own process group, so Stop also kills the children Redis forks to rewrite files.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := waitReady(s.Addr, done); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%w (log: %s)", err, tail(filepath.Join(s.dir, "redis.log")))
	}
	return nil
}

func waitReady(addr string, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server exited during start-up")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("redis-server did not answer PING within 10s")
}

// Client returns a go-redis client for the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// URL is the server's address as a redis:// URL, the form REDIS_URL takes.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Stop terminates the server and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// removeAll removes a data dir, retrying briefly while a killed child of the server may
// still be closing files in it.
func removeAll(dir string) {
	for attempt := 0; attempt < 50; attempt++ {
		if err := os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart stops the server and starts it again on the same port and data directory.
func (s *Server) Restart(t testing.TB, opts Options) {
	t.Helper()
	s.Stop()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ {
		if lastErr = s.launch(bin, opts); lastErr == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the old socket may linger briefly
	}
	t.Fatalf("redistest: restart redis-server: %v", lastErr)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "no log"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}
