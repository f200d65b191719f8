// Package doctor checks the connections and the mapping against the live services and reports
// what is fine, what a run adapts to and what blocks it, each with its fix.
package doctor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// Statuses of an entry.
const (
	Fine     = "fine"
	Adapted  = "adapted"
	Blocking = "blocking"
)

// Checks: what an entry is about.
const (
	CheckSkilljarKey    = "skilljar_key"
	CheckSkilljarDomain = "skilljar_domain"
	CheckGrant          = "salesforce_grant"
	CheckBudget         = "salesforce_budget"
	CheckMapping        = "mapping"
	CheckPermissions    = "permissions"
)

// Entry is one finding.
type Entry struct {
	Check  string `json:"check"`
	Status string `json:"status"`
	// Field names what the entry is about: a domain, an sObject or sObject.Field, the key.
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	// Fix says what to do; empty when nothing needs doing.
	Fix string `json:"fix,omitempty"`
	// passing marks a blocking entry a queued run waits out by itself (no grant yet, a
	// spent budget, a service that did not answer), so it does not refuse a start.
	passing bool
}

// Report is every finding, in the order checked.
type Report struct {
	Entries []Entry `json:"entries"`
	// Blocking is true when any entry blocks.
	Blocking bool `json:"blocking"`
}

// WriteText prints one line per entry, its mark first, and its fix on the next line.
func (r *Report) WriteText(w io.Writer) {
	for _, e := range r.Entries {
		what := e.Check
		if e.Field != "" {
			what += " " + e.Field
		}
		fmt.Fprintf(w, "%-8s  %s: %s\n", e.Status, what, e.Message)
		if e.Fix != "" {
			fmt.Fprintf(w, "          fix: %s\n", e.Fix)
		}
	}
}

func (r *Report) add(e Entry) {
	r.Entries = append(r.Entries, e)
	r.Blocking = r.Blocking || e.Status == Blocking
}

// Skilljar is what the doctor asks of Skilljar; *skilljar.Client is one.
type Skilljar interface {
	Ping(ctx context.Context) error
	Domains(ctx context.Context) ([]skilljar.Domain, error)
}

// Salesforce is what the doctor asks of Salesforce: describes for preflight and the org's
// limits; *salesforce.Client is one.
type Salesforce interface {
	pipeline.Sink
	Limits(ctx context.Context) (map[string]salesforce.Limit, error)
}

// Connection reports the Salesforce grant; *connection.Store and *connection.Authorizer are
// ones.
type Connection interface {
	Status(ctx context.Context) (connection.Status, error)
}

// Doctor runs the checks.
type Doctor struct {
	Skilljar   Skilljar
	Salesforce Salesforce
	// Connection, when set, reports the grant; without it the grant is not checked.
	Connection Connection
	// Mapping defaults to mapping.Default().
	Mapping *mapping.Mapping
	// IdleLimit is how long an unused refresh token lives. Defaults to
	// connection.DefaultIdleLimit.
	IdleLimit time.Duration
	// Now is the clock the idle limit is measured on. Defaults to time.Now.
	Now func() time.Time
}

// Check reports on everything a run of scope needs. An error is returned only when the checks
// could not be made at all (a cancelled context); a failing service is an entry.
func (d *Doctor) Check(ctx context.Context, sc runstore.Scope) (*Report, error) {
	r := &Report{Entries: []Entry{}}
	d.checkSkilljar(ctx, r, sc.Domains)
	d.checkGrant(ctx, r)
	if d.checkBudget(ctx, r) {
		d.checkMapping(ctx, r, sc)
	}
	return r, ctx.Err()
}

