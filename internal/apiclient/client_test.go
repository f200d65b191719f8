package apiclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/apiclient"
	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
)

func client(t *testing.T, baseURL, token string) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(baseURL, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// apiError fails the test unless err is the API error given.
func apiError(t *testing.T, err error, status int, code, field string) *httpapi.Error {
	t.Helper()
	var ae *httpapi.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T), want an *httpapi.Error", err, err)
	}
	if ae.Status != status || ae.Code != code || ae.Field != field || ae.Message == "" {
		t.Fatalf("error %+v, want %d %s on field %q", ae, status, code, field)
	}
	return ae
}

func TestClientStartsAndWatchesARunToItsEnd(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 20})
	e.StartWorker(t)
	c := client(t, e.Server.URL, apitest.Token)
	ctx := context.Background()

	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	domain := e.Skilljar.Org().Domains[0].Name
	if _, err := c.PutSettings(ctx, settings.Settings{Domains: []string{domain}, SinkMode: "collections"}); err != nil {
		t.Fatal(err)
	}
	run, err := c.Start(ctx, httpapi.StartBody{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if run.State != runstore.Queued || len(run.Scope.Domains) != 1 || run.Scope.SinkMode != "collections" {
		t.Fatalf("started %+v", run)
	}
	var polls int
	end, err := c.Watch(ctx, run.ID, 20*time.Millisecond, func(*runstore.Run) { polls++ })
	if err != nil {
		t.Fatal(err)
	}
	if end.State != runstore.Succeeded || end.Summary == nil || end.Summary.Verdict != "exact" || polls == 0 {
		t.Fatalf("watched to %s (%s) in %d polls, summary %+v", end.State, end.Error, polls, end.Summary)
	}

	list, err := c.List(ctx, 5)
	if err != nil || len(list) != 1 || list[0].ID != run.ID {
		t.Fatalf("list: %v, %v", list, err)
	}
	events, err := c.Events(ctx, run.ID, 0)
	if err != nil || len(events) == 0 {
		t.Fatalf("events: %d, %v", len(events), err)
	}
	page, err := c.Rejected(ctx, run.ID, 0, 10)
	if err != nil || page.Total != 0 || page.Limit != 10 {
		t.Fatalf("rejected: %+v, %v", page, err)
	}
	if _, err := c.RetryRejected(ctx, run.ID); err == nil {
		t.Fatal("retry of a run without rejected records was accepted")
	}
}

func TestClientPausesResumesAndCancels(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	c := client(t, e.Server.URL, apitest.Token)
	ctx := context.Background()
	run, err := c.Start(ctx, httpapi.StartBody{DryRun: true}, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.Start(ctx, httpapi.StartBody{DryRun: true}, "key-1"); err != nil || again.ID != run.ID {
		t.Fatalf("repeated idempotency key: %v, %v", again, err)
	}
	for _, step := range []struct {
		act  func(context.Context, string) (*runstore.Run, error)
		want runstore.State
	}{{c.Pause, runstore.Paused}, {c.Resume, runstore.Running}, {c.Cancel, runstore.Cancelled}} {
		got, err := step.act(ctx, run.ID)
		if err != nil || got.State != step.want {
			t.Fatalf("got %v, %v; want %s", got, err, step.want)
		}
	}
	_, err = c.Pause(ctx, run.ID)
	apiError(t, err, http.StatusConflict, httpapi.CodeInvalidState, "")
	samples, err := c.Samples(ctx, run.ID)
	if err != nil || len(samples) != 0 {
		t.Fatalf("samples of a run that never ran: %v, %v", samples, err)
	}
}

func TestClientErrorsCarryTheAPIsCodeFieldAndActiveRun(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	c := client(t, e.Server.URL, apitest.Token)
	ctx := context.Background()

	_, err := c.Start(ctx, httpapi.StartBody{Domains: []string{"nowhere.example.com"}}, "")
	apiError(t, err, http.StatusBadRequest, httpapi.CodeInvalidValue, "domains")

	first, err := c.Start(ctx, httpapi.StartBody{}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Start(ctx, httpapi.StartBody{}, "")
	if ae := apiError(t, err, http.StatusConflict, httpapi.CodeRunActive, ""); ae.ActiveRunID != first.ID {
		t.Fatalf("active run %q, want %s", ae.ActiveRunID, first.ID)
	}

	_, err = c.Get(ctx, runstore.NewID(time.Now(), 5))
	apiError(t, err, http.StatusNotFound, httpapi.CodeNotFound, "id")
	_, err = c.Get(ctx, "../settings")
	apiError(t, err, http.StatusBadRequest, httpapi.CodeInvalidID, "id")

	_, err = c.PutSettings(ctx, settings.Settings{CreateContacts: true, ContactMatch: "oldest"})
	if ae := apiError(t, err, http.StatusBadRequest, httpapi.CodeInvalidSettings, "create_contacts"); len(ae.Fields) != 2 {
		t.Fatalf("problems %+v, want create_contacts and contact_match", ae.Fields)
	}

	st, err := c.Connection(ctx)
	if err != nil || st.State != connection.Disconnected {
		t.Fatalf("connection: %+v, %v", st, err)
	}
	for _, kind := range []string{"connected", "refreshed", "needs_reauth"} {
		if err := e.Connection.AddEvent(ctx, kind, "the "+kind+" event"); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := c.ConnectionEvents(ctx, 2)
	if err != nil || len(evs) != 2 || evs[0].Kind != "needs_reauth" || evs[1].Kind != "refreshed" {
		t.Fatalf("the two newest connection events: %+v, %v", evs, err)
	}

	_, err = client(t, e.Server.URL, "wrong-token-0123456789").List(ctx, 0)
	apiError(t, err, http.StatusUnauthorized, httpapi.CodeUnauthorized, "")
}

func TestWatchRidesOutABriefOutageButStopsOnAnErrorAnswer(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 10})
	target, err := url.Parse(e.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	// A proxy that answers the first polls 502, as one does while the API restarts.
	var outage atomic.Int32
	outage.Store(3)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && outage.Add(-1) >= 0 {
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	c := client(t, front.URL, apitest.Token)
	ctx := context.Background()

	run, err := c.Start(ctx, httpapi.StartBody{Objects: []string{"course"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	e.StartWorker(t)
	end, err := c.Watch(ctx, run.ID, 10*time.Millisecond, nil)
	if err != nil || end.State != runstore.Succeeded {
		t.Fatalf("watch through a brief outage: %v, %v", end, err)
	}

	outage.Store(100)
	_, err = c.Watch(ctx, run.ID, time.Millisecond, nil)
	if ae := apiError(t, err, http.StatusBadGateway, "", ""); ae.Message == "" {
		t.Fatal("a long outage should end the watch with the proxy's answer")
	}
	outage.Store(0)
	_, err = c.Watch(ctx, runstore.NewID(time.Now(), 77), time.Millisecond, nil)
	apiError(t, err, http.StatusNotFound, httpapi.CodeNotFound, "id")
}

func TestNewRefusesWhatCannotWork(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, token string }{
		{"127.0.0.1:8080", "t"}, {"ftp://host", "t"}, {"http://", "t"}, {"http://127.0.0.1:8080", ""},
	} {
		if _, err := apiclient.New(tc.url, tc.token, nil); err == nil {
			t.Errorf("New(%q, %q) was accepted", tc.url, tc.token)
		}
	}
}
