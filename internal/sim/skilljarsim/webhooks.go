package skilljarsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Webhooks as the v1 document describes them (api-evangelist/skilljar,
// openapi/_original/skilljar-openapi-original.yml, paths /v1/webhooks, /v1/webhooks/{webhook_id},
// /v1/webhooks/{webhook_id}/ping; schemas WebHook, WebHookRequest, EventTypeEnum,
// DeactivateReasonEnum), delivered over real HTTP when the org changes. What the document
// leaves open (the retry schedule, the event body) is configurable or marked below.

// Event types (EventTypeEnum). The simulator emits the three its live changes make.
const (
	EventCourseCompletion = "COURSE_COMPLETION"
	EventCourseEnrollment = "COURSE_ENROLLMENT"
	EventDomainEnrollment = "DOMAIN_ENROLLMENT"
	eventPing             = "PING"
)

var eventTypes = []string{EventCourseCompletion, EventCourseEnrollment, EventDomainEnrollment,
	"LESSON_COMPLETION", "PATH_COMPLETION", "PATH_ENROLLMENT", "PURCHASE_FULFILLMENT",
	"QUIZ_COMPLETION", "VILT_EVENT_REGISTRATION", "DASHBOARD_TASK_CREATED"}

// Deactivation reasons (DeactivateReasonEnum).
const (
	DeactivatedHTTP4xx    = "HTTP_4XX_RESPONSE"
	DeactivatedRetryCount = "RETRY_COUNT"
)

// WebhookConfig sets how deliveries go. Skilljar documents no retry schedule (reference
// skilljar.md §12), so retries and backoff are choices of whoever runs the simulator.
type WebhookConfig struct {
	// Retries is how many times a delivery answered 5xx or not answered is tried again before
	// the subscription is deactivated with RETRY_COUNT. Defaults to 5.
	Retries int
	// Backoff is the wait before the first retry; it doubles for each next one. Defaults to 1s.
	Backoff time.Duration
	// Timeout bounds one delivery attempt. Defaults to 10s.
	Timeout time.Duration
}

// Webhook is a subscription as WebHook describes it.
type Webhook struct {
	ID                string            `json:"id"`
	TargetURL         string            `json:"target_url"`
	Active            bool              `json:"active"`
	DeactivateReason  *string           `json:"deactivate_reason"`
	EventType         *string           `json:"event_type"`
	BasicAuthUsername string            `json:"basic_auth_username"`
	BasicAuthPassword string            `json:"basic_auth_password"`
	AdditionalHeaders map[string]string `json:"additional_headers"`
}

// webhookRequest is WebHookRequest; pointers tell a PATCH's absent fields from zero values.
type webhookRequest struct {
	TargetURL         *string            `json:"target_url"`
	Active            *bool              `json:"active"`
	EventType         *string            `json:"event_type"`
	BasicAuthUsername *string            `json:"basic_auth_username"`
	BasicAuthPassword *string            `json:"basic_auth_password"`
	AdditionalHeaders *map[string]string `json:"additional_headers"`
}

// hookState is the subscriptions and the deliveries waiting to go out.
type hookState struct {
	mu      sync.Mutex
	cfg     WebhookConfig
	subs    []*Webhook
	queue   chan delivery
	start   sync.Once
	sent    int // deliveries answered 2xx
	attempt int // delivery attempts made, retries included
	ids     int64
}

// nextID hands out subscription and event ids in the document's pattern ^[0-9a-z]+$; called
// with mu held.
func (h *hookState) nextID() string {
	h.ids++
	return "wh" + strconv.FormatInt(h.ids, 36)
}

// delivery is one event on its way to one target URL.
type delivery struct {
	sub  *Webhook
	body []byte
}

// ConfigureWebhooks sets the delivery schedule; call it before creating subscriptions.
func (s *Sim) ConfigureWebhooks(c WebhookConfig) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.cfg = c
}

// Webhooks returns a copy of the subscriptions.
func (s *Sim) Webhooks() []Webhook {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	out := make([]Webhook, len(s.hooks.subs))
	for i, w := range s.hooks.subs {
		out[i] = *w
	}
	return out
}

// WebhookDeliveries reports how many deliveries were answered 2xx and how many attempts
// were made.
func (s *Sim) WebhookDeliveries() (delivered, attempts int) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return s.hooks.sent, s.hooks.attempt
}

func (s *Sim) webhookViews() map[string]func(*http.Request) response {
	return map[string]func(*http.Request) response{
		"GET /v1/webhooks":            s.listWebhooks,
		"POST /v1/webhooks":           s.createWebhook,
		"GET /v1/webhooks/{id}":       s.getWebhook,
		"PUT /v1/webhooks/{id}":       s.updateWebhook,
		"PATCH /v1/webhooks/{id}":     s.updateWebhook,
		"DELETE /v1/webhooks/{id}":    s.deleteWebhook,
		"POST /v1/webhooks/{id}/ping": s.pingWebhook,
	}
}

