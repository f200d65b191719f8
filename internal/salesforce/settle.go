package salesforce

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// CodeDuplicateExternalID is the per-record error of an upsert whose external id matches
// several records (reference/salesforce.md §8.7); a third-party listing shows its message as
// "more than one record found for external id field: [01tj…, 01tj…]".
const CodeDuplicateExternalID = "DUPLICATE_EXTERNAL_ID"

// lockSerialMin is the fewest locked records in one call that may switch its object to
// serial writes: a single collision among a handful of records is no pattern.
const lockSerialMin = 5

// bulkResendMin is from how many create-only refusals of a Bulk API pass they go again as
// a Bulk API job rather than through collections: Salesforce advises Bulk from 2,000
// records (reference/salesforce.md §3.6).
const bulkResendMin = 2000

// sfIDPattern matches a 15- or 18-character Salesforce record id: a 3-character key prefix,
// a 2-character instance, the reserved "0", then the record number and the checksum.
var sfIDPattern = regexp.MustCompile(`\b[a-zA-Z0-9]{5}0[a-zA-Z0-9]{9}(?:[a-zA-Z0-9]{3})?\b`)

// settle finishes a first pass over recs: records refused a create-only field go once more
// without it, locked records go again through collections with backoff (at most
// LockRetries rounds), and multi-match external ids get the matching records' ids and the
// fix.
func (w *writer) settle(ctx context.Context, recs []Record, results []Result, bulk bool) ([]Result, error) {
	adaptive := !w.c.cfg.DisableAdaptation
	current, copied := recs, false // copied before the first record is changed
	stripped := make([]bool, len(recs))
	for lockRounds := 0; ; {
		var locked, refused []int
		for i, r := range results {
			switch {
			case r.Success:
			case lockedRow(r):
				if adaptive && lockRounds < w.c.cfg.LockRetries {
					locked = append(locked, i)
				}
			case !stripped[i] && w.refusedCreateOnly(r):
				stripped[i] = true
				if rec, ok := w.withoutCreateOnly(current[i]); ok {
					if !copied {
						current, copied = slices.Clone(recs), true
					}
					current[i] = rec
					refused = append(refused, i)
				}
			}
		}
		if len(locked)+len(refused) == 0 {
			break
		}
		if len(refused) > 0 {
			// These exist already: the update leaves the create-only fields as they are.
			if err := w.resend(ctx, current, refused, results, bulk && len(refused) >= bulkResendMin); err != nil {
				return nil, err
			}
		}
		if len(locked) > 0 {
			if err := sleep(ctx, w.c.jittered(w.c.cfg.LockBackoff, lockRounds)); err != nil {
				return nil, err
			}
			lockRounds++
			// Locked rows of a Bulk API job go through collections too: smaller synchronous
			// calls, one parent's children together, clear most contention (§4.2, §8.5).
			if err := w.resend(ctx, current, locked, results, false); err != nil {
				return nil, err
			}
		}
	}
	w.explainDuplicates(ctx, current, results)
	return results, nil
}

// resend writes the records at idx again and puts their results in place.
func (w *writer) resend(ctx context.Context, recs []Record, idx []int, results []Result, bulk bool) error {
	again := make([]Record, len(idx))
	for j, i := range idx {
		again[j] = recs[i]
	}
	var res []Result
	var err error
	if bulk {
		res, err = w.bulk(ctx, again)
	} else {
		res, err = w.collections(ctx, again)
	}
	if err != nil {
		return fmt.Errorf("salesforce: writing %d %s records again: %w", len(idx), w.sobject, err)
	}
	for j, i := range idx {
		results[i] = res[j]
	}
	return nil
}

// noteLocks switches the object to serial writes when a pass's lock errors reach
// LockSerialThreshold of its records.
func (w *writer) noteLocks(ctx context.Context, results []Result) {
	threshold := w.c.cfg.LockSerialThreshold
	if threshold == 0 {
		return
	}
	locked, first := 0, ""
	for _, r := range results {
		if lockedRow(r) {
			if locked == 0 {
				first = r.Errors[0].Message
			}
			locked++
		}
	}
	if locked >= lockSerialMin && float64(locked) >= threshold*float64(len(results)) {
		w.c.goSerial(ctx, w.sobject, fmt.Sprintf("%d of %d records failed with %s (%s)", locked, len(results), CodeUnableToLockRow, first))
	}
}

