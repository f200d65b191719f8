package connection

import (
	"context"
	"time"
)

// Salesforce expires the refresh tokens of apps installed from partners after 30 days
// without use, from May 2026 ("Secure Your Connected Apps and External Client Apps",
// reference/salesforce.md §8.9). An org's own policy may be shorter, so both are settings.
const (
	// DefaultIdleLimit is how long an unused refresh token lives.
	DefaultIdleLimit = 30 * 24 * time.Hour
	// DefaultIdleRefresh is how long a grant may sit unused before the engine refreshes it:
	// well inside the limit, so a missed check or two cannot let it lapse.
	DefaultIdleRefresh = 7 * 24 * time.Hour
)

// LastUse is when the refresh token was last issued or presented: the last refresh, else
// the connect. Nil when nothing is connected.
func (st Status) LastUse() *time.Time {
	if st.LastRefresh != nil {
		return st.LastRefresh
	}
	return st.ConnectedAt
}

// LapsesAt is when an unused grant would expire under limit; nil when nothing is connected.
func (st Status) LapsesAt(limit time.Duration) *time.Time {
	used := st.LastUse()
	if used == nil || st.State != Connected {
		return nil
	}
	at := used.Add(limit)
	return &at
}

// RefreshIdle refreshes the grant when its refresh token has gone unused for after, so
// Salesforce does not expire it while no run needs Salesforce. It reports whether it
// refreshed; a grant that has lapsed already comes back as needs_reauth, with its error.
func (s *Source) RefreshIdle(ctx context.Context, after time.Duration) (bool, error) {
	st, err := s.store.Status(ctx)
	if err != nil {
		return false, err
	}
	used := st.LastUse()
	if st.State != Connected || used == nil || s.cfg.Now().Sub(*used) < after {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, _, err := s.store.Grant(ctx)
	if err != nil {
		return false, authErr(err)
	}
	// Presenting the stored grant's own access token makes refresh exchange it, unless
	// another process replaced the grant meanwhile, which is a use too.
	if _, err := s.refresh(ctx, creds(g)); err != nil {
		return false, err
	}
	return true, nil
}

// KeepAlive calls RefreshIdle every check until ctx ends, logging what it did.
func (s *Source) KeepAlive(ctx context.Context, check, after time.Duration) {
	t := time.NewTicker(check)
	defer t.Stop()
	for {
		switch refreshed, err := s.RefreshIdle(ctx, after); {
		case err != nil:
			s.cfg.Logger.Warn().Err(err).Msg("refreshing the idle Salesforce grant failed")
		case refreshed:
			s.cfg.Logger.Info().Dur("unused_for_at_least", after).Msg("refreshed the idle Salesforce grant before Salesforce expires it")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