func (d *Doctor) checkSkilljar(ctx context.Context, r *Report, domains []string) {
	if d.Skilljar == nil {
		r.add(Entry{Check: CheckSkilljarKey, Status: Blocking, Field: "SKILLJAR_API_KEY",
			Message: "no Skilljar API key is configured", Fix: "set SKILLJAR_API_KEY to a key from the Skilljar dashboard (Organization → API Credentials)"})
		return
	}
	if err := d.Skilljar.Ping(ctx); err != nil {
		e := Entry{Check: CheckSkilljarKey, Status: Blocking, Field: "SKILLJAR_API_KEY", Message: "Skilljar ping failed: " + err.Error(),
			Fix: "check that Skilljar is reachable from this server and try again", passing: true}
		if errors.Is(err, skilljar.ErrUnauthorized) {
			e.Message = "Skilljar rejected the API key"
			e.Fix = "set SKILLJAR_API_KEY to a valid key from the Skilljar dashboard (Organization → API Credentials); it goes in the Basic-auth username with an empty password"
			e.passing = false
		}
		r.add(e)
		return
	}
	r.add(Entry{Check: CheckSkilljarKey, Status: Fine, Field: "SKILLJAR_API_KEY", Message: "Skilljar accepts the API key"})
	known, err := d.Skilljar.Domains(ctx)
	if err != nil {
		r.add(Entry{Check: CheckSkilljarDomain, Status: Blocking, Message: "could not list the Skilljar domains: " + err.Error(),
			Fix: "check that the key may read domains, and try again", passing: true})
		return
	}
	names := make([]string, 0, len(known))
	for _, k := range known {
		names = append(names, k.Name)
	}
	if len(domains) == 0 {
		r.add(Entry{Check: CheckSkilljarDomain, Status: Fine,
			Message: fmt.Sprintf("no domains are chosen, so runs take all %d: %s", len(names), strings.Join(names, ", "))})
		return
	}
	for _, dom := range domains {
		if slices.Contains(names, dom) {
			r.add(Entry{Check: CheckSkilljarDomain, Status: Fine, Field: dom, Message: "the domain exists in the Skilljar organization"})
			continue
		}
		// The engine's own scope check refuses a start naming this domain (400 invalid_value
		// on "domains"), so the gate leaves it to that answer.
		r.add(Entry{Check: CheckSkilljarDomain, Status: Blocking, Field: dom, Message: "the domain is not in the Skilljar organization",
			Fix: "remove it from the settings' domains, or choose one of: " + strings.Join(names, ", "), passing: true})
	}
}

func (d *Doctor) checkGrant(ctx context.Context, r *Report) {
	if d.Connection == nil {
		return
	}
	st, err := d.Connection.Status(ctx)
	switch {
	case err != nil:
		r.add(Entry{Check: CheckGrant, Status: Blocking, Message: "could not read the Salesforce connection: " + err.Error(),
			Fix: "check BACKFILL_SECRET_KEY and Redis", passing: true})
	case st.State == connection.Connected:
		msg := "Salesforce is connected"
		if st.Username != "" {
			msg += " as " + st.Username
		}
		limit, now := cmp.Or(d.IdleLimit, connection.DefaultIdleLimit), time.Now
		if d.Now != nil {
			now = d.Now
		}
		lapse := st.LapsesAt(limit)
		if lapse != nil && now().After(*lapse) {
			r.add(Entry{Check: CheckGrant, Status: Blocking, passing: true,
				Message: fmt.Sprintf("%s, but the grant has gone unused since %s, past the %s idle limit: Salesforce has expired its refresh token",
					msg, st.LastUse().UTC().Format(time.RFC3339), limit),
				Fix: "reconnect Salesforce from the settings page; workers keep a connected grant in use (SALESFORCE_IDLE_REFRESH)"})
			return
		}
		if lapse != nil {
			msg += "; unused, the grant would lapse at " + lapse.UTC().Format(time.RFC3339)
		}
		r.add(Entry{Check: CheckGrant, Status: Fine, Message: msg})
	case st.State == connection.NeedsReauth:
		r.add(Entry{Check: CheckGrant, Status: Blocking, Message: "the Salesforce grant no longer works: " + st.LastError,
			Fix: "reconnect Salesforce from the settings page", passing: true})
	default:
		r.add(Entry{Check: CheckGrant, Status: Blocking, Message: "Salesforce is not connected",
			Fix: "connect Salesforce from the settings page", passing: true})
	}
}

// checkBudget reads the org's limits, which also proves the access token works (the client
// refreshes it on a 401 first), and reports whether the org can be asked further.
func (d *Doctor) checkBudget(ctx context.Context, r *Report) bool {
	if d.Salesforce == nil {
		r.add(Entry{Check: CheckBudget, Status: Blocking, Message: "no Salesforce client is configured", Fix: "configure the Salesforce connection", passing: true})
		return false
	}
	limits, err := d.Salesforce.Limits(ctx)
	if err != nil {
		e := Entry{Check: CheckBudget, Status: Blocking, Message: "could not read the org's limits: " + err.Error(),
			Fix: "check that Salesforce is reachable and try again", passing: true}
		if errors.Is(err, salesforce.ErrAuth) {
			e.Message = "Salesforce refused the connection's tokens, and refreshing them failed: " + err.Error()
			e.Fix = "reconnect Salesforce from the settings page"
		}
		r.add(e)
		return false
	}
	l, ok := limits["DailyApiRequests"]
	switch {
	case !ok:
		r.add(Entry{Check: CheckBudget, Status: Fine, Message: "the org's limits do not report DailyApiRequests; the API budget is unknown"})
	case l.Remaining <= 0:
		r.add(Entry{Check: CheckBudget, Status: Blocking, Field: "DailyApiRequests",
			Message: fmt.Sprintf("the org's daily API allocation is spent (0 of %d left)", l.Max),
			Fix:     "wait for the 24-hour window to free calls, or ask Salesforce for a higher allocation", passing: true})
	default:
		r.add(Entry{Check: CheckBudget, Status: Fine, Field: "DailyApiRequests",
			Message: fmt.Sprintf("%d of %d daily API calls left", l.Remaining, l.Max)})
	}
	return true
}

