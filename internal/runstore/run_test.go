package runstore_test

import (
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/runstore"
)

func TestValidIDAcceptsEveryIDNewIDMintsAndNothingElse(t *testing.T) {
	t.Parallel()
	at := time.Date(2001, 2, 3, 4, 5, 6, 0, time.FixedZone("x", 3600))
	for _, random := range []uint32{0, 1, 0xdeadbeef, 0xffffffff} {
		if id := runstore.NewID(at, random); !runstore.ValidID(id) {
			t.Fatalf("run id %q is refused as malformed", id)
		}
	}
	for _, bad := range []string{"", "r", "r20010203t040506DEADBEEF", "x20010203t040506deadbeef",
		"r20010203t040506deadbeef0", "../r20010203t040506deadbee", "r20010203t040506deadbee\n"} {
		if runstore.ValidID(bad) {
			t.Fatalf("%q passes as a run id", bad)
		}
	}
}
