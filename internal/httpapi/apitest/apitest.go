// Package apitest assembles the real HTTP API for tests on the stacktest stack: the settings
// store and the server on a 127.0.0.1 listener.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/doctor"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/stacktest"
)

// Token is the API token every test server accepts.
const Token = "test-token-0123456789abcdef"

// Options shape one environment.
type Options struct {
	// Users sizes the simulated Skilljar org. Defaults to 40.
	Users int
	// Mounts, when set, may add the extension handlers (OAuth, Page, ...) to the deps.
	Mounts func(d *httpapi.Deps)
	// NoConnection leaves Deps.Connection unset, as on a server without BACKFILL_SECRET_KEY.
	NoConnection bool
	// Salesforce configures the simulated org (its profiles, say).
	Salesforce salesforcesim.Config
	// Now is the run store's clock; time.Now when nil.
	Now func() time.Time
}

// Env is one running API with everything behind it: the stacktest stack, the settings
// store, a queue inspector and the server.
type Env struct {
	*stacktest.Stack
	Settings  *settings.Store
	Inspector *asynq.Inspector
	// Doctor serves /v1/doctor and gates every start the API makes.
	Doctor *doctor.Doctor
	Server *httptest.Server
	// Log holds every line the server logged.
	Log *logging.Buffer
}

// StoreConnection serves the API's Connection from the connection store, disconnecting by
// deleting the grant.
type StoreConnection struct{ *connection.Store }

// Disconnect forgets the grant.
func (c StoreConnection) Disconnect(ctx context.Context) error { return c.Delete(ctx) }

// Start builds the environment; everything stops when the test ends.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	if o.Users == 0 {
		o.Users = 40
	}
	e := &Env{Log: &logging.Buffer{}}
	e.Stack = stacktest.Start(t, stacktest.Options{
		Skilljar: skilljarsim.Config{Seed: 11, Users: o.Users, Courses: 6}, Salesforce: o.Salesforce, Log: e.Log, Now: o.Now,
	})
	e.Inspector = asynq.NewInspector(asynq.RedisClientOpt{Addr: e.Redis.Addr})
	t.Cleanup(func() { _ = e.Inspector.Close() })
	e.Settings = settings.New(e.RDB, settings.Config{Domains: e.Source, Objects: pipeline.Objects()})

	e.Doctor = &doctor.Doctor{Skilljar: e.Source, Salesforce: e.Sink, Mapping: e.Engine.Mapping}
	d := httpapi.Deps{Runs: doctor.Gated{Engine: e.Engine, Doctor: e.Doctor}, Ledger: e.Store, Settings: e.Settings,
		Redis: e.RDB, Doctor: e.Doctor, Logger: e.Logger}
	if !o.NoConnection {
		d.Connection = StoreConnection{e.Connection}
		e.Doctor.Connection = e.Connection
	}
	if o.Mounts != nil {
		o.Mounts(&d)
	}
	srv, err := httpapi.New(httpapi.Config{Token: Token}, d)
	if err != nil {
		t.Fatal(err)
	}
	e.Server = httptest.NewServer(srv)
	t.Cleanup(e.Server.Close)
	return e
}

// Enqueued counts the tasks on every queue, in any state: what the API has put to work.
func (e *Env) Enqueued(t testing.TB) int {
	t.Helper()
	queues, err := e.Inspector.Queues()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, q := range queues {
		info, err := e.Inspector.GetQueueInfo(q)
		if err != nil {
			t.Fatal(err)
		}
		n += info.Size + info.Completed
	}
	return n
}

// Response is an answer read whole.
type Response struct {
	*http.Response
	Body []byte
}

// JSON decodes the body into v, failing the test when it is not JSON.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", r.Request.Method, r.Request.URL.Path, r.Body, err)
	}
}

// Error decodes an error answer.
func (r *Response) Error(t testing.TB) httpapi.ErrorBody {
	t.Helper()
	var b httpapi.ErrorBody
	r.JSON(t, &b)
	if b.Error == nil {
		t.Fatalf("%s %s answered %d without an error object: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.Body)
	}
	return b
}

// Do sends a request with the token. body is sent as is when it is a string or []byte and
// as JSON otherwise; header entries are set after the defaults, so they can replace them.
func (e *Env) Do(t testing.TB, method, path string, body any, header ...string) *Response {
	t.Helper()
	return e.DoRaw(t, method, path, body, append([]string{"Authorization", "Bearer " + Token}, header...)...)
}

// DoRaw sends a request with only the headers given.
func (e *Env) DoRaw(t testing.TB, method, path string, body any, header ...string) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(e.Ctx, method, e.Server.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return Send(t, e.Server.Client(), req, header...)
}

// Send sets the header entries on req (name, value pairs; an empty value removes the
// header), sends it with client and reads the answer whole.
func Send(t testing.TB, client *http.Client, req *http.Request, header ...string) *Response {
	t.Helper()
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Response: resp, Body: raw}
}
