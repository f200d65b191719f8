package skilljarsim_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// A fixed window forgets its calls when the next span starts; a sliding one remembers them
// for a whole span after each call. Both count the minute and the hour alike.
func TestFixedWindowsResetAtEachSpanWhereSlidingOnesRemember(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  skilljarsim.Config
	}{
		{"minute", skilljarsim.Config{Users: 10, PerMinute: 3, TimeScale: 60}}, // a "minute" is 1 s
		{"hour", skilljarsim.Config{Users: 10, PerHour: 3, TimeScale: 3600}},   // an "hour" is 1 s
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			statuses := map[string][]int{}
			// Both simulators share a clock that starts 700 ms into a span.
			now := clock.NewManual(time.Now().Truncate(time.Second).Add(700 * time.Millisecond))
			tc.cfg.Now = now.Now
			fixed, sliding := tc.cfg, tc.cfg
			fixed.ThrottleWindow, sliding.ThrottleWindow = skilljarsim.ThrottleFixed, skilljarsim.ThrottleSliding
			clients := map[string]*apiClient{
				"fixed":   newClient(t, start(t, fixed)),
				"sliding": newClient(t, start(t, sliding)),
			}
			// Three calls late in one span, three more just after the next one starts.
			for range 3 {
				for name, c := range clients {
					resp, _ := c.get("/v1/ping")
					statuses[name] = append(statuses[name], resp.StatusCode)
				}
			}
			now.Advance(350 * time.Millisecond)
			for range 3 {
				for name, c := range clients {
					resp, _ := c.get("/v1/ping")
					statuses[name] = append(statuses[name], resp.StatusCode)
				}
			}
			ok, tooMany := http.StatusOK, http.StatusTooManyRequests
			if got, want := statuses["fixed"], []int{ok, ok, ok, ok, ok, ok}; !slices.Equal(got, want) {
				t.Errorf("fixed window: statuses %v, want %v", got, want)
			}
			if got, want := statuses["sliding"], []int{ok, ok, ok, tooMany, tooMany, tooMany}; !slices.Equal(got, want) {
				t.Errorf("sliding window: statuses %v, want %v", got, want)
			}
			// A full fixed window says how long until the next span starts.
			resp, _ := clients["fixed"].get("/v1/ping")
			if resp.StatusCode != tooMany || resp.Header.Get("Retry-After") != "1" {
				t.Errorf("fourth call in a fixed span: %d Retry-After %q, want 429 with 1", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		})
	}
}

func TestAnUnknownThrottleWindowIsRefused(t *testing.T) {
	_, err := skilljarsim.Start(skilljarsim.Config{ThrottleWindow: "leaky"}, "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), `ThrottleWindow must be "sliding" or "fixed", got "leaky"`) {
		t.Fatalf("Start with an unknown window = %v", err)
	}
}