// listWebhooks is webhooks_list, page-number paged.
func (s *Sim) listWebhooks(r *http.Request) response {
	subs := s.Webhooks()
	return numberPage(r, len(subs), false, func(i int) Webhook { return subs[i] })
}

func (s *Sim) findWebhook(id string) (*Webhook, int) {
	i := slices.IndexFunc(s.hooks.subs, func(w *Webhook) bool { return w.ID == id })
	if i < 0 {
		return nil, -1
	}
	return s.hooks.subs[i], i
}

func (s *Sim) getWebhook(r *http.Request) response {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	w, _ := s.findWebhook(r.PathValue("id"))
	if w == nil {
		return notFound()
	}
	return jsonResponse(http.StatusOK, *w)
}

// createWebhook is webhooks_create: target_url is required, active defaults to true.
func (s *Sim) createWebhook(r *http.Request) response {
	w := &Webhook{Active: true, AdditionalHeaders: map[string]string{}}
	if resp, ok := applyWebhookRequest(r, w, true); !ok {
		return resp
	}
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	w.ID = s.hooks.nextID()
	s.hooks.subs = append(s.hooks.subs, w)
	return jsonResponse(http.StatusCreated, *w)
}

// updateWebhook is webhooks_update (PUT) and webhooks_partial_update (PATCH). Setting
// active again clears the deactivation reason.
func (s *Sim) updateWebhook(r *http.Request) response {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	w, _ := s.findWebhook(r.PathValue("id"))
	if w == nil {
		return notFound()
	}
	next := *w
	if resp, ok := applyWebhookRequest(r, &next, r.Method == http.MethodPut); !ok {
		return resp
	}
	if next.Active {
		next.DeactivateReason = nil
	}
	*w = next
	return jsonResponse(http.StatusOK, *w)
}

// deleteWebhook is webhooks_destroy: 204, no body.
func (s *Sim) deleteWebhook(r *http.Request) response {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	_, i := s.findWebhook(r.PathValue("id"))
	if i < 0 {
		return notFound()
	}
	s.hooks.subs = slices.Delete(s.hooks.subs, i, i+1)
	return response{status: http.StatusNoContent}
}

// pingWebhook is webhooks_ping_create: one POST of type PING, answered with
// {succeeded, http_status_code, message}. "A failed ping will not deactivate the webhook and
// no retries are attempted."
func (s *Sim) pingWebhook(r *http.Request) response {
	s.hooks.mu.Lock()
	w, _ := s.findWebhook(r.PathValue("id"))
	var sub Webhook
	if w != nil {
		sub = *w
	}
	cfg := s.hooks.cfg
	s.hooks.mu.Unlock()
	if w == nil {
		return response{status: http.StatusNotFound}
	}
	body, _ := json.Marshal(map[string]any{"type": eventPing, "webhook_id": sub.ID, "created_at": time.Now().UTC()})
	status, err := s.post(r.Context(), &sub, body, webhookDefaults(cfg).Timeout)
	out := struct {
		Succeeded      bool   `json:"succeeded"`
		HTTPStatusCode int    `json:"http_status_code"`
		Message        string `json:"message"`
	}{Succeeded: err == nil && status/100 == 2, HTTPStatusCode: status}
	switch {
	case err != nil:
		out.Message = err.Error()
	case out.Succeeded:
		out.Message = "OK"
	default:
		out.Message = http.StatusText(status)
	}
	return jsonResponse(http.StatusOK, out)
}

// applyWebhookRequest lays a JSON WebHookRequest over w; full requires target_url.
func applyWebhookRequest(r *http.Request, w *Webhook, full bool) (response, bool) {
	var req webhookRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		return detail(http.StatusBadRequest, "JSON parse error - "+err.Error()), false
	}
	bad := map[string][]string{}
	switch {
	case req.TargetURL != nil:
		u, err := url.Parse(*req.TargetURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(*req.TargetURL) > 1024 {
			bad["target_url"] = []string{"Enter a valid URL."}
		}
		w.TargetURL = *req.TargetURL
	case full:
		bad["target_url"] = []string{"This field is required."}
	}
	if req.EventType != nil && !slices.Contains(eventTypes, *req.EventType) {
		bad["event_type"] = []string{fmt.Sprintf("%q is not a valid choice.", *req.EventType)}
	}
	if len(bad) > 0 {
		return jsonResponse(http.StatusBadRequest, bad), false
	}
	w.EventType = req.EventType // null (or absent) means every event type
	if req.Active != nil {
		w.Active = *req.Active
	}
	if req.BasicAuthUsername != nil {
		w.BasicAuthUsername = *req.BasicAuthUsername
	}
	if req.BasicAuthPassword != nil {
		w.BasicAuthPassword = *req.BasicAuthPassword
	}
	if req.AdditionalHeaders != nil {
		w.AdditionalHeaders = *req.AdditionalHeaders
	}
	return response{}, true
}

