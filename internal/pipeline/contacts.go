package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sjbackfill/backfill/internal/contacts"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// contactObject names the counters of Link Contacts: Read counts the students considered,
// Written (as Updated) those linked to a Contact, Skipped those left unlinked.
const contactObject = "contact"

// linkContacts finds (and, with Create Contacts on, creates) the Contact of every learner of
// the page from start on, as Skilljar's integration does, and keeps their Ids on the page.
// It runs again for a page resumed after a crash: the Contacts it created are found then.
func (lp *learnerPage) linkContacts(ctx context.Context, start int) (*runstore.Event, error) {
	s := lp.s
	if s.e.Contacts == nil {
		return nil, errors.New("the Link Contacts setting is on but the engine has no Salesforce client for Contacts")
	}
	var people []contacts.Person
	for j := start; j < len(lp.ids); j++ {
		if lp.passOver(j) {
			continue
		}
		src := lp.students[j]
		people = append(people, contacts.Person{Email: str(src["email"]), FirstName: str(src["first_name"]), LastName: str(src["last_name"])})
	}
	lp.contacts = make([]string, len(lp.ids))
	if len(people) == 0 {
		return nil, nil
	}
	linker := contacts.NewLinker(s.e.Contacts, contacts.Options{Create: s.run.Scope.CreateContacts, Match: s.run.Scope.ContactMatch})
	res, err := linker.Link(ctx, people)
	if err != nil {
		return nil, fmt.Errorf("link Contacts: %w", err)
	}
	for j := start; j < len(lp.ids); j++ {
		if !lp.passOver(j) {
			lp.contacts[j] = res.ContactIDs[strings.ToLower(str(lp.students[j]["email"]))]
		}
	}
	msg := fmt.Sprintf("Link Contacts: %d linked to an existing Contact, %d Contacts created, %d left unlinked", res.Linked, res.Created, res.Unlinked)
	if len(res.Rejected) > 0 {
		msg += fmt.Sprintf("; Salesforce refused to create %d (first: %s)", len(res.Rejected), res.Rejected[0].Email)
	}
	return &runstore.Event{Level: "info", Kind: "contacts_linked", Message: msg,
		Data: map[string]any{"linked": res.Linked, "created": res.Created, "unlinked": res.Unlinked}}, nil
}

// setContact puts learner j's Contact Id on the row when Contacts are linked and the object
// maps a Contact lookup; an unlinked learner leaves the lookup as Salesforce has it.
func (lp *learnerPage) setContact(object string, r pendingRow, j int) bool {
	if lp.contacts == nil || lp.contacts[j] == "" || r.row == nil {
		return false
	}
	o, _ := lp.s.e.Mapping.Object(object)
	if o.ContactField == "" {
		return false
	}
	r.row[o.ContactField] = lp.contacts[j]
	return true
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
