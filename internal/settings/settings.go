// Package settings keeps the connection's settings, as Skilljar admins know them from the
// dashboard, in Redis, and refuses to save any that fail validation.
package settings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sjbackfill/backfill/internal/config"
	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/rediskey"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// Contact match rules: which Contact a student links to when several share its email.
const (
	MatchCreated  = "created"  // the most recently created, as Skilljar's own integration does
	MatchModified = "modified" // the most recently modified
)

// Settings are the connection's settings. The zero value of every field means its default.
type Settings struct {
	// Domains is the allow-list of Skilljar domain names; empty means every domain.
	Domains []string `json:"domains"`
	// Objects are the mapping objects to sync; empty means every mapped object.
	Objects []string `json:"objects"`
	// Environment is the Salesforce login host: "production", "sandbox" or a My Domain URL;
	// empty means the SALESFORCE_ENVIRONMENT the process was started with.
	Environment string `json:"environment"`
	// LinkContacts sets each student's Contact from a Contact with the same email;
	// CreateContacts creates the Contact when none matches, and needs LinkContacts.
	LinkContacts   bool `json:"link_contacts"`
	CreateContacts bool `json:"create_contacts"`
	// ContactMatch is MatchCreated or MatchModified. Defaults to MatchCreated.
	ContactMatch string `json:"contact_match"`
	// SinkMode is how runs write to Salesforce: auto, collections or bulk. Defaults to auto.
	SinkMode string `json:"sink_mode"`
	// UpdatedAt is when the settings were last saved; nil when they never were.
	UpdatedAt *time.Time `json:"updated_at"`
}

// Defaults are the settings before anyone saved any.
func Defaults() Settings {
	return Settings{Domains: []string{}, Objects: []string{}, ContactMatch: MatchCreated, SinkMode: runstore.SinkAuto}
}

// Scope is the run scope the settings describe: what a run started without its own choices,
// and every scheduled catch-up, covers.
func (s Settings) Scope() runstore.Scope {
	return runstore.Scope{
		Domains: s.Domains, Objects: s.Objects, SinkMode: s.SinkMode,
		LinkContacts: s.LinkContacts, CreateContacts: s.CreateContacts, ContactMatch: s.ContactMatch,
	}
}

// FieldError is one problem with one field, with the fix in its message.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in a set of settings; nothing was saved.
type ValidationError struct {
	Problems []FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Field + ": " + p.Message
	}
	return "invalid settings: " + strings.Join(msgs, "; ")
}

// DomainLister lists the Skilljar organization's domains.
type DomainLister interface {
	Domains(ctx context.Context) ([]skilljar.Domain, error)
}

// Config configures a Store.
type Config struct {
	// Key is the Redis key holding the settings. Defaults to rediskey.Prefix + "settings".
	Key string
	// Domains checks domain names against Skilljar. When nil (no Skilljar key configured)
	// domain names are not checked, as the engine does not check them either.
	Domains DomainLister
	// Objects are the object names the mapping maps. Defaults to every object the
	// mapping knows.
	Objects []string
	// LoginOrigins are the login origins an environment may name besides Salesforce's own
	// (SALESFORCE_LOGIN_ORIGINS).
	LoginOrigins []string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Store reads and writes the settings.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
}

// New returns a store on rdb.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if cfg.Key == "" {
		cfg.Key = rediskey.Prefix + "settings"
	}
	if len(cfg.Objects) == 0 {
		cfg.Objects = slices.Clone(mapping.Order)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{rdb: rdb, cfg: cfg}
}

// Get returns the saved settings, or the defaults when none were ever saved.
func (s *Store) Get(ctx context.Context) (Settings, error) {
	raw, err := s.rdb.Get(ctx, s.cfg.Key).Bytes()
	if errors.Is(err, redis.Nil) {
		return Defaults(), nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("read settings: %w", err)
	}
	var st Settings
	if err := json.Unmarshal(raw, &st); err != nil {
		return Settings{}, fmt.Errorf("decode settings: %w", err)
	}
	return st, nil
}

