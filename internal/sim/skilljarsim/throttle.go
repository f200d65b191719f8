package skilljarsim

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Throttle windows (Config.ThrottleWindow).
const (
	// ThrottleSliding is Django REST framework's SimpleRateThrottle: a request is refused
	// when the span ending at its arrival already holds the limit
	// (https://www.django-rest-framework.org/api-guide/throttling/, the history list in
	// rest_framework/throttling.py). Skilljar's v1 API is a DRF API, so this is the default.
	ThrottleSliding = "sliding"
	// ThrottleFixed counts requests in consecutive spans starting at whole multiples of the
	// span since the Unix epoch and forgets them when the next span starts, as a counter keyed
	// by time/span does (Hammer.Redis.FixWindow,
	// https://hexdocs.pm/hammer_backend_redis/Hammer.Redis.FixWindow.html). Skilljar
	// documents neither, so the simulator offers both.
	ThrottleFixed = "fixed"
)

// throttle applies the per-key limits, one window each. As in DRF's check_throttles, every
// window that admits a request records it even when another window refuses it, so calls
// refused by the minute limit still spend the hourly budget; a refused window records
// nothing.
type throttle struct {
	mu      sync.Mutex
	windows []*window
}

func newThrottle(cfg Config) *throttle {
	t := &throttle{}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / cfg.TimeScale) }
	fixed := cfg.ThrottleWindow == ThrottleFixed
	if cfg.PerMinute > 0 {
		t.windows = append(t.windows, newWindow(cfg.PerMinute, scale(time.Minute), fixed))
	}
	if cfg.PerHour > 0 {
		t.windows = append(t.windows, newWindow(cfg.PerHour, scale(time.Hour), fixed))
	}
	return t
}

// checkThrottleWindow validates Config.ThrottleWindow ("" is the default, sliding).
func checkThrottleWindow(w string) error {
	if w != "" && w != ThrottleSliding && w != ThrottleFixed {
		return fmt.Errorf("ThrottleWindow must be %q or %q, got %q", ThrottleSliding, ThrottleFixed, w)
	}
	return nil
}

// check admits a request at now, or returns the 429 to send.
func (t *throttle) check(now time.Time) (response, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	refused := false
	for _, w := range t.windows {
		if d, ok := w.allow(now); !ok {
			refused = true
			wait = max(wait, d)
		}
	}
	if !refused {
		return response{}, true
	}
	return throttled(int(math.Ceil(wait.Seconds()))), false
}

// throttled is DRF's 429: the wait in whole seconds in Retry-After and in the message.
func throttled(seconds int) response {
	seconds = max(1, seconds)
	unit := "seconds"
	if seconds == 1 {
		unit = "second"
	}
	resp := detail(http.StatusTooManyRequests, fmt.Sprintf("Request was throttled. Expected available in %d %s.", seconds, unit))
	resp.header = map[string]string{"Retry-After": strconv.Itoa(seconds)}
	return resp
}

// window is one rate: at most limit requests in any span (sliding) or in each epoch-aligned
// span (fixed). A sliding window keeps a ring of the admitted request times, oldest at
// head; a fixed one counts the requests of the current span.
type window struct {
	limit int
	span  time.Duration
	fixed bool

	hits []time.Time
	head int
	n    int

	current int64 // the fixed window's span number: Unix time / span
}

func newWindow(limit int, span time.Duration, fixed bool) *window {
	w := &window{limit: limit, span: span, fixed: fixed}
	if !fixed {
		w.hits = make([]time.Time, limit)
	}
	return w
}

// allow records a request at now if the window has room; otherwise it says how long until
// there is room again.
func (w *window) allow(now time.Time) (time.Duration, bool) {
	if w.fixed {
		return w.allowFixed(now)
	}
	for w.n > 0 && !w.hits[w.head].After(now.Add(-w.span)) {
		w.head = (w.head + 1) % w.limit
		w.n--
	}
	if w.n == w.limit {
		return w.span - now.Sub(w.hits[w.head]), false
	}
	w.hits[(w.head+w.n)%w.limit] = now
	w.n++
	return 0, true
}

func (w *window) allowFixed(now time.Time) (time.Duration, bool) {
	if k := now.UnixNano() / int64(w.span); k != w.current {
		w.current, w.n = k, 0
	}
	if w.n == w.limit {
		return time.Duration((w.current+1)*int64(w.span) - now.UnixNano()), false
	}
	w.n++
	return 0, true
}
