// Package contacts links Skilljar students to Salesforce Contacts by email as Skilljar's own
// integration does: the newest Contact with the email wins, and a missing one is created
// when the Create Contacts setting is on.
package contacts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sjbackfill/backfill/internal/salesforce"
)

// Salesforce is what linking needs from the org.
type Salesforce interface {
	Query(ctx context.Context, soql string, fn func(rec map[string]any) error) error
	Create(ctx context.Context, sobject string, recs []salesforce.Record) ([]salesforce.Result, error)
}

// Ways to choose among several Contacts with one email. Skilljar's two articles disagree on
// which it uses (reference/skilljar.md §8), so it is a setting.
const (
	MatchCreated  = "created"  // the most recently created Contact
	MatchModified = "modified" // the most recently modified Contact
)

// DefaultMaxURILength is the request-URI limit Salesforce answers 414 beyond.
const DefaultMaxURILength = 16384

// Options configure a Linker. The zero value links to existing Contacts only, newest created.
type Options struct {
	// Create makes a Contact for an email no Contact has ("Create New Contacts in SFDC").
	Create bool
	// Match is MatchCreated (the default) or MatchModified.
	Match string
	// MaxURILength is the longest request URI a query may use. Defaults to
	// DefaultMaxURILength.
	MaxURILength int
}

// Person is a student to link.
type Person struct {
	Email, FirstName, LastName string
}

// Rejection is an email whose Contact Salesforce refused to create.
type Rejection struct {
	Email  string
	Errors []salesforce.RecordError
}

// Result says how a call went. Every distinct email ends in exactly one of Linked, Created
// or Unlinked; a person without an email counts as Unlinked.
type Result struct {
	// ContactIDs maps each linked or created email, lower-cased, to its Contact Id.
	ContactIDs map[string]string
	Linked     int // matched an existing Contact
	Created    int // got a new Contact
	Unlinked   int // no Contact: none matched and none was created
	// Rejected lists the Contacts Salesforce refused to create, with its errors; they are
	// among the Unlinked.
	Rejected []Rejection
}

// Linker finds (and optionally creates) the Contacts for batches of students.
type Linker struct {
	sf   Salesforce
	opts Options
	err  error // a bad option, reported by every Link
}

// NewLinker returns a linker over sf. A bad option makes every Link fail with an error that
// names it.
func NewLinker(sf Salesforce, opts Options) *Linker {
	opts.Match = cmp.Or(opts.Match, MatchCreated)
	opts.MaxURILength = cmp.Or(opts.MaxURILength, DefaultMaxURILength)
	l := &Linker{sf: sf, opts: opts}
	if opts.Match != MatchCreated && opts.Match != MatchModified {
		l.err = fmt.Errorf("contacts: Match %q: want %q or %q", opts.Match, MatchCreated, MatchModified)
	}
	return l
}

// Link finds the Contact of every person's email, and creates the missing ones when Create
// is on. Emails match case-insensitively and are looked up once per call however often they
// appear. The query that decides what to create runs just before the creation, so calling
// Link again with the same people (a replay) links to the Contacts the first call created
// instead of creating more. Two calls running at once for the same new email can still
// both create it; callers should not link one email from two places at the same time.
func (l *Linker) Link(ctx context.Context, people []Person) (Result, error) {
	res := Result{ContactIDs: map[string]string{}}
	if l.err != nil {
		return res, l.err
	}
	var emails []string // lower-cased, in first-seen order
	who := map[string]Person{}
	for _, p := range people {
		p.Email = strings.TrimSpace(p.Email)
		key := strings.ToLower(p.Email)
		if key == "" {
			res.Unlinked++
			continue
		}
		seen, ok := who[key]
		if !ok {
			emails = append(emails, key)
			who[key] = p
			continue
		}
		seen.FirstName, seen.LastName = cmp.Or(seen.FirstName, p.FirstName), cmp.Or(seen.LastName, p.LastName)
		who[key] = seen
	}

	found, err := l.find(ctx, emails)
	if err != nil {
		return res, err
	}
	var missing []string
	for _, key := range emails {
		if id, ok := found[key]; ok {
			res.ContactIDs[key] = id
			res.Linked++
		} else {
			missing = append(missing, key)
		}
	}
	if !l.opts.Create || len(missing) == 0 {
		res.Unlinked += len(missing)
		return res, nil
	}

	recs := make([]salesforce.Record, len(missing))
	for i, key := range missing {
		recs[i] = newContact(who[key])
	}
	results, err := l.sf.Create(ctx, "Contact", recs)
	if err != nil {
		return res, fmt.Errorf("contacts: create %d Contacts: %w", len(recs), err)
	}
	for i, r := range results {
		key := missing[i]
		if r.Success {
			res.ContactIDs[key] = r.ID
			res.Created++
			continue
		}
		res.Unlinked++
		res.Rejected = append(res.Rejected, Rejection{Email: who[key].Email, Errors: r.Errors})
	}
	return res, nil
}