func webhookDefaults(c WebhookConfig) WebhookConfig {
	if c.Retries <= 0 {
		c.Retries = 5
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	return c
}

// emit queues one event for every active subscription it qualifies for, once per target URL
// ("If multiple webhooks are created with the same URL and qualify for an event, the event
// will be sent to the URL only once"). The body is untyped in the document (the sample
// operations return `type: object`); this one carries the event type, the learner and the
// course, as the sample operations' names suggest. Called with s.mu held.
func (s *Sim) emit(eventType string, l *Learner, p *Progress, domain string) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	var urls []string
	for _, w := range s.hooks.subs {
		if !w.Active || (w.EventType != nil && *w.EventType != eventType) || slices.Contains(urls, w.TargetURL) {
			continue
		}
		urls = append(urls, w.TargetURL)
		ev := map[string]any{
			"type": eventType, "id": s.hooks.nextID(), "created_at": s.clock,
			"user":   map[string]any{"id": l.ID, "email": l.Email, "first_name": l.FirstName, "last_name": l.LastName},
			"domain": domain,
		}
		if p != nil {
			ev["course"] = map[string]any{"id": p.CourseID}
			ev["published_course"] = map[string]any{"id": p.PublishedCourseID}
			ev["course_progress"] = map[string]any{"id": p.CourseProgressID, "success_status": p.SuccessStatus}
		}
		body, _ := json.Marshal(ev)
		s.hooks.start.Do(func() {
			s.hooks.queue = make(chan delivery, 1<<16)
			s.live.Add(1)
			go s.deliverLoop()
		})
		select {
		case s.hooks.queue <- delivery{sub: w, body: body}:
		default:
			// A receiver this far behind is treated like one that never answers.
			s.deactivate(w, DeactivatedRetryCount)
		}
	}
}

// deliverLoop sends queued deliveries until the simulator closes; each delivery retries on
// its own, so one slow target does not hold up the next event for long.
func (s *Sim) deliverLoop() {
	defer s.live.Done()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	sem := make(chan struct{}, 16)
	for {
		select {
		case d := <-s.hooks.queue:
			select {
			case sem <- struct{}{}:
			case <-s.closing:
				return
			}
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				defer func() { <-sem }()
				s.deliver(d)
			}()
		case <-s.closing:
			return
		}
	}
}

// deliver POSTs one event, retrying 5xx answers and failed attempts with doubling waits. A
// 4xx answer deactivates the subscription with HTTP_4XX_RESPONSE; running out of retries
// deactivates it with RETRY_COUNT.
func (s *Sim) deliver(d delivery) {
	s.hooks.mu.Lock()
	cfg := webhookDefaults(s.hooks.cfg)
	sub := *d.sub
	s.hooks.mu.Unlock()
	if !sub.Active {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := cfg.Backoff
	for try := 0; ; try++ {
		status, err := s.post(ctx, &sub, d.body, cfg.Timeout)
		s.hooks.mu.Lock()
		s.hooks.attempt++
		switch {
		case err == nil && status/100 == 2:
			s.hooks.sent++
			s.hooks.mu.Unlock()
			return
		case err == nil && status/100 == 4:
			s.deactivate(d.sub, DeactivatedHTTP4xx)
			s.hooks.mu.Unlock()
			return
		case try >= cfg.Retries:
			s.deactivate(d.sub, DeactivatedRetryCount)
			s.hooks.mu.Unlock()
			return
		}
		s.hooks.mu.Unlock()
		if !s.wait(ctx, wait) {
			return
		}
		wait *= 2
	}
}

// deactivate turns a subscription off with a reason; called with s.hooks.mu held.
func (s *Sim) deactivate(w *Webhook, reason string) {
	if !w.Active {
		return
	}
	w.Active, w.DeactivateReason = false, &reason
}

// post makes one delivery attempt with the subscription's basic auth and additional
// headers, and answers the status (0 with an error when no answer came).
func (s *Sim) post(ctx context.Context, w *Webhook, body []byte, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.TargetURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range w.AdditionalHeaders {
		req.Header.Set(k, v)
	}
	if w.BasicAuthUsername != "" || w.BasicAuthPassword != "" {
		req.SetBasicAuth(w.BasicAuthUsername, w.BasicAuthPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, nil
}
