package service_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/sjbackfill/backfill/internal/redistest"
)

// TestMain fails the package's tests when any of them leaves a goroutine running. The tests
// stop Redis under live clients, hence IgnoreRedial.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, redistest.IgnoreRedial) }
