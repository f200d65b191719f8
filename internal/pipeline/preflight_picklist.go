package pipeline

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/salesforce"
)

// sourceValues are the values Skilljar documents for enumerated source keys: a restricted
// picklist mapped from one must take each of them, through the field's value_map. The v1
// document gives success_status as PASSED, FAILED or null (reference/skilljar.md §12).
var sourceValues = map[string]map[string][]string{
	mapping.CourseProgress: {"success_status": {"PASSED", "FAILED"}},
}

// checkPicklist blocks a restricted picklist that would refuse a value Skilljar sends, with
// the value_map to add to the mapping file.
func (f *findings) checkPicklist(fd salesforce.FieldDescribe, o *mapping.Object, mf mapping.Field) {
	sent := sourceValues[o.Name][mf.Source]
	if len(sent) == 0 {
		return
	}
	var allowed []string
	for _, v := range fd.PicklistValues {
		if v.Active {
			allowed = append(allowed, v.Value)
		}
	}
	var refused []string
	for _, v := range sent {
		if !slices.Contains(allowed, mapped(mf, v)) {
			refused = append(refused, v)
		}
	}
	if len(refused) == 0 {
		return
	}
	f.block("%s.%s: a restricted picklist that takes %s but would be sent %s; add to the %s field %q of the mapping file "+
		"(a copy of internal/mapping/default.json named by BACKFILL_MAPPING_FILE) the line %s, choosing the org's value for each",
		o.SObject, mf.Field, strings.Join(allowed, ", "), strings.Join(refused, ", "), o.Name, mf.Field, valueMapLine(mf, sent, allowed))
}

func mapped(mf mapping.Field, v string) string {
	if to, ok := mf.ValueMap[v]; ok {
		return to
	}
	return v
}

// valueMapLine is the value_map entry that fits the org: the mapping's own choices where they
// fit, else the org's value spelled the same but for case, else a placeholder naming the
// choices.
func valueMapLine(mf mapping.Field, sent, allowed []string) string {
	suggestion := map[string]string{}
	for _, v := range sent {
		switch to := mapped(mf, v); {
		case slices.Contains(allowed, to):
			suggestion[v] = to
		default:
			suggestion[v] = "<one of: " + strings.Join(allowed, ", ") + ">"
			if i := slices.IndexFunc(allowed, func(a string) bool { return strings.EqualFold(a, v) }); i >= 0 {
				suggestion[v] = allowed[i]
			}
		}
	}
	b, _ := json.Marshal(suggestion) // maps marshal with sorted keys
	return fmt.Sprintf(`"value_map": %s`, b)
}
