package skilljarsim

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// throttle models Django REST framework's SimpleRateThrottle, one per window: a sliding
// history of request times per key. As in DRF's check_throttles, every window that admits a
// request records it even when another window refuses it, so calls refused by the minute
// limit still spend the hourly budget; a refused window records nothing.
type throttle struct {
	mu      sync.Mutex
	windows []*window
}

func newThrottle(cfg Config) *throttle {
	t := &throttle{}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / cfg.TimeScale) }
	if cfg.PerMinute > 0 {
		t.windows = append(t.windows, newWindow(cfg.PerMinute, scale(time.Minute)))
	}
	if cfg.PerHour > 0 {
		t.windows = append(t.windows, newWindow(cfg.PerHour, scale(time.Hour)))
	}
	return t
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

// window is one rate: at most limit requests in any span. hits is a ring of the admitted
// request times, oldest at head.
type window struct {
	limit int
	span  time.Duration
	hits  []time.Time
	head  int
	n     int
}

func newWindow(limit int, span time.Duration) *window {
	return &window{limit: limit, span: span, hits: make([]time.Time, limit)}
}

// allow records a request at now if the window has room; otherwise it says how long until
// the oldest recorded request leaves the window.
func (w *window) allow(now time.Time) (time.Duration, bool) {
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
