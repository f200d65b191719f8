package salesforce_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

const createEndpoint = "POST composite/sobjects"

func contacts(n int) []salesforce.Record {
	recs := make([]salesforce.Record, n)
	for i := range recs {
		recs[i] = salesforce.Record{"Email": fmt.Sprintf("p%d@example.com", i), "LastName": fmt.Sprintf("P%d", i)}
	}
	return recs
}

func TestCreateInsertsThroughCollectionsOf200AndKeepsOrder(t *testing.T) {
	t.Parallel()
	sim, c, calls, tokens := setup(t, salesforcesim.Config{})
	sim.ExpireSessions()

	recs := contacts(450)
	delete(recs[201], "LastName")
	res, err := c.Create(context.Background(), "Contact", recs)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}

	// The simulator refuses more than 200 records a call, so three calls carried them all.
	if got := calls.count("collections_create"); got != 4 || calls.statuses[401] != 1 || tokens.refreshes != 1 {
		t.Errorf("%d calls with statuses %v and %d refreshes; want one 401, one refresh and 3 inserts",
			got, calls.statuses, tokens.refreshes)
	}
	if len(res) != len(recs) {
		t.Fatalf("%d results for %d records", len(res), len(recs))
	}
	for i, r := range res {
		if i == 201 {
			if r.Success || r.Created || r.ID != "" || errorCode(r) != "REQUIRED_FIELD_MISSING" {
				t.Errorf("record 201 without LastName: %+v", r)
			}
			continue
		}
		stored, ok := sim.RecordByExternalID("Contact", "Id", r.ID)
		if !r.Success || !r.Created || !ok || stored["Email"] != recs[i]["Email"] {
			t.Errorf("result %d = %+v names %v; want the Contact of %s", i, r, stored, recs[i]["Email"])
		}
	}
	// allOrNone=false: the refused record did not take its 199 neighbours with it.
	if n := sim.Count("Contact"); n != 449 {
		t.Errorf("org has %d Contacts; want 449", n)
	}
	if _, ok := recs[0]["attributes"]; ok {
		t.Error("Create changed the caller's record")
	}
}

func TestCreateRefusesAnSObjectThatIsNotAnAPIName(t *testing.T) {
	t.Parallel()
	_, c, calls, _ := setup(t, salesforcesim.Config{})
	if _, err := c.Create(context.Background(), "Contact/../x", contacts(1)); err == nil {
		t.Error("Create accepted a path as an sobject name")
	}
	if n := calls.total(); n != 0 {
		t.Errorf("%d calls made for a refused name", n)
	}
}

// dropAfterReading reads the whole request, as a server that goes on to commit it would,
// then closes the connection without an answer.
func dropAfterReading(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	dropConnection(w, r)
}

func TestCreateIsNotResentAfterALostAnswerButUpsertIs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		lose func(http.ResponseWriter, *http.Request)
	}{
		{"dropped connection", dropAfterReading},
		{"timeout", stall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, salesforcesim.Config{})
			front, hits := startFront(t, sim, 100, tc.lose)
			cfg := fastConfig(newSimTokens(sim).through(front), nil)
			cfg.MaxRetries = 2
			cfg.RequestTimeout = 200 * time.Millisecond
			c := newClient(t, cfg)

			_, err := c.Create(context.Background(), "Contact", contacts(1))
			if !errors.Is(err, salesforce.ErrUnavailable) || !strings.Contains(err.Error(), "not retried") {
				t.Errorf("Create: %v; want ErrUnavailable saying it was not retried", err)
			}
			if n := hits.Swap(0); n != 1 {
				t.Errorf("Create sent %d times; an insert whose answer was lost must be sent once", n)
			}

			_, err = c.Upsert(context.Background(), course, extID, courses("c", 1))
			if !errors.Is(err, salesforce.ErrUnavailable) {
				t.Errorf("Upsert: %v; want ErrUnavailable", err)
			}
			if n := hits.Load(); n != 3 {
				t.Errorf("Upsert sent %d times; want 1 plus MaxRetries=2, as replaying an upsert is safe", n)
			}
		})
	}
}

func TestCreateRetriesOnlyFailuresAnsweredBeforeProcessing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fault    salesforcesim.Fault
		requests int
		created  bool
	}{
		{"503", salesforcesim.Fault{Status: 503, ErrorCode: "SERVER_UNAVAILABLE", Times: 2}, 3, true},
		{"concurrent request limit", salesforcesim.Fault{Status: 403, ErrorCode: "REQUEST_LIMIT_EXCEEDED",
			Message: "ConcurrentRequests (Concurrent API Requests) Limit exceeded.", Times: 2}, 3, true},
		{"500", salesforcesim.Fault{Status: 500, ErrorCode: "UNKNOWN_EXCEPTION"}, 1, false},
		{"502", salesforcesim.Fault{Status: 502}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, c, _, _ := setup(t, salesforcesim.Config{})
			tc.fault.PathContains = "composite/sobjects"
			sim.InjectFault(tc.fault)

			_, err := c.Create(context.Background(), "Contact", contacts(2))
			if got := newCallsFor(sim, createEndpoint); got != tc.requests {
				t.Errorf("%d requests; want %d", got, tc.requests)
			}
			if tc.created {
				if err != nil || sim.Count("Contact") != 2 {
					t.Errorf("Create: %v with %d Contacts; want both created once", err, sim.Count("Contact"))
				}
				return
			}
			if !errors.Is(err, salesforce.ErrUnavailable) || sim.Count("Contact") != 0 {
				t.Errorf("Create: %v with %d Contacts; want ErrUnavailable and nothing sent again", err, sim.Count("Contact"))
			}
		})
	}
}

func TestCreateRetriesAConnectionThatWasNeverMade(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // connections to it are refused, so no byte of a request can arrive

	calls := newCalls()
	cfg := fastConfig(salesforce.StaticTokens(salesforce.Credentials{AccessToken: "t", InstanceURL: closed}), calls)
	cfg.MaxRetries = 2
	c := newClient(t, cfg)
	_, err = c.Create(context.Background(), "Contact", contacts(1))
	if !errors.Is(err, salesforce.ErrUnavailable) || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Errorf("Create: %v; want ErrUnavailable after 3 attempts", err)
	}
	if n := calls.statuses[0]; n != 3 {
		t.Errorf("%d attempts without a response; want 1 plus MaxRetries=2", n)
	}
}