// Lengths of Contact's standard name fields; longer values would be refused with
// STRING_TOO_LONG, and a cut name is better than no Contact.
const (
	firstNameLength = 40
	lastNameLength  = 80
)

// newContact is the Contact created for p. LastName is required, so an empty one becomes
// the email's local part.
func newContact(p Person) salesforce.Record {
	last := strings.TrimSpace(p.LastName)
	if last == "" {
		last, _, _ = strings.Cut(p.Email, "@")
	}
	rec := salesforce.Record{"Email": p.Email, "LastName": truncate(last, lastNameLength)}
	if first := strings.TrimSpace(p.FirstName); first != "" {
		rec["FirstName"] = truncate(first, firstNameLength)
	}
	return rec
}

// truncate cuts s to at most n characters, never inside a character.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// contact is one queried Contact.
type contact struct {
	id                string
	created, modified time.Time
}

// newer says whether a should be picked over b: the later date the Match setting names,
// then the later other date, then the greater Id, so equal dates still pick the same one
// every time.
func (l *Linker) newer(a, b contact) bool {
	first, second := a.created.Compare(b.created), a.modified.Compare(b.modified)
	if l.opts.Match == MatchModified {
		first, second = second, first
	}
	return cmp.Or(first, second, strings.Compare(a.id, b.id)) > 0
}

const (
	selectPrefix = "SELECT Id, Email, CreatedDate, LastModifiedDate FROM Contact WHERE Email IN ("
	selectSuffix = ")"
	// queryOverhead is the part of a query's URI besides "q=…": the instance URL and the
	// versioned path, "https://{MyDomain}.my.salesforce.com/services/data/v62.0/query?".
	// Whether Salesforce's limit counts the host is UNCONFIRMED, so it is counted, generously.
	queryOverhead = 256
)

// find returns the chosen Contact Id of every email that has one.
func (l *Linker) find(ctx context.Context, emails []string) (map[string]string, error) {
	best := map[string]contact{}
	chunks, err := l.chunks(emails)
	if err != nil {
		return nil, err
	}
	for _, chunk := range chunks {
		soql := selectPrefix + strings.Join(chunk, ",") + selectSuffix
		err := l.sf.Query(ctx, soql, func(rec map[string]any) error {
			c, email, err := parseContact(rec)
			if err != nil {
				return err
			}
			key := strings.ToLower(email)
			if old, ok := best[key]; !ok || l.newer(c, old) {
				best[key] = c
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("contacts: query Contacts by email: %w", err)
		}
	}
	ids := make(map[string]string, len(best))
	for key, c := range best {
		ids[key] = c.id
	}
	return ids, nil
}

// chunks splits emails into IN lists of quoted literals whose query URI stays within
// MaxURILength. URL query escaping maps each byte on its own, so the encoded length of a
// query is the sum of its parts' encoded lengths.
func (l *Linker) chunks(emails []string) ([][]string, error) {
	budget := l.opts.MaxURILength - queryOverhead
	base := len("q=") + escapedLen(selectPrefix) + escapedLen(selectSuffix)
	comma := escapedLen(",")
	var chunks [][]string
	var cur []string
	size := base
	for _, email := range emails {
		lit := salesforce.QuoteString(email)
		n := escapedLen(lit)
		if base+n > budget {
			return nil, fmt.Errorf("contacts: the email %q alone makes a query longer than %d bytes", email, l.opts.MaxURILength)
		}
		if len(cur) > 0 && size+comma+n > budget {
			chunks, cur, size = append(chunks, cur), nil, base
		}
		if len(cur) > 0 {
			size += comma
		}
		cur, size = append(cur, lit), size+n
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks, nil
}

func escapedLen(s string) int { return len(url.QueryEscape(s)) }

// parseContact reads a queried Contact. Salesforce writes dateTimes as
// 2024-01-31T12:00:00.000+0000.
func parseContact(rec map[string]any) (c contact, email string, err error) {
	c.id, _ = rec["Id"].(string)
	email, _ = rec["Email"].(string)
	if c.id == "" {
		return c, "", errors.New("contacts: a queried Contact has no Id")
	}
	for field, dst := range map[string]*time.Time{"CreatedDate": &c.created, "LastModifiedDate": &c.modified} {
		s, _ := rec[field].(string)
		t, err := time.Parse("2006-01-02T15:04:05.000-0700", s)
		if err != nil {
			if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return c, "", fmt.Errorf("contacts: Contact %s has %s %q, not a dateTime", c.id, field, s)
			}
		}
		*dst = t
	}
	return c, email, nil
}
