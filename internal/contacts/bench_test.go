package contacts_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sjbackfill/backfill/internal/contacts"
	"github.com/sjbackfill/backfill/internal/salesforce"
)

// BenchmarkLinkOneThousandLearnersPage links a page of 1,000 learners, 10% of whom have a
// Contact, and reports the queries a page costs and the longest query URI.
func BenchmarkLinkOneThousandLearnersPage(b *testing.B) {
	o := newOrg(b)
	people := make([]contacts.Person, 1000)
	var seeds []salesforce.Record
	for i := range people {
		people[i].Email = fmt.Sprintf("learner.%04d@example-university.edu", i)
		if i%10 == 0 {
			seeds = append(seeds, salesforce.Record{seedKey: fmt.Sprint(i), "Email": people[i].Email, "LastName": "Seed"})
		}
	}
	if _, err := o.client.Upsert(context.Background(), "Contact", seedKey, seeds); err != nil {
		b.Fatal(err)
	}
	linker := contacts.NewLinker(o.client, contacts.Options{})
	b.ResetTimer()
	for b.Loop() {
		res, err := linker.Link(context.Background(), people)
		if err != nil || res.Linked != len(seeds) {
			b.Fatalf("Link: %+v, %v", res, err)
		}
	}
	queries, longest := o.stats()
	b.ReportMetric(float64(queries)/float64(b.N), "queries/page")
	b.ReportMetric(float64(longest), "longest_uri_bytes")
}
