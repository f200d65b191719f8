package pipeline

import (
	"strings"
	"testing"
)

func TestARejectionCarriesTheFixForItsCodeAndKeepsTheSinksOwn(t *testing.T) {
	msg := withFix("skilljar__Student__c", "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY: StudentAccountRollup failed.")
	if !strings.HasPrefix(msg, "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY: StudentAccountRollup failed. Fix: a trigger") ||
		!strings.Contains(msg, "(skilljar__Student__c); then re-drive the rejected records") {
		t.Errorf("trigger failure: %q", msg)
	}
	if msg := withFix("X__c", "SOMETHING_NEW", "SOMETHING_NEW: odd"); !strings.Contains(msg, "Fix: correct what Salesforce names above") {
		t.Errorf("an unknown code gets no fix: %q", msg)
	}
	own := "DUPLICATE_EXTERNAL_ID: more than one record. Fix: remove the duplicates, then re-drive this record"
	if msg := withFix("X__c", "DUPLICATE_EXTERNAL_ID", own); msg != own {
		t.Errorf("the sink's own fix was changed: %q", msg)
	}
}
