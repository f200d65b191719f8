package skilljarsim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// receiver records the deliveries it accepts and answers status to each.
type receiver struct {
	mu     sync.Mutex
	bodies []map[string]any
	auth   []string
	extra  []string
	status int
	got    chan struct{}
}

func newReceiver(t *testing.T, status int) (*receiver, string) {
	r := &receiver{status: status, got: make(chan struct{}, 1024)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		u, p, _ := req.BasicAuth()
		r.mu.Lock()
		r.bodies, r.auth, r.extra = append(r.bodies, m), append(r.auth, u+":"+p), append(r.extra, req.Header.Get("X-Tenant"))
		st := r.status
		r.mu.Unlock()
		w.WriteHeader(st)
		r.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func (r *receiver) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-r.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("no delivery after %d of %d", len(r.bodies), n)
		}
	}
}

func sjClient(t *testing.T, s *skilljarsim.Sim) *skilljar.Client {
	c, err := skilljar.New(skilljar.Config{BaseURL: s.URL(), APIKey: s.APIKey()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWebhookSubscriptionsAreManagedAndDeliverChangesWithTheirCredentials(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 50})
	s.ConfigureWebhooks(skilljarsim.WebhookConfig{Backoff: time.Millisecond})
	c, ctx := sjClient(t, s), context.Background()
	rec, url := newReceiver(t, http.StatusOK)

	completions := skilljarsim.EventCourseCompletion
	w, err := c.CreateWebhook(ctx, skilljar.Webhook{TargetURL: url, Active: true, BasicAuthUsername: "u", BasicAuthPassword: "p",
		AdditionalHeaders: map[string]string{"X-Tenant": "t1"}})
	if err != nil || w.ID == "" || !w.Active || w.EventType != nil {
		t.Fatalf("create: %+v, %v", w, err)
	}
	// A second subscription to the same URL must not double the deliveries.
	if _, err := c.CreateWebhook(ctx, skilljar.Webhook{TargetURL: url, Active: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateWebhook(ctx, skilljar.Webhook{TargetURL: "not a url"}); err == nil {
		t.Error("a subscription without a valid target_url was created")
	}
	list, err := c.Webhooks(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d, %v", len(list), err)
	}

	ping, err := c.PingWebhook(ctx, w.ID)
	if err != nil || !ping.Succeeded || ping.HTTPStatusCode != 200 {
		t.Fatalf("ping: %+v, %v", ping, err)
	}
	rec.wait(t, 1)

	l := s.AddLearner()
	rec.wait(t, 1)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.bodies[0]["type"] != "PING" {
		t.Errorf("first delivery is %v, want the ping", rec.bodies[0])
	}
	got := rec.bodies[1]
	user, _ := got["user"].(map[string]any)
	if got["type"] != skilljarsim.EventDomainEnrollment || user["id"] != l.ID {
		t.Errorf("delivery %v, want a domain enrollment of %s", got, l.ID)
	}
	if rec.auth[1] != "u:p" || rec.extra[1] != "t1" {
		t.Errorf("delivery sent auth %q and header %q, want u:p and t1", rec.auth[1], rec.extra[1])
	}
	if len(rec.bodies) != 2 {
		t.Errorf("%d deliveries, want 2: one URL gets an event once", len(rec.bodies))
	}

	w.EventType = &completions
	if w, err = c.UpdateWebhook(ctx, w); err != nil || w.EventType == nil || *w.EventType != completions {
		t.Fatalf("update: %+v, %v", w, err)
	}
	for _, h := range list {
		if err := c.DeleteWebhook(ctx, h.ID); err != nil {
			t.Fatal(err)
		}
	}
	if list, _ = c.Webhooks(ctx); len(list) != 0 {
		t.Errorf("%d subscriptions left after delete", len(list))
	}
}

func TestWebhookIsDeactivatedByA4xxAndByRunningOutOfRetries(t *testing.T) {
	for _, tc := range []struct {
		status int
		reason string
		tries  int
	}{{http.StatusUnauthorized, skilljarsim.DeactivatedHTTP4xx, 1}, {http.StatusServiceUnavailable, skilljarsim.DeactivatedRetryCount, 3}} {
		s := start(t, skilljarsim.Config{Users: 20})
		s.ConfigureWebhooks(skilljarsim.WebhookConfig{Retries: 2, Backoff: time.Millisecond})
		rec, url := newReceiver(t, tc.status)
		if _, err := sjClient(t, s).CreateWebhook(context.Background(), skilljar.Webhook{TargetURL: url, Active: true}); err != nil {
			t.Fatal(err)
		}
		s.AddLearner()
		rec.wait(t, tc.tries)
		deadline := time.Now().Add(5 * time.Second)
		for s.Webhooks()[0].Active && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		w := s.Webhooks()[0]
		if w.Active || w.DeactivateReason == nil || *w.DeactivateReason != tc.reason {
			t.Errorf("after %d answers: active %v, reason %v; want deactivated with %s", tc.status, w.Active, w.DeactivateReason, tc.reason)
		}
		if _, attempts := s.WebhookDeliveries(); attempts != tc.tries {
			t.Errorf("after %d answers: %d attempts, want %d", tc.status, attempts, tc.tries)
		}
		s.AddLearner() // a deactivated subscription gets nothing more
		select {
		case <-rec.got:
			t.Errorf("a deactivated subscription got a delivery")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
