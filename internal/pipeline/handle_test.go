package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/sjbackfill/backfill/internal/skilljar"
)

func TestARateLimitedSliceIsRetriedLaterAndKeepsItsCause(t *testing.T) {
	cause := &skilljar.RateLimitedError{URL: "https://api.skilljar.com/v1/users", Responses: 20}
	err := (&slice{}).handle(context.Background(), fmt.Errorf("read learners overview: %w", cause))
	var rl *skilljar.RateLimitedError
	if !errors.Is(err, ErrRetryLater) || !errors.As(err, &rl) || rl != cause {
		t.Fatalf("handle = %v; want an error that is ErrRetryLater and still carries the *RateLimitedError", err)
	}
}
