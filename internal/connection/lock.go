package connection

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of the refresh lock, shared by the token source and Disconnect.
const (
	DefaultLockTTL  = 30 * time.Second
	DefaultLockWait = 60 * time.Second
)

var (
	unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
	extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)
)

// lock takes the cluster-wide lock that serialises every change to a live grant, waiting up
// to wait while another process holds it. The lock expires ttl after its holder stops
// extending it, so a crashed holder blocks the others for at most ttl; a live holder extends
// it for as long as it works, because a refresh whose lock lapsed before its rotated token
// was saved would let a second process present the old token and revoke the grant.
func (s *Store) lock(ctx context.Context, ttl, wait time.Duration) (unlock func(), err error) {
	key := s.key + ":refresh-lock"
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	token := hex.EncodeToString(b)
	deadline := time.Now().Add(wait)
	pause := 5 * time.Millisecond
	for {
		ok, err := s.rdb.SetNX(ctx, key, token, ttl).Result()
		if err != nil {
			return nil, fmt.Errorf("take the token refresh lock: %w", err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("another process has held the token refresh lock for over %s", wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(pause*2, 100*time.Millisecond)
	}

	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(max(ttl/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				c, cancel := context.WithTimeout(context.Background(), ttl/3)
				_ = extendScript.Run(c, s.rdb, []string{key}, token, ttl.Milliseconds()).Err()
				cancel()
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
		// A fresh context: the caller's may be done, and a stuck lock would block every
		// refresh for ttl.
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = unlockScript.Run(c, s.rdb, []string{key}, token).Err()
	}, nil
}
