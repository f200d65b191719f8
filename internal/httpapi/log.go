package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/sjbackfill/backfill/internal/logging"
)

// requestInfo travels with a request so the log line can carry the handler's error.
type requestInfo struct {
	id   string
	code string // the error answer's code
	err  error
}

type requestInfoKey struct{}

func requestInfoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// A caller's X-Request-Id is kept only when it is short and plain, so it cannot forge log
// structure.
var callerRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// logRequests writes one log line per request: method, path, status, duration and request
// id. Query strings (the OAuth callback's code), headers and bodies are never logged.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: r.Header.Get("X-Request-Id")}
		if !callerRequestID.MatchString(info.id) {
			info.id = newRequestID()
		}
		w.Header().Set("X-Request-Id", info.id)
		rec := &recorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				info.err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
				if rec.status == 0 {
					s.fail(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)), info.err)
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			ev := s.d.Logger.Info()
			if status >= 500 {
				ev = s.d.Logger.Error()
			}
			ev.Str("method", r.Method).Str("path", r.URL.Path).Int("status", status).
				Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
				Str("request_id", info.id).Int64("bytes", rec.bytes)
			if info.code != "" {
				ev = ev.Str("error_code", info.code)
			}
			if info.err != nil && status >= 500 {
				ev = ev.Err(info.err)
			}
			ev.Msg("http request")
		}()
		ctx := logging.WithRequestID(context.WithValue(r.Context(), requestInfoKey{}, info), info.id)
		next.ServeHTTP(rec, r.WithContext(ctx))
	})
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// recorder notes the status and size of the answer for the log line.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's Flush and deadlines, for
// mounted handlers that stream.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
