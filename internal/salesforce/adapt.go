package salesforce

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
)

// AdaptationKind names what the client changed about how it writes to the org.
type AdaptationKind string

// The adaptations a client reports through Config.OnAdapt. Each lasts for the rest of the
// client's life: one client serves one org, and what the org refused once it refuses again.
const (
	// AdaptBatchSize: a collections call failed as a whole (the Apex CPU limit of the
	// org's triggers, reference/salesforce.md §8.4) while both its halves went through, so
	// the object's calls carry at most To records from now on.
	AdaptBatchSize AdaptationKind = "batch_size"
	// AdaptBulkJobSize: the same for Bulk API jobs of one object.
	AdaptBulkJobSize AdaptationKind = "bulk_job_size"
	// AdaptSerial: lock errors passed Config.LockSerialThreshold, so the object is written
	// by one call at a time (§8.5, "parallel batches collide where serial ones don't").
	AdaptSerial AdaptationKind = "serial"
	// AdaptConcurrency: the org refused a request with its concurrent-request limit
	// (§4.2, §8.6), so the client lowered its own limit of requests in flight to To; or,
	// after a long run of answered requests, raised it again.
	AdaptConcurrency AdaptationKind = "concurrency"
)

// Adaptation is one change the client made to how it writes to an org, for the activity
// log: what changed, on which object (empty for the concurrency limit), from and to which
// value, and why, in Salesforce's words where it gave any.
type Adaptation struct {
	Kind     AdaptationKind
	SObject  string
	From, To int
	Reason   string
}

func (a Adaptation) String() string {
	var what string
	switch a.Kind {
	case AdaptBatchSize:
		what = fmt.Sprintf("%s: at most %d records per collections call (was %d)", a.SObject, a.To, a.From)
	case AdaptBulkJobSize:
		what = fmt.Sprintf("%s: at most %d rows per Bulk API job (was %s)", a.SObject, a.To, sizeText(a.From))
	case AdaptSerial:
		what = fmt.Sprintf("%s: written serially from now on, one call or Bulk API job at a time", a.SObject)
	case AdaptConcurrency:
		what = fmt.Sprintf("at most %d Salesforce requests in flight (was %d)", a.To, a.From)
	default:
		what = string(a.Kind)
	}
	if a.Reason == "" {
		return what
	}
	return what + ": " + a.Reason
}

func sizeText(n int) string {
	if n == 0 {
		return "no limit"
	}
	return fmt.Sprint(n)
}

// gate is the client's adaptive limit of requests in flight, shared by every call. The org
// counts long-running requests across all its integrations (25, 5 on Developer Edition), so
// the limit a client can use is learned: halved when the org refuses one, raised by one
// after gateRecovery requests in a row were answered.
type gate struct {
	mu      sync.Mutex
	limit   int
	max     int
	inUse   int
	streak  int
	epoch   int // bumped by every change, so one burst of refusals lowers the limit once
	changed chan struct{}
}

// gateRecovery is how many answered requests in a row win one slot back. Large on purpose:
// the limit is shared with the org's other users, and a refusal costs a retry.
const gateRecovery = 200

func newGate(max int) *gate {
	return &gate{limit: max, max: max, changed: make(chan struct{})}
}

// acquire waits for a slot and returns the epoch it was granted in.
func (g *gate) acquire(ctx context.Context) (int, error) {
	for {
		g.mu.Lock()
		if g.inUse < g.limit {
			g.inUse++
			epoch := g.epoch
			g.mu.Unlock()
			return epoch, nil
		}
		wait := g.changed
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-wait:
		}
	}
}

// release frees a slot. answered says the org did not refuse the request for concurrency;
// a long enough run of those raises the limit by one, which release then reports.
func (g *gate) release(answered bool) (from, to int, raised bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inUse--
	if answered {
		g.streak++
		if g.streak >= gateRecovery && g.limit < g.max {
			from, to, raised = g.limit, g.limit+1, true
			g.limit++
			g.epoch++
			g.streak = 0
		}
	}
	g.wake()
	return from, to, raised
}

// lower halves the limit after a refusal of a request granted in epoch; refusals of
// requests that were already in flight when the limit last changed do not lower it again.
func (g *gate) lower(epoch int) (from, to int, lowered bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.streak = 0
	if epoch != g.epoch || g.limit == 1 {
		return 0, 0, false
	}
	from = g.limit
	g.limit = max(1, g.limit/2)
	g.epoch++
	g.wake()
	return from, g.limit, true
}

// current is the number of requests the client lets be in flight now.
func (g *gate) current() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.limit
}

