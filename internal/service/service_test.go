package service_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/service"
)

func TestWorkersWarnWhenRedisCanEvictOrLoseTheCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if err := service.CheckRedis(ctx, rdb, zerolog.New(&logs)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"maxmemory-policy noeviction", "appendonly yes"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no warning saying %q in:\n%s", want, logs.String())
		}
	}

	for k, v := range map[string]string{"maxmemory-policy": "noeviction", "appendonly": "yes"} {
		if err := rdb.ConfigSet(ctx, k, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	logs.Reset()
	if err := service.CheckRedis(ctx, rdb, zerolog.New(&logs)); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Fatalf("a durable, non-evicting Redis drew warnings:\n%s", logs.String())
	}
}

func TestCheckRedisSaysWhenRedisDoesNotAnswer(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	srv.Stop()
	err := service.CheckRedis(context.Background(), rdb, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("got %v; want an error naming REDIS_URL", err)
	}
}
