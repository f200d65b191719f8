package webhooks_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/webhooks"
)

func TestReadTakesOnlyAValidLearnerFromAnUntrustedBody(t *testing.T) {
	for body, want := range map[string]webhooks.Delivery{
		`{"type":"COURSE_COMPLETION","user":{"id":"abc123","email":"a@b.c"}}`: {Learner: "id:abc123"},
		`{"user_id":"x9"}`:                                                {Learner: "id:x9"},
		`{"student":{"email":"Ann@Example.com"}}`:                         {Learner: "email:ann@example.com"},
		`{"user":{"id":"../../etc","email":"b@c.d"}}`:                     {Learner: "email:b@c.d"},
		`{"user":{"id":"UPPER"}}`:                                         {},
		`{"user":{"id":12345}}`:                                           {},
		`{"user":{"email":"not an address"}}`:                             {},
		`{"type":"PING","webhook_id":"wh1"}`:                              {Ping: true},
		`[{"user":{"id":"abc"}}]`:                                         {},
		`not json`:                                                        {},
		`{"user":{"id":"` + string(bytes.Repeat([]byte("a"), 65)) + `"}}`: {},
	} {
		if got := webhooks.Read([]byte(body)); got != want {
			t.Errorf("Read(%s) = %+v, want %+v", body, got, want)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newStore(t *testing.T) (*webhooks.Store, *clock, redis.UniversalClient) {
	rdb := redistest.Start(t).Client(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	conn, err := connection.NewStore(rdb, key, "")
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return webhooks.NewStore(rdb, conn, webhooks.StoreConfig{Debounce: time.Second, Now: c.now}), c, rdb
}

func TestTheQueueDeduplicatesDebouncesAndClaimsRepeatably(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	accept := func(digest, learner, want string) {
		t.Helper()
		got, err := s.Accept(ctx, digest, webhooks.Delivery{Learner: learner}, []byte(`{"x":1}`))
		if err != nil || got != want {
			t.Fatalf("Accept(%s, %s) = %q, %v; want %q", digest, learner, got, err, want)
		}
	}
	accept("a", "id:l1", webhooks.Queued)
	accept("a", "id:l1", webhooks.Duplicate) // Skilljar's retry of the same body
	c.add(900 * time.Millisecond)
	accept("b", "id:l1", webhooks.Queued) // a second event for l1 moves its debounce on
	accept("c", "id:l2", webhooks.Queued)
	accept("d", "", webhooks.Unknown)

	c.add(500 * time.Millisecond) // l1's first delivery is 1.4 s old, its last 0.5 s
	if ids, err := s.Claim(ctx, "r:0", 10); err != nil || len(ids) != 0 {
		t.Fatalf("claimed %v (%v) before any debounce was over", ids, err)
	}
	c.add(600 * time.Millisecond)
	ids, err := s.Claim(ctx, "r:0", 10)
	if err != nil || len(ids) != 2 || ids[0] != "id:l1" || ids[1] != "id:l2" {
		t.Fatalf("claim = %v, %v; want l1 then l2, once each", ids, err)
	}
	accept("e", "id:l1", webhooks.Queued) // named again after the claim: queued again
	again, _ := s.Claim(ctx, "r:0", 10)
	if len(again) != 2 || again[0] != "id:l1" {
		t.Fatalf("a repeated claim returned %v, want the same two learners", again)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Pending != 1 || st.Deliveries[webhooks.Duplicate] != 1 || st.Deliveries[webhooks.Unknown] != 1 ||
		len(st.UnknownBodies) != 1 || st.OldestPending == nil || !st.OldestPending.Equal(c.now()) {
		t.Fatalf("stats %+v (%v)", st, err)
	}
	c.add(2 * time.Second)
	if next, _ := s.Claim(ctx, "r:1", 10); len(next) != 1 || next[0] != "id:l1" {
		t.Fatalf("the next page claimed %v, want l1 again", next)
	}
}

func TestCredentialsAreSealedAndStable(t *testing.T) {
	s, _, rdb := newStore(t)
	ctx := context.Background()
	if _, err := s.Credentials(ctx); err != webhooks.ErrNoCredentials {
		t.Fatalf("credentials before install: %v", err)
	}
	first, err := s.EnsureCredentials(ctx)
	if err != nil || len(first.Password) < 40 {
		t.Fatalf("EnsureCredentials = %+v, %v", first, err)
	}
	if raw, err := rdb.Get(ctx, "bf:webhooks:credentials").Bytes(); err != nil || bytes.Contains(raw, []byte(first.Password)) {
		t.Fatalf("the stored credentials are not sealed (%v)", err)
	}
	second, err := s.EnsureCredentials(ctx)
	if err != nil || second != first {
		t.Fatalf("a second install changed the credentials: %+v → %+v", first, second)
	}
	if err := s.DeleteCredentials(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Credentials(ctx); err != webhooks.ErrNoCredentials {
		t.Fatalf("credentials after delete: %v", err)
	}
}