// refusedCreateOnly reports whether Salesforce refused the record for setting one of the
// object's create-only fields on an existing record.
func (w *writer) refusedCreateOnly(r Result) bool {
	if len(w.createOnly) == 0 {
		return false
	}
	for _, e := range r.Errors {
		if !slices.Contains(w.c.cfg.CreateOnlyCodes, e.StatusCode) {
			continue
		}
		msg := strings.ToLower(e.Message)
		for _, f := range w.createOnly {
			names := []string{strings.ToLower(f)}
			if rel, ok := relationshipOf(f); ok {
				names = append(names, strings.ToLower(rel))
			}
			for _, name := range names {
				if strings.Contains(msg, name) || slices.ContainsFunc(e.Fields, func(n string) bool { return strings.EqualFold(n, name) }) {
					return true
				}
			}
		}
	}
	return false
}

// withoutCreateOnly copies rec without the object's create-only fields and, for a custom
// relationship field, its "…__r" reference; ok is false when rec had none of them.
func (w *writer) withoutCreateOnly(rec Record) (Record, bool) {
	drop := func(k string) bool {
		for _, f := range w.createOnly {
			if rel, ok := relationshipOf(f); strings.EqualFold(k, f) || ok && strings.EqualFold(k, rel) {
				return true
			}
		}
		return false
	}
	out := make(Record, len(rec))
	for k, v := range rec {
		if !drop(k) {
			out[k] = v
		}
	}
	return out, len(out) < len(rec)
}

// relationshipOf names a custom field's relationship, "X__c" → "X__r", the key a record
// refers to the parent by (reference/salesforce.md §2.2).
func relationshipOf(field string) (string, bool) {
	if len(field) < 3 || !strings.EqualFold(field[len(field)-3:], "__c") {
		return "", false
	}
	return field[:len(field)-3] + "__r", true
}

// explainDuplicates completes every DUPLICATE_EXTERNAL_ID failure with the ids of the
// records that share the external id, from the message or else from one query, and the fix.
// The query needs the records to be visible to the integration user (an upsert on a
// non-unique external id needs "View All Data" anyway, §8.7); when it fails, the fix is
// given without the ids.
func (w *writer) explainDuplicates(ctx context.Context, recs []Record, results []Result) {
	for i := range results {
		r := &results[i]
		if r.Success || len(r.Errors) == 0 || r.Errors[0].StatusCode != CodeDuplicateExternalID {
			continue
		}
		e := &r.Errors[0]
		ids := sfIDPattern.FindAllString(e.Message, -1)
		if len(ids) < 2 {
			ids = w.matching(ctx, externalID(recs[i], w.extID))
		}
		e.MatchingIDs = ids
		count, which := "several", "the duplicate records"
		if len(ids) > 0 {
			count, which = strconv.Itoa(len(ids)), fmt.Sprintf("the duplicate records (Ids %s)", strings.Join(ids, ", "))
		}
		e.Message = fmt.Sprintf("%s. Fix: %s records in Salesforce have %s %q; remove %s so that one is left, or make %s unique, then re-drive this record",
			strings.TrimSuffix(e.Message, "."), count, w.extID, r.ExternalID, which, w.extID)
	}
}

// matching returns the ids of the records whose external id is ext, or nil if the query fails.
func (w *writer) matching(ctx context.Context, ext string) []string {
	var ids []string
	soql := fmt.Sprintf("SELECT Id FROM %s WHERE %s = %s", w.sobject, w.extID, QuoteString(ext))
	err := w.c.Query(ctx, soql, func(rec map[string]any) error {
		if id, ok := rec["Id"].(string); ok {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil
	}
	return ids
}
