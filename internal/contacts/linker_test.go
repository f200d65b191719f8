package contacts_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
	"github.com/sjbackfill/backfill/internal/contacts"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

// seedKey is an external id added to the simulated Contact so tests can insert and later
// modify Contacts through collections upserts; the Linker never uses it.
const seedKey = "Seed_Key__c"

type org struct {
	sim    *salesforcesim.Sim
	client *salesforce.Client
	uris   *uriMeter
	// clock dates the simulator's records: tests advance it to order them.
	clock *clock.Manual
}

// uriMeter records the longest request URI the client sends.
type uriMeter struct {
	mu      sync.Mutex
	longest int
}

func (m *uriMeter) RoundTrip(req *http.Request) (*http.Response, error) {
	m.mu.Lock()
	m.longest = max(m.longest, len(req.URL.RequestURI()))
	m.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// stats reports the queries the org answered and the longest request URI sent.
func (o *org) stats() (queries, longest int) {
	for _, c := range o.sim.Calls() {
		if c.Endpoint == "GET query" {
			queries += c.Count
		}
	}
	o.uris.mu.Lock()
	defer o.uris.mu.Unlock()
	return queries, o.uris.longest
}

func newOrg(t testing.TB) *org {
	t.Helper()
	schema := salesforcesim.DefaultSchema()
	for i := range schema {
		if schema[i].Name == "Contact" {
			schema[i].Fields = append(schema[i].Fields, salesforcesim.Field{
				Name: seedKey, Label: "Seed Key", Type: salesforcesim.TypeString, Length: 40,
				Createable: true, Updateable: true, Nillable: true, ExternalID: true, Unique: true, Custom: true,
			})
		}
	}
	now := clock.NewManual(time.Now())
	sim, err := salesforcesim.Start(salesforcesim.Config{Schema: schema, Now: now.Now}, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start the simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	tok := sim.MintTokens("api refresh_token")
	uris := &uriMeter{}
	client, err := salesforce.New(salesforce.Config{
		Tokens:      salesforce.StaticTokens(salesforce.Credentials{AccessToken: tok.AccessToken, InstanceURL: tok.InstanceURL}),
		HTTPClient:  &http.Client{Transport: uris},
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &org{sim: sim, client: client, uris: uris, clock: now}
}

// seed writes Contacts as given ({seedKey, Email, LastName, ...}) and returns their Ids by
// seed key.
func (o *org) seed(t *testing.T, recs ...salesforce.Record) map[string]string {
	t.Helper()
	res, err := o.client.Upsert(context.Background(), "Contact", seedKey, recs)
	if err != nil {
		t.Fatalf("seed Contacts: %v", err)
	}
	ids := map[string]string{}
	for i, r := range res {
		if !r.Success {
			t.Fatalf("seed Contact %v: %+v", recs[i], r.Errors)
		}
		ids[r.ExternalID] = r.ID
	}
	return ids
}

func (o *org) link(t *testing.T, opts contacts.Options, people ...contacts.Person) contacts.Result {
	t.Helper()
	res, err := contacts.NewLinker(o.client, opts).Link(context.Background(), people)
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	return res
}

func TestLinkMatchesHostileEmailsExactlyAndIgnoringCase(t *testing.T) {
	o := newOrg(t)
	// Each real Contact has a decoy that a broken escape would match instead, or as well.
	ids := o.seed(t,
		salesforce.Record{seedKey: "quote", "Email": "O'Brien+x@Example.com", "LastName": "O'Brien"},
		salesforce.Record{seedKey: "quote-decoy", "Email": "obrien+x@example.com", "LastName": "Decoy"},
		salesforce.Record{seedKey: "backslash", "Email": `back\slash@example.com`, "LastName": "Back"},
		salesforce.Record{seedKey: "backslash-decoy", "Email": `back\\slash@example.com`, "LastName": "Decoy"},
		salesforce.Record{seedKey: "both", "Email": `it\'s@example.com`, "LastName": "Both"},
		salesforce.Record{seedKey: "both-decoy", "Email": `it's@example.com`, "LastName": "Decoy"},
		salesforce.Record{seedKey: "dquote", "Email": `say"hi"@example.com`, "LastName": "Quote"},
		salesforce.Record{seedKey: "mixed", "Email": "Mixed.Case@Example.COM", "LastName": "Case"},
	)
	before := o.sim.Count("Contact")

	res := o.link(t, contacts.Options{},
		contacts.Person{Email: "o'brien+x@example.com"},
		contacts.Person{Email: `BACK\SLASH@example.com`},
		contacts.Person{Email: `IT\'S@EXAMPLE.COM`},
		contacts.Person{Email: `Say"Hi"@example.com`},
		contacts.Person{Email: " mixed.case@example.com "},
		contacts.Person{Email: "nobody@example.com"},
		contacts.Person{Email: ""},
	)
	want := map[string]string{
		"o'brien+x@example.com":  ids["quote"],
		`back\slash@example.com`: ids["backslash"],
		`it\'s@example.com`:      ids["both"],
		`say"hi"@example.com`:    ids["dquote"],
		"mixed.case@example.com": ids["mixed"],
	}
	for email, id := range want {
		if got := res.ContactIDs[email]; got != id {
			t.Errorf("%s linked to %q, want %q", email, got, id)
		}
	}
	if len(res.ContactIDs) != len(want) || res.Linked != 5 || res.Created != 0 || res.Unlinked != 2 {
		t.Errorf("result = %+v, want 5 linked and 2 unlinked", res)
	}
	if n := o.sim.Count("Contact"); n != before {
		t.Errorf("Create off, yet %d Contacts were created", n-before)
	}
}

func TestLinkPicksTheNewestContactByCreatedOrModifiedDate(t *testing.T) {
	o := newOrg(t)
	older := o.seed(t, salesforce.Record{seedKey: "older", "Email": "dup@example.com", "LastName": "Older"})["older"]
	o.clock.Advance(time.Second)
	newer := o.seed(t, salesforce.Record{seedKey: "newer", "Email": "DUP@example.com", "LastName": "Newer"})["newer"]
	o.clock.Advance(time.Second)
	o.seed(t, salesforce.Record{seedKey: "older", "FirstName": "Touched"})

	dup := contacts.Person{Email: "Dup@Example.com"}
	if got := o.link(t, contacts.Options{}, dup).ContactIDs["dup@example.com"]; got != newer {
		t.Errorf("Match created linked %s, want the most recently created %s", got, newer)
	}
	if got := o.link(t, contacts.Options{Match: contacts.MatchModified}, dup).ContactIDs["dup@example.com"]; got != older {
		t.Errorf("Match modified linked %s, want the most recently modified %s", got, older)
	}
}

func TestLinkCreatesMissingContactsOnceAndAReplayCreatesNothing(t *testing.T) {
	o := newOrg(t)
	existing := o.seed(t, salesforce.Record{seedKey: "ada", "Email": "ada@example.com", "LastName": "Lovelace"})["ada"]
	longFirst := strings.Repeat("Ж", 50)
	people := []contacts.Person{
		{Email: "ada@example.com", FirstName: "Ada"},
		{Email: "Grace.Hopper@Example.com", FirstName: "Grace", LastName: "Hopper"},
		{Email: "grace.hopper@example.com", FirstName: "G.", LastName: "H."}, // the same person again
		{Email: "no-last-name@example.com", FirstName: longFirst},
		{Email: "o'neil+x@example.com", LastName: "O'Neil"},
	}
	before := o.sim.Count("Contact")

	first := o.link(t, contacts.Options{Create: true}, people...)
	if first.Linked != 1 || first.Created != 3 || first.Unlinked != 0 || first.ContactIDs["ada@example.com"] != existing {
		t.Fatalf("first call = %+v, want ada linked and 3 created", first)
	}
	if n := o.sim.Count("Contact") - before; n != 3 {
		t.Fatalf("%d Contacts created, want 3 (one per distinct new email)", n)
	}
	created, ok := o.sim.RecordByExternalID("Contact", "Id", first.ContactIDs["no-last-name@example.com"])
	if !ok || created["LastName"] != "no-last-name" || created["FirstName"] != strings.Repeat("Ж", 40) {
		t.Errorf("Contact without a last name = %v, want LastName from the email and FirstName cut to 40", created)
	}
	grace, _ := o.sim.RecordByExternalID("Contact", "Id", first.ContactIDs["grace.hopper@example.com"])
	if grace["Email"] != "Grace.Hopper@Example.com" || grace["LastName"] != "Hopper" {
		t.Errorf("Grace's Contact = %v, want the first spelling of her email and name", grace)
	}

	replay := o.link(t, contacts.Options{Create: true}, people...)
	if replay.Created != 0 || replay.Linked != 4 {
		t.Errorf("replay = %+v, want all 4 linked and nothing created", replay)
	}
	for email, id := range first.ContactIDs {
		if replay.ContactIDs[email] != id {
			t.Errorf("replay linked %s to %s, first call to %s", email, replay.ContactIDs[email], id)
		}
	}
	if n := o.sim.Count("Contact") - before; n != 3 {
		t.Errorf("after the replay %d Contacts exist beyond the seed, want 3", n)
	}
}

func TestLinkReportsContactsSalesforceRefusedToCreate(t *testing.T) {
	o := newOrg(t)
	res := o.link(t, contacts.Options{Create: true},
		contacts.Person{Email: "not-an-email", LastName: "Broken"},
		contacts.Person{Email: "fine@example.com", LastName: "Fine"},
	)
	if res.Created != 1 || res.Unlinked != 1 || len(res.Rejected) != 1 {
		t.Fatalf("result = %+v, want one created and one rejected", res)
	}
	r := res.Rejected[0]
	if r.Email != "not-an-email" || len(r.Errors) == 0 || r.Errors[0].StatusCode != "INVALID_EMAIL_ADDRESS" {
		t.Errorf("rejection = %+v, want INVALID_EMAIL_ADDRESS for not-an-email", r)
	}
}

func TestLinkChunksThousandsOfEmailsUnderTheURILimit(t *testing.T) {
	o := newOrg(t)
	const n = 3000
	people := make([]contacts.Person, n)
	var seeds []salesforce.Record
	for i := range people {
		// Quotes, pluses and backslashes grow threefold when URL-encoded.
		people[i].Email = fmt.Sprintf("learner.o'hara+%04d\\tag@Example-University.edu", i)
		if i%100 == 7 {
			seeds = append(seeds, salesforce.Record{seedKey: fmt.Sprint(i), "Email": people[i].Email, "LastName": "Seed"})
		}
	}
	ids := o.seed(t, seeds...)

	res := o.link(t, contacts.Options{}, people...)
	queries, longest := o.stats()
	t.Logf("%d emails took %d queries; the longest URI was %d bytes", n, queries, longest)
	if queries < 10 || longest > contacts.DefaultMaxURILength {
		t.Errorf("%d queries, longest URI %d bytes: want several queries, none over %d", queries, longest, contacts.DefaultMaxURILength)
	}
	if res.Linked != len(seeds) || res.Unlinked != n-len(seeds) {
		t.Errorf("linked %d and unlinked %d, want %d and %d", res.Linked, res.Unlinked, len(seeds), n-len(seeds))
	}
	for _, s := range seeds {
		email := strings.ToLower(s["Email"].(string))
		if res.ContactIDs[email] != ids[s[seedKey].(string)] {
			t.Errorf("%s linked to %q, want %q", email, res.ContactIDs[email], ids[s[seedKey].(string)])
		}
	}

	// Salesforce does refuse long URIs: a linker allowed to exceed the limit fails.
	_, err := contacts.NewLinker(o.client, contacts.Options{MaxURILength: 1 << 20}).Link(context.Background(), people)
	var apiErr *salesforce.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 414 {
		t.Errorf("one huge query: %v, want a 414", err)
	}
}

// fixedOrg answers every query with the same Contacts, for choices the simulator's clock
// cannot stage, such as equal dates.
type fixedOrg []map[string]any

func (f fixedOrg) Query(_ context.Context, _ string, fn func(map[string]any) error) error {
	for _, rec := range f {
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

func (f fixedOrg) Create(context.Context, string, []salesforce.Record) ([]salesforce.Result, error) {
	return nil, errors.New("fixedOrg creates nothing")
}

func TestLinkBreaksTiesDeterministically(t *testing.T) {
	contact := func(id, created, modified string) map[string]any {
		return map[string]any{"Id": id, "Email": "tie@example.com", "CreatedDate": created, "LastModifiedDate": modified}
	}
	const t1, t2, t3 = "2024-01-01T00:00:00.000+0000", "2024-02-01T00:00:00.000+0000", "2024-03-01T00:00:00.000+0000"
	for _, tc := range []struct {
		name, match, want string
		org               fixedOrg
	}{
		{"created tie goes to the later modified", contacts.MatchCreated, "003B",
			fixedOrg{contact("003A", t2, t2), contact("003B", t2, t3), contact("003C", t1, t3)}},
		{"modified tie goes to the later created", contacts.MatchModified, "003A",
			fixedOrg{contact("003A", t2, t3), contact("003B", t1, t3)}},
		{"full tie goes to the greater Id in any order", contacts.MatchCreated, "003Z",
			fixedOrg{contact("003M", t2, t2), contact("003Z", t2, t2), contact("003A", t2, t2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range []fixedOrg{tc.org, reversed(tc.org)} {
				res, err := contacts.NewLinker(order, contacts.Options{Match: tc.match}).Link(context.Background(), []contacts.Person{{Email: "tie@example.com"}})
				if err != nil {
					t.Fatal(err)
				}
				if got := res.ContactIDs["tie@example.com"]; got != tc.want {
					t.Errorf("picked %s, want %s", got, tc.want)
				}
			}
		})
	}
}

func reversed(f fixedOrg) fixedOrg {
	out := make(fixedOrg, len(f))
	for i, rec := range f {
		out[len(f)-1-i] = rec
	}
	return out
}

func TestLinkRefusesAnUnknownMatchSetting(t *testing.T) {
	_, err := contacts.NewLinker(fixedOrg{}, contacts.Options{Match: "newest"}).Link(context.Background(), []contacts.Person{{Email: "a@example.com"}})
	if err == nil || !strings.Contains(err.Error(), `"newest"`) {
		t.Errorf("Match newest: %v, want an error naming it", err)
	}
}