// wake lets every waiter look again; the caller holds g.mu.
func (g *gate) wake() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// objectState is what the client learned about writing one sObject.
type objectState struct {
	mu sync.Mutex
	// collections is the most records a collections call may carry; 0 means CollectionsMax.
	collections int
	// bulk is the most rows a Bulk API job may carry; 0 means no learned limit.
	bulk int
	// serial is set once lock errors passed the threshold.
	serial bool
	// turn is held by a serial write for its whole duration.
	turn chan struct{}
	// createOnly are fields written when a record is created and left out when it exists.
	createOnly []string
}

func (c *Client) object(sobject string) *objectState {
	key := strings.ToLower(sobject)
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.objects[key]
	if o == nil {
		o = &objectState{turn: make(chan struct{}, 1)}
		c.objects[key] = o
	}
	return o
}

// SetCreateOnly names the fields of sobject that may be written when a record is created
// but not when it already exists, such as a master-detail relationship that describe reports
// createable and not updateable (reference/salesforce.md §8.1). Names are field API names as
// describe gives them ("skilljar__Student__c"); a custom field's relationship ("…__r") is
// left out along with it. Each call replaces the object's set; no names clears it. Safe for
// concurrent use; writes already under way keep the set they started with.
//
// Records are sent with the fields. Salesforce refuses an existing record that carries one
// (Config.CreateOnlyCodes, the error naming the field or its relationship) and writes the
// rest; the refused records go once more without the fields, through collections, or as a
// Bulk API job when a bulk pass had 2,000 or more of them. That costs no call on a first
// backfill, where every record is new, and one call more per call that met existing records
// (a catch-up, a re-drive), where asking first which records exist would cost a query per
// call on every run.
func (c *Client) SetCreateOnly(sobject string, fields ...string) {
	o := c.object(sobject)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.createOnly = append([]string(nil), fields...)
}

// snapshot returns the object's learned limits under its lock.
func (o *objectState) snapshot() (collections, bulk int, serial bool, createOnly []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.collections, o.bulk, o.serial, o.createOnly
}

type adaptHookKey struct{}

// WithAdaptationHook returns a context that makes the client's calls under it also report
// their adaptations to fn, so that the caller of one write (a run's slice) can put them in
// its own activity log; Config.OnAdapt still hears every one. fn runs on the call's
// goroutines and must be safe for concurrent use.
func WithAdaptationHook(ctx context.Context, fn func(Adaptation)) context.Context {
	return context.WithValue(ctx, adaptHookKey{}, fn)
}

// adapt reports a to the configured hook and to the call's own.
func (c *Client) adapt(ctx context.Context, a Adaptation) {
	if c.cfg.OnAdapt != nil {
		c.cfg.OnAdapt(ctx, a)
	}
	if fn, ok := ctx.Value(adaptHookKey{}).(func(Adaptation)); ok {
		fn(a)
	}
}

// learnCollections lowers the object's collections size to size, if that is lower.
func (c *Client) learnCollections(ctx context.Context, sobject string, size int, reason string) {
	o := c.object(sobject)
	o.mu.Lock()
	from := cmp.Or(o.collections, CollectionsMax)
	lowered := size < from
	if lowered {
		o.collections = size
	}
	o.mu.Unlock()
	if lowered {
		c.adapt(ctx, Adaptation{Kind: AdaptBatchSize, SObject: sobject, From: from, To: size, Reason: reason})
	}
}

// learnBulk lowers the object's Bulk API job size to size, if that is lower.
func (c *Client) learnBulk(ctx context.Context, sobject string, size int, reason string) {
	o := c.object(sobject)
	o.mu.Lock()
	from := o.bulk
	lowered := from == 0 || size < from
	if lowered {
		o.bulk = size
	}
	o.mu.Unlock()
	if lowered {
		c.adapt(ctx, Adaptation{Kind: AdaptBulkJobSize, SObject: sobject, From: from, To: size, Reason: reason})
	}
}

// goSerial switches the object to serial writes, once.
func (c *Client) goSerial(ctx context.Context, sobject, reason string) {
	o := c.object(sobject)
	o.mu.Lock()
	was := o.serial
	o.serial = true
	o.mu.Unlock()
	if !was {
		c.adapt(ctx, Adaptation{Kind: AdaptSerial, SObject: sobject, From: 0, To: 1, Reason: reason})
	}
}

// takeTurn waits for the object's serial turn when it is written serially and returns what
// gives the turn back, and whether it took one; otherwise it returns at once.
func (o *objectState) takeTurn(ctx context.Context) (done func(), held bool, err error) {
	if _, _, serial, _ := o.snapshot(); !serial {
		return func() {}, false, nil
	}
	select {
	case o.turn <- struct{}{}:
		return func() { <-o.turn }, true, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}
