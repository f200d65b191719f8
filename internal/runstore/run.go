// Package runstore keeps backfill runs in Redis: the run record and its state machine,
// per-stream checkpoints and counters, the activity log, the rejected-records ledger and
// dry-run samples. Everything a batch changes is committed in one atomic script, so a crash
// either keeps all of a batch's effects or none of them.
package runstore

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// State is where a run is in its life.
type State string

// Run states. Paused, WaitingForAuth and Failed can be resumed from the checkpoints.
const (
	Queued         State = "queued"
	Running        State = "running"
	Paused         State = "paused"
	WaitingForAuth State = "waiting_for_auth"
	Succeeded      State = "succeeded"
	Failed         State = "failed"
	Cancelled      State = "cancelled"
)

// Terminal reports whether no more work will happen without an operator's resume.
func (s State) Terminal() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Runnable reports whether slices may advance the run.
func (s State) Runnable() bool { return s == Queued || s == Running }

// Kind says why a run exists.
type Kind string

// Run kinds.
const (
	KindBackfill Kind = "backfill"
	KindCatchup  Kind = "catchup"
	// KindRedrive sends another run's rejected records to Salesforce again.
	KindRedrive Kind = "redrive"
	// KindLive writes the learners webhook deliveries named.
	KindLive Kind = "live"
)

// Sink modes: how rows reach Salesforce.
const (
	SinkAuto        = "auto"        // Bulk API 2.0 for large batches, collections for small ones
	SinkCollections = "collections" // sObject Collections upsert, 200 rows a call
	SinkBulk        = "bulk"        // Bulk API 2.0 ingest jobs
)

// Scope is what a run covers, fixed at creation.
type Scope struct {
	// Domains is the allow-list of Skilljar domain names; empty means every domain.
	Domains []string `json:"domains"`
	// Objects are the mapping objects to sync (student, course, published_course,
	// course_progress); empty means all.
	Objects  []string `json:"objects"`
	DryRun   bool     `json:"dry_run"`
	SinkMode string   `json:"sink_mode"`
	// LinkContacts sets skilljar__Contact__c on students from Contacts with the same email;
	// CreateContacts creates a Contact when none matches. ContactMatch picks among several
	// Contacts: "created" (most recently created, the default) or "modified".
	LinkContacts   bool   `json:"link_contacts,omitempty"`
	CreateContacts bool   `json:"create_contacts,omitempty"`
	ContactMatch   string `json:"contact_match,omitempty"`
}

// Meta is the immutable part of a run record.
type Meta struct {
	ID        string    `json:"id"`
	Kind      Kind      `json:"kind"`
	Scope     Scope     `json:"scope"`
	Trigger   string    `json:"trigger"`
	CreatedAt time.Time `json:"created_at"`
	// Parent is the run whose rejected records a redrive run sends again.
	Parent string `json:"parent,omitempty"`
}

// StreamDef is one ordered walk through source pages inside a run.
type StreamDef struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Domain string `json:"domain,omitempty"`
	Object string `json:"object,omitempty"`
	// Pass numbers a catch-up's change-detection passes.
	Pass int `json:"pass,omitempty"`
	// Full makes a catch-up's snapshot treat every learner as changed.
	Full bool `json:"full,omitempty"`
}

// Plan is what the first slice decides after preflight: the streams, in dependency order,
// and the resolved scope.
type Plan struct {
	Streams []StreamDef `json:"streams"`
	Domains []string    `json:"domains"`
	Objects []string    `json:"objects"`
	Sink    string      `json:"sink"`
	Notes   []string    `json:"notes,omitempty"`
	// Adaptations are how the run fits the org where preflight found it differs from the
	// mapping but writing stays safe.
	Adaptations []Adaptation `json:"adaptations,omitempty"`
}

// Adaptation kinds.
const (
	// AdaptCreateOnly: the field is written when a record is created and left out when it
	// is updated (a master-detail relationship without reparenting).
	AdaptCreateOnly = "create_only"
	// AdaptOmit: the field is never written (an auto-number, or an optional field the org
	// lacks).
	AdaptOmit = "omit"
	// AdaptWarn: nothing changes, but the operator should know (a non-unique external id).
	AdaptWarn = "warning"
)

