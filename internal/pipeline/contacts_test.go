package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

func TestLinkContactsLinksStudentsAndProgressByEmailAndCreatesTheMissingOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, options{skilljar: skilljarsim.Config{Users: 150}})
	org := e.sj.Org()
	sf := e.sfc

	// Existing Contacts for the first learners, under a differently cased email; the second
	// learner has two, and the newer must win.
	var existing []salesforce.Record
	for _, l := range org.Learners[:10] {
		existing = append(existing, salesforce.Record{"LastName": "Existing", "Email": strings.ToUpper(l.Email)})
	}
	res, err := sf.Create(e.ctx, "Contact", existing)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	newer, err := sf.Create(e.ctx, "Contact", []salesforce.Record{{"LastName": "Newer", "Email": org.Learners[1].Email}})
	if err != nil {
		t.Fatal(err)
	}

	e.startWorker(t)
	run := e.wait(t, e.start(t, runstore.Scope{LinkContacts: true, CreateContacts: true}).ID, 60*time.Second)
	e.requireExact(t, run)
	contactsAfterFirst := e.sf.Count("Contact")
	if want := len(org.Learners) + 1; contactsAfterFirst != want {
		t.Fatalf("%d Contacts after linking %d learners (10 existed, 1 duplicate): want %d", contactsAfterFirst, len(org.Learners), want)
	}
	for i, l := range org.Learners {
		st, _ := e.sf.RecordByExternalID("skilljar__Student__c", "skilljar__Obfuscated_Id__c", l.ID)
		cid, _ := st["skilljar__Contact__c"].(string)
		if cid == "" {
			t.Fatalf("student %s (%s) is not linked", l.ID, l.Email)
		}
		switch {
		case i == 1 && cid != newer[0].ID:
			t.Fatalf("learner with two Contacts linked to %s, want the most recently created %s", cid, newer[0].ID)
		case i != 1 && i < 10 && cid != res[i].ID:
			t.Fatalf("learner %d linked to %s, want its existing Contact %s", i, cid, res[i].ID)
		}
		for _, p := range org.ProgressOf(l.ID) {
			pr, _ := e.sf.RecordByExternalID("skilljar__Course_Progress__c", "skilljar__Obfuscated_Id__c", p.CourseProgressID)
			if pr["skilljar__Contact__c"] != cid {
				t.Fatalf("progress %s has Contact %v, its student %s", p.CourseProgressID, pr["skilljar__Contact__c"], cid)
			}
		}
	}
	if c := run.Counters["contact"]; !c.Balanced() || c.Skipped != 0 || c.Written == 0 {
		t.Fatalf("contact counters %+v", c)
	}

	// A second run finds every Contact and creates none.
	again := e.wait(t, e.start(t, runstore.Scope{LinkContacts: true, CreateContacts: true}).ID, 60*time.Second)
	if again.State != runstore.Succeeded || e.sf.Count("Contact") != contactsAfterFirst {
		t.Fatalf("second run %s; Contacts %d → %d: a replay must not create Contacts again", again.State, contactsAfterFirst, e.sf.Count("Contact"))
	}
}

func TestLinkContactsWithoutCreateLeavesUnmatchedStudentsUnlinked(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	e.startWorker(t)
	run := e.wait(t, e.start(t, runstore.Scope{LinkContacts: true}).ID, 60*time.Second)
	e.requireExact(t, run)
	if n := e.sf.Count("Contact"); n != 0 {
		t.Fatalf("%d Contacts created with Create Contacts off", n)
	}
	if c := run.Counters["contact"]; c.Skipped == 0 || c.Written != 0 || !c.Balanced() {
		t.Fatalf("contact counters %+v: every student should be left unlinked", c)
	}
}
