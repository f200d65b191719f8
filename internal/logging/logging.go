// Package logging builds the process's zerolog logger and bridges asynq's and go-redis's
// loggers to it.
package logging

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// New returns a JSON logger at the named level ("debug", "info", "warn", "error").
func New(w io.Writer, level string) (zerolog.Logger, error) {
	if w == nil {
		w = os.Stderr
	}
	lvl := zerolog.InfoLevel
	if level != "" {
		var err error
		if lvl, err = zerolog.ParseLevel(strings.ToLower(level)); err != nil || lvl == zerolog.NoLevel {
			return zerolog.Nop(), fmt.Errorf("LOG_LEVEL: %q is not a level; use debug, info, warn or error", level)
		}
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the id the request's log line has, so a handler that
// hides an error's cause from the client can log the cause under the same id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the id WithRequestID put in ctx, or "" when there is none.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Asynq adapts a zerolog logger to asynq's Logger interface, so the queue's own messages
// land in the same JSON stream with a component field.
type Asynq struct{ L zerolog.Logger }

func (a Asynq) Debug(args ...any) { a.L.Debug().Str("component", "asynq").Msg(fmt.Sprint(args...)) }
func (a Asynq) Info(args ...any)  { a.L.Info().Str("component", "asynq").Msg(fmt.Sprint(args...)) }
func (a Asynq) Warn(args ...any)  { a.L.Warn().Str("component", "asynq").Msg(fmt.Sprint(args...)) }
func (a Asynq) Error(args ...any) { a.L.Error().Str("component", "asynq").Msg(fmt.Sprint(args...)) }
func (a Asynq) Fatal(args ...any) { a.L.Fatal().Str("component", "asynq").Msg(fmt.Sprint(args...)) }

// Redis adapts a zerolog logger to go-redis's logger (install it with redis.SetLogger):
// go-redis otherwise prints its messages (a failed dial, a pool problem) as plain text
// among the JSON lines. They are problems, so they log as warnings.
type Redis struct{ L zerolog.Logger }

// Printf logs one go-redis message.
func (r Redis) Printf(_ context.Context, format string, v ...any) {
	r.L.Warn().Str("component", "redis").Msg(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}

// Buffer collects log output from concurrent writers, for tests and tools that read back
// what was logged (to check, say, that no secret ever is).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
