package salesforcesim

import (
	"fmt"
	"hash/fnv"
	"testing"
)

// triggeredExt is an external id ProfileAutomation's trigger fails.
func triggeredExt(t *testing.T) string {
	t.Helper()
	for i := range 100000 {
		ext := fmt.Sprintf("u-%d", i)
		h := fnv.New32a()
		h.Write([]byte(ext))
		if h.Sum32()%automationEvery == 0 {
			return ext
		}
	}
	t.Fatal("no external id the trigger fails")
	return ""
}

func TestTurningAutomationOffLetsTheRecordsItFailedBeWritten(t *testing.T) {
	s := startSim(t, Config{Profiles: []string{ProfileAutomation, ProfileSparse}})
	c := newClient(t, s)
	ext := triggeredExt(t)
	if e := firstError(t, c.upsert(objStudent, false, student(ext))[0]); e.StatusCode != "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" {
		t.Fatalf("with automation on: %+v, want the trigger's error", e)
	}
	many := make([]map[string]any, defaultCPULimitRecords+1)
	for i := range many {
		many[i] = student(fmt.Sprintf("bulk-%d", i))
	}
	if e := firstError(t, c.upsert(objStudent, false, many...)[1]); e.StatusCode != "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" {
		t.Fatalf("a request over the CPU limit: %+v, want it failed whole", e)
	}

	if err := s.TurnOff(ProfileAutomation); err != nil {
		t.Fatal(err)
	}
	if r := c.upsert(objStudent, false, student(ext)); !r[0].Success {
		t.Fatalf("with automation off the record still fails: %+v", r[0].Errors)
	}
	for i, r := range c.upsert(objStudent, false, many...) {
		if !r.Success {
			t.Fatalf("with automation off record %d of a large request fails: %+v", i, r.Errors)
		}
	}
	if err := s.TurnOff(ProfileAutomation); err == nil {
		t.Error("turning off a profile that is off should be an error")
	}
	if err := s.TurnOff(ProfileSparse); err == nil {
		t.Error("a schema profile cannot be turned off at run time, yet TurnOff accepted it")
	}
}