// Adaptation is one way a run bends to the org instead of failing.
type Adaptation struct {
	Kind    string `json:"kind"`
	Object  string `json:"object"`
	SObject string `json:"sobject"`
	// Field is the field's API name; for a parent reference, its lookup field (the row
	// refers to the parent through the relationship, …__r).
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Counters count what happened to source records of one object. They always add up:
// Read = Written + Skipped + Rejected + Filtered, and Written = Created + Updated.
// Unchanged is the part of Skipped that Salesforce already holds as the source has it; the
// rest of Skipped are records seen twice in one run (a learner in two domains) or, in a dry
// run, rows that would have been written.
type Counters struct {
	Read      int64 `json:"read"`
	Written   int64 `json:"written"`
	Created   int64 `json:"created"`
	Updated   int64 `json:"updated"`
	Skipped   int64 `json:"skipped"`
	Unchanged int64 `json:"unchanged"`
	Rejected  int64 `json:"rejected"`
	Filtered  int64 `json:"filtered"`
}

// Balanced reports whether the counters add up.
func (c Counters) Balanced() bool {
	return c.Read == c.Written+c.Skipped+c.Rejected+c.Filtered && c.Written == c.Created+c.Updated &&
		c.Unchanged <= c.Skipped
}

// Add returns the sum of two counter sets.
func (c Counters) Add(o Counters) Counters {
	return Counters{
		Read: c.Read + o.Read, Written: c.Written + o.Written, Created: c.Created + o.Created,
		Updated: c.Updated + o.Updated, Skipped: c.Skipped + o.Skipped, Unchanged: c.Unchanged + o.Unchanged,
		Rejected: c.Rejected + o.Rejected, Filtered: c.Filtered + o.Filtered,
	}
}

func (c Counters) fields() map[string]int64 {
	return map[string]int64{
		"read": c.Read, "written": c.Written, "created": c.Created, "updated": c.Updated,
		"skipped": c.Skipped, "unchanged": c.Unchanged, "rejected": c.Rejected, "filtered": c.Filtered,
	}
}

func (c *Counters) set(outcome string, v int64) {
	switch outcome {
	case "read":
		c.Read = v
	case "written":
		c.Written = v
	case "created":
		c.Created = v
	case "updated":
		c.Updated = v
	case "skipped":
		c.Skipped = v
	case "unchanged":
		c.Unchanged = v
	case "rejected":
		c.Rejected = v
	case "filtered":
		c.Filtered = v
	}
}

// StreamStatus is a stream's definition with its saved checkpoint.
type StreamStatus struct {
	StreamDef
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
	Done       bool            `json:"done"`
}

// Progress measures the run's long pole, learners processed, for the progress bar and ETA.
type Progress struct {
	Done    int64   `json:"done"`
	Total   int64   `json:"total"`
	Percent float64 `json:"percent"`
	// Rate is learners per second over the recent window; zero until measured.
	Rate float64 `json:"rate"`
	// ETASeconds is the remaining work at the measured rate; negative when unknown.
	ETASeconds float64 `json:"eta_seconds"`
}

// ObjectSummary is the reconcile result for one object.
type ObjectSummary struct {
	Object  string `json:"object"`
	SObject string `json:"sobject"`
	Counters
	// Distinct is how many distinct records the run accepted (written or unchanged).
	Distinct int64 `json:"distinct"`
	// SalesforceCount is SELECT COUNT() of records with an external id; -1 when not counted.
	SalesforceCount int64 `json:"salesforce_count"`
	// SourceCount is how many records Skilljar lists now (courses, published courses); -1
	// when the source gives no count of its own (learners are counted per domain).
	SourceCount int64 `json:"source_count"`
	Matches     bool  `json:"matches"`
}

// DomainSummary compares a domain's members now with the learners the run accounted for.
type DomainSummary struct {
	Domain string `json:"domain"`
	// Members is the domain's member count in Skilljar at the reconcile.
	Members int64 `json:"members"`
	// Accounted is how many distinct members of the domain the run processed (or found
	// processed in an earlier domain).
	Accounted int64 `json:"accounted"`
	// Found is how many of them only the verification walks found.
	Found int64 `json:"found"`
	// Unaccounted is how many members the last verification walk could not account for.
	Unaccounted int64 `json:"unaccounted"`
}

// Summary is the end-of-run reconcile.
type Summary struct {
	Objects []ObjectSummary `json:"objects"`
	// Domains compares each domain's members with what the run accounted for; empty when the
	// run read no learners by domain.
	Domains []DomainSummary `json:"domains,omitempty"`
	// FoundByVerification counts learners the learners streams missed and the verification
	// walks found and processed.
	FoundByVerification int64 `json:"found_by_verification"`
	// Verdict is "exact" (Salesforce holds exactly what the source has), "complete"
	// (everything arrived, and Salesforce also holds records this run did not write),
	// "mismatch", or "dry_run".
	Verdict string `json:"verdict"`
	Message string `json:"message"`
}

// Run is a run record as read back from the store.
type Run struct {
	Meta
	State           State               `json:"state"`
	Error           string              `json:"error,omitempty"`
	Plan            *Plan               `json:"plan,omitempty"`
	Streams         []StreamStatus      `json:"streams,omitempty"`
	Current         int                 `json:"current_stream"`
	Seq             int64               `json:"seq"`
	Counters        map[string]Counters `json:"counters"`
	Progress        Progress            `json:"progress"`
	RejectedDropped int64               `json:"rejected_dropped"`
	Summary         *Summary            `json:"summary,omitempty"`
	StartedAt       *time.Time          `json:"started_at,omitempty"`
	FinishedAt      *time.Time          `json:"finished_at,omitempty"`
	UpdatedAt       *time.Time          `json:"updated_at,omitempty"`
	// CheckpointAt is when a checkpoint last moved.
	CheckpointAt *time.Time `json:"checkpoint_at,omitempty"`
}

// Total sums the counters over every object.
func (r *Run) Total() Counters {
	var t Counters
	for _, c := range r.Counters {
		t = t.Add(c)
	}
	return t
}

// Event is one line of a run's activity log.
type Event struct {
	At      time.Time      `json:"at"`
	Level   string         `json:"level"`
	Kind    string         `json:"kind"`
	Stream  string         `json:"stream,omitempty"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data,omitempty"`
}

// Rejected is one record Salesforce refused, kept with its mapped row so it can be re-driven.
type Rejected struct {
	Object     string   `json:"object"`
	SObject    string   `json:"sobject"`
	ExternalID string   `json:"external_id"`
	Code       string   `json:"code"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields,omitempty"`
	// Row is the mapped row that was sent; for a record that could not be mapped it is
	// absent and Source holds the source record, so a re-drive can map it again.
	Row    json.RawMessage `json:"row,omitempty"`
	Source json.RawMessage `json:"source,omitempty"`
	Stream string          `json:"stream,omitempty"`
	At     time.Time       `json:"at"`
}

// Sample is one mapped row shown by a dry run.
type Sample struct {
	Object string          `json:"object"`
	Row    json.RawMessage `json:"row"`
}

// Commit is everything one accepted sink batch changes, applied atomically.
type Commit struct {
	// Stream is the index of the stream whose checkpoint moves; -1 moves none.
	Stream     int
	Checkpoint any
	StreamDone bool
	Counters   map[string]Counters
	// Learners are learners now fully processed in this run (skipped by later domain streams).
	Learners []string
	// Domain, when set, also records Learners as accounted for in that domain: listed there
	// and processed, here or by an earlier domain's stream.
	Domain string
	// Students are learners whose student row Salesforce accepted before their progress is
	// all in, so a page re-read in another order does not write them again.
	Students []string
	Events   []Event
	Rejected []Rejected
	Samples  []Sample
	// ProgressDone is how many more learners are done; ProgressTotal grows the total when
	// the run learns of more work (a catch-up's changed learners).
	ProgressDone, ProgressTotal int64
	// Snapshot records learners' change fingerprints as this run saw them (learner id →
	// fingerprint); on success it becomes the scope's watermark.
	Snapshot map[string]string
	// Changed appends to the list of learners pass Pass found changed.
	Pass    int
	Changed []string
	// Members records learners found in the run's allowed domains.
	Members []string
}

// NewID returns a new run id: sortable by time, unique enough for one org's runs.
func NewID(now time.Time, random uint32) string {
	return fmt.Sprintf("r%s%08x", now.UTC().Format("20060102t150405"), random)
}

// IDPattern is the shape NewID gives ids, as the API's OpenAPI document states it.
const IDPattern = `^r[0-9]{8}t[0-9]{6}[0-9a-f]{8}$`

var idPattern = regexp.MustCompile(IDPattern)

// ValidID reports whether id has the shape NewID gives. Callers check it before a lookup so
// that junk never becomes part of a Redis key name; whether the run exists is the store's to say.
func ValidID(id string) bool { return idPattern.MatchString(id) }
