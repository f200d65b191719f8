package logging_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sjbackfill/backfill/internal/logging"
)

// go-redis logs a failed dial through its package logger; routed, it is a JSON line.
func TestGoRedisMessagesBecomeJSONLines(t *testing.T) {
	var buf logging.Buffer
	log, err := logging.New(&buf, "info")
	if err != nil {
		t.Fatal(err)
	}
	redis.SetLogger(logging.Redis{L: log})
	// A port nothing listens on: the listener is closed before the client dials.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
	out := strings.TrimSpace(buf.String())
	if out == "" {
		t.Fatal("go-redis logged nothing: the test proves nothing")
	}
	for _, line := range strings.Split(out, "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if rec["component"] != "redis" || rec["level"] != "warn" || !strings.Contains(rec["message"].(string), "failed to dial") {
			t.Fatalf("line %v: want a redis warning about the dial", rec)
		}
	}
}
