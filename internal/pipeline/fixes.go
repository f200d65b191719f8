package pipeline

import (
	"fmt"
	"strings"
)

// fixes are what an operator does about a record Salesforce refused, by its error code
// (reference/salesforce.md §4 "Per-record, permanent" and §8.4, §8.5), so every ledger entry
// says how to land the record.
var fixes = map[string]string{
	"FIELD_CUSTOM_VALIDATION_EXCEPTION": "a validation rule of the org refused the record (its text above); " +
		"relax or deactivate the rule for the integration user, or correct the record in Skilljar",
	"CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY": "a trigger, flow or process of the org failed on the record (its error above); " +
		"correct or deactivate that automation",
	"UNABLE_TO_LOCK_ROW": "another process held the record's parent locked past every retry; " +
		"let it finish or schedule the run outside its window",
	"REQUIRED_FIELD_MISSING":                  "the org requires a field the mapping does not send; map it or make it optional",
	"INVALID_FIELD":                           "the mapping names a field the org lacks or the integration user cannot write; fix the mapping or the field access",
	"DUPLICATE_VALUE":                         "another record already holds a unique value of this one; merge or correct the records in Salesforce",
	"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": "a restricted picklist refused the value; add a value_map for the field to the mapping file",
}

// withFix completes a Salesforce rejection's message with the fix for its code and the
// re-drive that lands the record once it is applied; a message the sink already completed
// with its own fix stays as it is.
func withFix(sobject, code, msg string) string {
	if strings.Contains(msg, "Fix:") {
		return msg
	}
	fix, ok := fixes[code]
	if !ok {
		fix = "correct what Salesforce names above, in the org or in the mapping"
	}
	return fmt.Sprintf("%s. Fix: %s (%s); then re-drive the rejected records", strings.TrimSuffix(msg, "."), fix, sobject)
}
