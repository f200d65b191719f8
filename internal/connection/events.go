package connection

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Kinds of connection events.
const (
	EventConnected      = "connected"
	EventConnectFailed  = "connect_failed"
	EventTokenRefreshed = "token_refreshed"
	EventRefreshFailed  = "refresh_failed" // transient: the next refresh may work
	EventNeedsReauth    = "needs_reauth"
	EventDisconnected   = "disconnected"
)

// MaxEvents is how many connection events the log keeps; older ones are dropped.
const MaxEvents = 500

// Event is one entry of the connection's activity log. Messages never hold a secret.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

func (s *Store) eventsKey() string { return s.key + ":events" }

// AddEvent appends an event to the connection's log, dropping the oldest beyond MaxEvents.
func (s *Store) AddEvent(ctx context.Context, kind, message string) error {
	raw, err := json.Marshal(Event{At: time.Now().UTC(), Kind: kind, Message: message})
	if err != nil {
		return fmt.Errorf("encode connection event: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, s.eventsKey(), raw)
		p.LTrim(ctx, s.eventsKey(), 0, MaxEvents-1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("save connection event: %w", err)
	}
	return nil
}

// Events returns up to limit events, newest first; limit <= 0 means all that are kept.
func (s *Store) Events(ctx context.Context, limit int) ([]Event, error) {
	if limit <= 0 || limit > MaxEvents {
		limit = MaxEvents
	}
	raws, err := s.rdb.LRange(ctx, s.eventsKey(), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("read connection events: %w", err)
	}
	events := make([]Event, 0, len(raws))
	for _, raw := range raws {
		var e Event
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, fmt.Errorf("decode connection event: %w", err)
		}
		events = append(events, e)
	}
	return events, nil
}

// EventRecorder returns a function that adds events to the log, for SourceConfig.OnEvent, so
// worker processes feed the same log the connect flow writes. Events are advisory: one that
// cannot be saved is logged and dropped rather than failing the call that caused it.
func (s *Store) EventRecorder(log zerolog.Logger) func(ctx context.Context, kind, message string) {
	return func(ctx context.Context, kind, message string) {
		if err := s.AddEvent(ctx, kind, message); err != nil {
			log.Warn().Err(err).Str("event", kind).Msg("connection event not saved")
		}
	}
}
