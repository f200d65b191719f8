package redistest_test

import (
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/redistest"
)

// Killing the primary makes the sentinels promote the replica, and a client that asks the
// sentinels finds the data it wrote before on the new primary.
func TestFailoverPromotesTheReplicaAndClientsFollowIt(t *testing.T) {
	t.Parallel()
	f := redistest.StartFailover(t)
	c := f.Client(t)
	if err := c.Set(t.Context(), "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(t.Context(), 1, time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	f.Primary.Stop()
	f.WaitPrimary(t, f.Replica.Addr, 30*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := c.Get(t.Context(), "k").Result()
		if err == nil {
			if v != "before" {
				t.Fatalf("k = %q on the new primary", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client did not reach the new primary: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Set(t.Context(), "k", "after", 0).Err(); err != nil {
		t.Fatalf("a write after the failover: %v", err)
	}
}