// Put validates and saves the settings and returns them as saved: defaults filled in,
// lists sorted without duplicates. Invalid settings get a *ValidationError naming every
// problem, and nothing is saved.
func (s *Store) Put(ctx context.Context, st Settings) (Settings, error) {
	st, err := s.Validate(ctx, st)
	if err != nil {
		return Settings{}, err
	}
	now := s.cfg.Now().UTC()
	st.UpdatedAt = &now
	raw, err := json.Marshal(st)
	if err != nil {
		return Settings{}, fmt.Errorf("encode settings: %w", err)
	}
	if err := s.rdb.Set(ctx, s.cfg.Key, raw, 0).Err(); err != nil {
		return Settings{}, fmt.Errorf("save settings: %w", err)
	}
	return st, nil
}

// Validate returns the settings normalized, or a *ValidationError naming every problem.
// Other errors mean Skilljar could not be asked about the domains.
func (s *Store) Validate(ctx context.Context, st Settings) (Settings, error) {
	var problems []FieldError
	add := func(field, format string, args ...any) {
		problems = append(problems, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	st.Domains = sortedSet(st.Domains)
	if len(st.Domains) > 0 && s.cfg.Domains != nil {
		known, err := s.cfg.Domains.Domains(ctx)
		if err != nil {
			return Settings{}, fmt.Errorf("list Skilljar domains to check the settings: %w", err)
		}
		names := make([]string, len(known))
		for i, d := range known {
			names[i] = d.Name
		}
		if unknown := missing(st.Domains, names); len(unknown) > 0 {
			add("domains", "%s %s not a domain of this Skilljar organization; choose from %s",
				quoteAll(unknown), isAre(len(unknown)), strings.Join(sortedSet(names), ", "))
		}
	}

	st.Objects = sortedSet(st.Objects)
	if unknown := missing(st.Objects, s.cfg.Objects); len(unknown) > 0 {
		add("objects", "%s %s not a mapped object; choose from %s", quoteAll(unknown), isAre(len(unknown)), strings.Join(s.cfg.Objects, ", "))
	}

	if st.Environment != "" {
		if low := strings.ToLower(st.Environment); low == "production" || low == "sandbox" {
			st.Environment = low
		} else if _, err := config.LoginURL(st.Environment, s.cfg.LoginOrigins); err != nil {
			add("environment", "%q is not production, sandbox or a My Domain URL over https such as https://acme.my.salesforce.com (other login origins must be listed in SALESFORCE_LOGIN_ORIGINS); leave it empty to use SALESFORCE_ENVIRONMENT", st.Environment)
		} else {
			st.Environment = strings.TrimRight(st.Environment, "/")
		}
	}

	if st.CreateContacts && !st.LinkContacts {
		add("create_contacts", "Create Contacts needs Link Contacts: turn Link Contacts on, or Create Contacts off")
	}

	switch st.ContactMatch {
	case "":
		st.ContactMatch = MatchCreated
	case MatchCreated, MatchModified:
	default:
		add("contact_match", "%q is not a contact match rule; use %s (most recently created Contact) or %s (most recently modified)", st.ContactMatch, MatchCreated, MatchModified)
	}

	switch st.SinkMode {
	case "":
		st.SinkMode = runstore.SinkAuto
	case runstore.SinkAuto, runstore.SinkCollections, runstore.SinkBulk:
	default:
		add("sink_mode", "%q is not a sink mode; use %s, %s or %s", st.SinkMode, runstore.SinkAuto, runstore.SinkCollections, runstore.SinkBulk)
	}

	if len(problems) > 0 {
		return Settings{}, &ValidationError{Problems: problems}
	}
	return st, nil
}

// sortedSet returns the values sorted without duplicates, never nil, so the saved JSON
// says [] rather than null.
func sortedSet(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return append([]string{}, slices.Compact(out)...)
}

// missing returns the values not in known, in order.
func missing(values, known []string) []string {
	var out []string
	for _, v := range values {
		if !slices.Contains(known, v) {
			out = append(out, v)
		}
	}
	return out
}

func quoteAll(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
