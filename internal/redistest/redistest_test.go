package redistest_test

import (
	"context"
	"testing"

	"github.com/sjbackfill/backfill/internal/redistest"
)

func TestStartGivesAPrivateServerThatKeepsDataAcrossRestartWithAOF(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	if srv.Addr == "127.0.0.1:6379" {
		t.Fatalf("helper must never use the shared port, got %s", srv.Addr)
	}
	c := srv.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t, redistest.Options{AppendOnly: true})
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart got %q, %v; want v", got, err)
	}
}

func TestTwoServersAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr == b.Addr {
		t.Fatal("two servers share an address")
	}
	if err := a.Client(t).Set(ctx, "only-a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.Client(t).Exists(ctx, "only-a").Result(); n != 0 {
		t.Fatal("a key written to one server is visible on the other")
	}
}