// checkMapping runs the pipeline's preflight, the one checker of the mapping against the org.
func (d *Doctor) checkMapping(ctx context.Context, r *Report, sc runstore.Scope) {
	m := d.Mapping
	if m == nil {
		m = mapping.Default()
	}
	objects, _ := m.WithParents(sc.Objects)
	adaptations, err := pipeline.Preflight(ctx, d.Salesforce, m, objects, sc)
	var pe *pipeline.PreflightError
	if err != nil && !errors.As(err, &pe) {
		r.add(Entry{Check: CheckMapping, Status: Blocking, Message: "could not describe the mapped objects: " + err.Error(),
			Fix: "check the Salesforce connection and try again", passing: true})
		return
	}
	unique := true
	for _, a := range adaptations {
		r.add(Entry{Check: CheckMapping, Status: Adapted, Field: a.SObject + "." + a.Field, Message: a.Message})
		// Preflight warns on an upsert key only when it is not unique.
		o, _ := m.Object(a.Object)
		unique = unique && !(a.Kind == runstore.AdaptWarn && strings.EqualFold(a.Field, o.ExternalID))
	}
	if pe != nil {
		for _, p := range pe.Problems {
			field, msg, ok := strings.Cut(p, ": ")
			if !ok {
				field, msg = "", p
			}
			msg, fix := splitFix(msg)
			r.add(Entry{Check: CheckMapping, Status: Blocking, Field: field, Message: msg, Fix: fix})
		}
	} else {
		r.add(Entry{Check: CheckMapping, Status: Fine,
			Message: fmt.Sprintf("every mapped field of %s is in the org and writable by the integration user", strings.Join(objects, ", "))})
	}
	d.checkPermissions(r, unique)
}

// splitFix parts a preflight problem into what is wrong and the fix after its last "; ",
// which is how preflight words every problem that has one.
func splitFix(msg string) (problem, fix string) {
	if i := strings.LastIndex(msg, "; "); i >= 0 {
		return msg[:i], msg[i+2:]
	}
	return msg, "fix the mapping file or the org so that the field fits"
}

// checkPermissions says what the describe calls prove about the integration user's
// permissions and what they cannot: describe shows object and field access, not system
// permissions such as View All Data (reference/salesforce.md §8.7).
func (d *Doctor) checkPermissions(r *Report, uniqueKeys bool) {
	msg := "object access and field-level security are checked through describe above. " +
		"View All Data cannot be checked from here"
	if uniqueKeys {
		r.add(Entry{Check: CheckPermissions, Status: Fine, Message: msg + "; it is not needed, every upsert key is unique"})
		return
	}
	r.add(Entry{Check: CheckPermissions, Status: Adapted, Field: "View All Data",
		Message: msg + "; it is needed, because an upsert key is not unique",
		Fix:     "give the integration user View All Data (a permission set), or mark the upsert keys Unique"})
}

// SuggestMapping fits the mapping to the org's describe (mapping.Suggest) and adds to its
// review what preflight would still block on in the fitted mapping, with the fix (a
// restricted picklist's value_map lines, say).
func (d *Doctor) SuggestMapping(ctx context.Context, sc runstore.Scope) (*mapping.Suggestion, error) {
	if d.Salesforce == nil {
		return nil, errors.New("doctor: no Salesforce client to describe the org with")
	}
	m := d.Mapping
	if m == nil {
		m = mapping.Default()
	}
	s, err := mapping.Suggest(ctx, m, d.describe)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(s.Mapping)
	if err != nil {
		return nil, err
	}
	fitted, err := mapping.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("the suggested mapping does not load: %w", err)
	}
	objects, _ := fitted.WithParents(sc.Objects)
	_, err = pipeline.Preflight(ctx, d.Salesforce, fitted, objects, sc)
	var pe *pipeline.PreflightError
	if err != nil && !errors.As(err, &pe) {
		return nil, err
	}
	if pe != nil {
		for _, p := range pe.Problems {
			var object, field string
			if target, _, ok := strings.Cut(p, ": "); ok {
				var sobject string
				sobject, field, _ = strings.Cut(target, ".")
				for _, o := range fitted.Objects {
					if strings.EqualFold(o.SObject, sobject) {
						object = o.Name
					}
				}
			}
			s.Note(object, field, "preflight still blocks: "+p)
		}
	}
	return s, nil
}

// describe is the org's describe of sobject, nil when the org has no such object.
func (d *Doctor) describe(ctx context.Context, sobject string) (*salesforce.SObjectDescribe, error) {
	desc, err := d.Salesforce.Describe(ctx, sobject)
	var apiErr *salesforce.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		return nil, nil
	}
	return desc, err
}
