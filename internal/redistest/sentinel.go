package redistest

import (
	"context"
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
)

// MasterName is the name the sentinels of a Failover watch the primary under.
const MasterName = "mymaster"

// Failover is a primary with AOF, one replica of it and three sentinels watching them, all
// private to the test: a real Redis Sentinel deployment in which a primary can be killed.
type Failover struct {
	Primary, Replica *Server
	sentinels        []*sentinel
}

// StartFailover starts the deployment and stops it when the test ends. The sentinels call
// the primary down after one second without an answer, with a quorum of two.
func StartFailover(t testing.TB) *Failover {
	t.Helper()
	f := &Failover{Primary: StartWith(t, Options{AppendOnly: true}), Replica: StartWith(t, Options{AppendOnly: true})}
	ctx := context.Background()
	rc := f.Replica.Client(t)
	host, port, _ := net.SplitHostPort(f.Primary.Addr)
	if err := rc.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatalf("redistest: REPLICAOF: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(rc.Info(ctx, "replication").Val(), "master_link_status:up") {
		if time.Now().After(deadline) {
			t.Fatalf("redistest: the replica did not sync with the primary within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.sentinels = append(f.sentinels, startSentinel(t, bin, f.Primary.Addr))
	}
	// The sentinels find the replica through the primary's INFO; a failover needs them to.
	for _, s := range f.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr})
		for {
			replicas, err := sc.Replicas(ctx, MasterName).Result()
			if err == nil && len(replicas) > 0 {
				break
			}
			if time.Now().After(deadline.Add(20 * time.Second)) {
				_ = sc.Close()
				t.Fatalf("redistest: sentinel %s does not see the replica (%v)", s.addr, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = sc.Close()
	}
	return f
}

// SentinelAddrs are the sentinels' host:port addresses.
func (f *Failover) SentinelAddrs() []string {
	addrs := make([]string, len(f.sentinels))
	for i, s := range f.sentinels {
		addrs[i] = s.addr
	}
	return addrs
}

// URL is the deployment as a redis-sentinel:// URL, the form REDIS_URL takes.
func (f *Failover) URL() string {
	return "redis-sentinel://" + strings.Join(f.SentinelAddrs(), ",") + "?master=" + MasterName
}

// Client returns a client that follows the primary through the sentinels.
func (f *Failover) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: MasterName, SentinelAddrs: f.SentinelAddrs()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// WaitPrimary waits until every sentinel names addr as the primary.
func (f *Failover) WaitPrimary(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, s := range f.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr})
		for {
			got, err := sc.GetMasterAddrByName(context.Background(), MasterName).Result()
			if err == nil && len(got) == 2 && net.JoinHostPort(got[0], got[1]) == addr {
				break
			}
			if time.Now().After(deadline) {
				_ = sc.Close()
				t.Fatalf("redistest: sentinel %s names %v as the primary after %s, want %s (%v)", s.addr, got, timeout, addr, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = sc.Close()
	}
}

// Freeze stops the server's process (SIGSTOP) until Thaw: it answers nothing and reads
// nothing meanwhile, as a server stuck behind a network partition.
func (s *Server) Freeze(t testing.TB) { s.signalGroup(t, syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (s *Server) Thaw(t testing.TB) { s.signalGroup(t, syscall.SIGCONT) }

func (s *Server) signalGroup(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		t.Fatalf("redistest: signal %v to a stopped server", sig)
		return // testing.TB's Fatalf does not return, which staticcheck cannot see
	}
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
		t.Fatalf("redistest: signal %v: %v", sig, err)
	}
}

// sentinel is one `redis-server --sentinel` process.
type sentinel struct {
	addr string
	once sync.Once
	cmd  *exec.Cmd
	done chan struct{}
}

func startSentinel(t testing.TB, bin, primary string) *sentinel {
	t.Helper()
	dir, err := os.MkdirTemp("", "redistest-sentinel-")
	if err != nil {
		t.Fatalf("redistest: sentinel dir: %v", err)
	}
	t.Cleanup(func() { removeAll(dir) })
	host, port, _ := net.SplitHostPort(primary)
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		p, err := freePort()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		// Sentinel rewrites its configuration file as it learns the deployment, so each
		// gets its own. Timings are short so a test's failover takes seconds, not minutes.
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s %s %s 2\nsentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 10000\nsentinel parallel-syncs %s 1\n",
			p, dir, filepath.Join(dir, "sentinel.log"), MasterName, host, port, MasterName, MasterName, MasterName)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		s := &sentinel{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), done: make(chan struct{})}
		s.cmd = exec.Command(bin, conf, "--sentinel")
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("redistest: start sentinel: %v", err)
		}
		go func() { _ = s.cmd.Wait(); close(s.done) }()
		if lastErr = waitReady(s.addr, s.done); lastErr == nil {
			t.Cleanup(s.stop)
			return s
		}
		s.stop()
		lastErr = fmt.Errorf("%w (log: %s)", lastErr, tail(filepath.Join(dir, "sentinel.log")))
	}
	t.Fatalf("redistest: start sentinel: %v", lastErr)
	return nil
}

func (s *sentinel) stop() {
	s.once.Do(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	})
}
