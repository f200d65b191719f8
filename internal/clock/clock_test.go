package clock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
)

func TestSleepReturnsTheContextsErrorWhenItEndsFirst(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := clock.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context: %v", err)
	}
	if err := clock.Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("a zero Sleep on a cancelled context: %v", err)
	}
	if err := clock.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("a Sleep that runs out: %v", err)
	}
}

func TestManualMovesOnlyWhenAdvanced(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := clock.NewManual(start)
	if !c.Now().Equal(start) {
		t.Fatalf("Now %v, want %v", c.Now(), start)
	}
	c.Advance(90 * time.Second)
	if got := c.Now().Sub(start); got != 90*time.Second {
		t.Fatalf("advanced by %v, want 90s", got)
	}
}
