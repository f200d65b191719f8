// Package clock gives code that waits the time it waits on: a sleep that ends with its
// context, and a manual clock tests move past TTLs instead of waiting them out.
package clock

import (
	"context"
	"sync"
	"time"
)

// Sleep waits d, or less when ctx ends first; it returns ctx's error then and nil otherwise.
// A d of zero or less returns at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Manual is a clock that moves only when Advance is called. Its Now fits a config's
// `Now func() time.Time` field; it is safe for concurrent use.
type Manual struct {
	mu  sync.Mutex
	now time.Time
}

// NewManual returns a clock standing at start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

// Now is the clock's time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Advance moves the clock forward by d.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
}
