package salesforcesim

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sjbackfill/backfill/internal/clock"
)

// recordErr is one error reported for one record, as in an UpsertResult.
type recordErr struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

func newRecordErr(code, message string, fields ...string) recordErr {
	if fields == nil {
		fields = []string{}
	}
	return recordErr{StatusCode: code, Message: message, Fields: fields}
}

// change is one field assignment parsed from a JSON body or a CSV row.
type change struct {
	field  *Field
	value  any        // converted value; nil clears the field
	parent *parentRef // set instead of value for a relationship by external id
}

// parentRef is a reference to a parent by its external id, e.g.
// "skilljar__Student__r": {"skilljar__Obfuscated_Id__c": "abc"}.
type parentRef struct {
	table *table
	field *Field // the parent's external id (or idLookup) field
	value string
}

type writeMode int

const (
	modeUpsert writeMode = iota // match on the external id, create when absent
	modeInsert
	modeUpdate // match on Id
)

// writeOp is one record to write.
type writeOp struct {
	table    *table // the record's object
	mode     writeMode
	key      *Field // the external id field matched on (modeUpsert)
	keyValue string // its value, or the Id for modeUpdate
	changes  []change
	failed   *recordErr // a failure found while parsing the record (CSV type errors)
	// org marks a write by the org's own setup (SeedDuplicates, another writer), which no
	// customer automation or lock refuses.
	org bool
}

// writeResult is the outcome for one record, in the order the records came.
type writeResult struct {
	id      string
	created bool
	errors  []recordErr
}

func (r writeResult) ok() bool { return len(r.errors) == 0 }

// transact writes the records of one request as one transaction and keeps its parent locks
// for the rest of the transaction's time (ProfileLocks), releasing s.mu while it waits so
// that concurrent requests meet the locks. The caller holds s.mu.
func (s *Sim) transact(ctx context.Context, ops []writeOp, allOrNone bool) []writeResult {
	txn := s.nextSeq()
	results := s.writeBatch(txn, ops, allOrNone)
	s.holdLocks(ctx, txn)
	return results
}

// holdLocks waits out a transaction's LockWindow without s.mu, then releases its locks; the
// caller holds s.mu.
func (s *Sim) holdLocks(ctx context.Context, txn uint64) {
	if !s.holding(txn) {
		return
	}
	s.mu.Unlock()
	_ = clock.Sleep(ctx, s.cfg.LockWindow) // an abort only ends the hold early
	s.mu.Lock()
	s.releaseLocks(txn)
}

// writeBatch writes records in order as transaction txn, as a collection or one bulk chunk
// does; the records of a collections insert may be of several objects. With allOrNone, any
// failure undoes every write of the batch and the records that had succeeded report
// ALL_OR_NONE_OPERATION_ROLLED_BACK. The caller holds s.mu.
func (s *Sim) writeBatch(txn uint64, ops []writeOp, allOrNone bool) []writeResult {
	if s.cpuLimited(ops) {
		return cpuLimitResults(len(ops))
	}
	results := make([]writeResult, len(ops))
	// A batch may not name one external id twice: Salesforce cannot order the two writes.
	type upsertKey struct {
		table *table
		value string
	}
	seen := make(map[upsertKey]int)
	keyOf := func(op writeOp) upsertKey { return upsertKey{op.table, strings.ToLower(op.keyValue)} }
	for _, op := range ops {
		if op.mode == modeUpsert && op.keyValue != "" {
			seen[keyOf(op)]++
		}
	}
	var undo []func()
	failed := false
	for i, op := range ops {
		switch {
		case op.failed != nil:
			results[i] = writeResult{errors: []recordErr{*op.failed}}
		case op.mode == modeUpsert && seen[keyOf(op)] > 1:
			// Wording UNCONFIRMED; every record carrying the duplicated id fails.
			results[i] = writeResult{errors: []recordErr{newRecordErr("DUPLICATE_VALUE",
				"Duplicate external id specified: "+op.keyValue, op.key.Name)}}
		default:
			results[i] = s.writeOne(txn, op, &undo)
		}
		failed = failed || !results[i].ok()
	}
	if allOrNone && failed {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		for i := range results {
			if results[i].ok() {
				results[i] = writeResult{errors: []recordErr{newRecordErr("ALL_OR_NONE_OPERATION_ROLLED_BACK",
					"Record rolled back because not all records were valid and the request was using AllOrNone header")}}
			}
		}
	}
	return results
}

// writeOne validates and applies one record, appending what undoes it. The caller holds s.mu.
func (s *Sim) writeOne(txn uint64, op writeOp, undo *[]func()) writeResult {
	t := op.table
	fail := func(errs ...recordErr) writeResult { return writeResult{errors: errs} }
	var r *row
	switch op.mode {
	case modeUpsert:
		if op.keyValue == "" {
			// UNCONFIRMED code and wording for a record without its external id.
			return fail(newRecordErr("MISSING_ARGUMENT", op.key.Name+" not specified", op.key.Name))
		}
		if ids := t.matches(op.key, op.keyValue); len(ids) > 1 {
			// Several records under one external id (ProfileDirty): nothing is written
			// (reference/salesforce.md §8.7; the wording is UNCONFIRMED).
			return fail(newRecordErr("DUPLICATE_EXTERNAL_ID",
				"more than one record found for external id field: ["+strings.Join(ids, ", ")+"]", op.key.Name))
		}
		r = t.lookup(op.key, op.keyValue)
	case modeUpdate:
		id, ok := canonicalID(op.keyValue)
		if !ok {
			return fail(newRecordErr("MALFORMED_ID", "Record ID: id value of incorrect type: "+op.keyValue, "Id"))
		}
		if r = t.rowByID(id); r == nil {
			return fail(newRecordErr("ENTITY_IS_DELETED", "entity is deleted"))
		}
	}
	creating := r == nil

	if e, ok := s.injectedrecordErr(t, op, r); ok {
		return fail(e)
	}

	changes := op.changes
	if !creating && op.key != nil {
		// Matching on the external id rewrites it only when its spelling changes.
		changes = dropUnchangedKey(changes, op.key, t.get(r.values, op.key))
	}
	if e, ok := accessError(changes, creating); ok {
		return fail(e)
	}
	resolved, errs := s.resolveValues(changes)
	if len(errs) > 0 {
		return fail(errs...)
	}

	var next values
	if creating {
		next = t.newValues()
	} else {
		next = r.values.clone()
	}
	for f, v := range resolved {
		t.set(next, f, v)
	}
	if missing := t.requiredMissing(next); len(missing) > 0 {
		return fail(newRecordErr("REQUIRED_FIELD_MISSING",
			"Required fields are missing: ["+strings.Join(missing, ", ")+"]", missing...))
	}
	for name, idx := range t.unique {
		v := t.text(next, name)
		if v == "" || !t.obj.field(name).Unique {
			continue
		}
		if other := idx[strings.ToLower(v)]; other != nil && other != r {
			return fail(newRecordErr("DUPLICATE_VALUE",
				fmt.Sprintf("duplicate value found: %s duplicates value on record with id: %s", name, other.id)))
		}
	}

	if e, ok := s.lockParents(txn, t, r, resolved); ok && !op.org {
		return fail(e)
	}
	if e, ok := s.automationError(t, t.text(next, ObfuscatedID)); ok && !op.org {
		return fail(e)
	}

	now := s.now().UnixMilli()
	if creating {
		r = &row{id: newID(t.obj.KeyPrefix, uint64(len(t.rows))+1), created: now, modified: now, values: next}
		t.defaultName(r)
		t.rows = append(t.rows, r)
		t.index(r, true)
		*undo = append(*undo, func() {
			t.index(r, false)
			t.rows[len(t.rows)-1] = nil
			t.rows = t.rows[:len(t.rows)-1]
		})
	} else {
		oldValues, oldModified := r.values, r.modified
		t.index(r, false)
		r.values, r.modified = next, now
		t.defaultName(r)
		t.index(r, true)
		*undo = append(*undo, func() {
			t.index(r, false)
			r.values, r.modified = oldValues, oldModified
			t.index(r, true)
		})
	}
	w := logEntry{table: t, row: r, created: creating}
	key := op.key
	if key == nil {
		// Inserts and updates by Id log the object's external id, so replays can be counted
		// whichever way a record was written.
		key = t.obj.externalID()
	}
	if key != nil {
		w.externalID = t.text(r.values, key.Name)
	}
	n := len(s.writes)
	s.writes = append(s.writes, w)
	*undo = append(*undo, func() { s.writes = s.writes[:n] })
	return writeResult{id: r.id, created: creating}
}

// defaultName gives a custom object's record its Id as Name when none was written, as
// Salesforce does for an API insert without Name.
func (t *table) defaultName(r *row) {
	f := t.obj.field("Name")
	switch {
	case f == nil || !f.DefaultedOnCreate || !t.isNull(r.values, f):
	case f.AutoNumber:
		// An auto-number in the display format an admin might choose, e.g. CP-0000042.
		seq, _ := idSeq(r.id)
		t.set(r.values, f, fmt.Sprintf("%s-%07d", initials(t.obj.Label), seq))
	default:
		t.set(r.values, f, r.id)
	}
}

func initials(label string) string {
	var b strings.Builder
	for _, w := range strings.Fields(label) {
		b.WriteString(strings.ToUpper(w[:1]))
	}
	return b.String()
}

// index adds or removes a row's entries in the table's indexes. A value of a non-unique
// external id held by several rows keeps the first in the index and the others in dups.
func (t *table) index(r *row, add bool) {
	for name, idx := range t.unique {
		v := strings.ToLower(t.text(r.values, name))
		if v == "" {
			continue
		}
		first, dups := idx[v], t.dups[name][v]
		switch {
		case add && first != nil && first != r:
			t.dups[name][v] = append(dups, r)
		case add:
			idx[v] = r
		case first == r && len(dups) > 0:
			idx[v], t.dups[name][v] = dups[0], dups[1:]
		case first == r:
			delete(idx, v)
		default:
			t.dups[name][v] = slices.DeleteFunc(dups, func(x *row) bool { return x == r })
		}
		if len(t.dups[name][v]) == 0 {
			delete(t.dups[name], v)
		}
	}
}

func dropUnchangedKey(changes []change, key *Field, stored any) []change {
	out := changes[:0:0]
	for _, c := range changes {
		if c.field == key && c.value == stored {
			continue
		}
		out = append(out, c)
	}
	return out
}

// injectedrecordErr consumes an InjectRecordError entry or draws from LockRate; the
// caller holds s.mu.
func (s *Sim) injectedrecordErr(t *table, op writeOp, r *row) (recordErr, bool) {
	if op.key != nil {
		k := recordKey{strings.ToLower(t.obj.Name), strings.ToLower(op.keyValue)}
		if f := s.recErr[k]; f != nil {
			if f.times--; f.times <= 0 {
				delete(s.recErr, k)
			}
			return newRecordErr(f.code, injectedMessage(f.code, r)), true
		}
	}
	if s.chance(s.cfg.LockRate) {
		return newRecordErr("UNABLE_TO_LOCK_ROW", injectedMessage("UNABLE_TO_LOCK_ROW", r)), true
	}
	return recordErr{}, false
}

func injectedMessage(code string, r *row) string {
	if code == "UNABLE_TO_LOCK_ROW" {
		id := ""
		if r != nil {
			id = r.id
		}
		return "unable to obtain exclusive access to this record or 1 records: " + id
	}
	return strings.ToLower(strings.ReplaceAll(code, "_", " "))
}

// accessError names every field the record may not set, as one
// INVALID_FIELD_FOR_INSERT_UPDATE error in the wording Salesforce KB 000385552 quotes for a
// non-reparentable master-detail field, the same for create and update.
func accessError(changes []change, creating bool) (recordErr, bool) {
	var denied []string
	for _, c := range changes {
		if creating && !c.field.Createable || !creating && !c.field.Updateable {
			denied = append(denied, c.field.Name)
		}
	}
	if len(denied) == 0 {
		return recordErr{}, false
	}
	return newRecordErr("INVALID_FIELD_FOR_INSERT_UPDATE",
		fmt.Sprintf("Unable to create/update fields: %s. Please check the security settings of this field and verify that "+
			"it is read/write for your profile or permission set.", strings.Join(denied, ", ")), denied...), true
}

// resolveValues turns parent references into Ids and checks every value against its field;
// the caller holds s.mu.
func (s *Sim) resolveValues(changes []change) (map[*Field]any, []recordErr) {
	values := make(map[*Field]any, len(changes))
	var errs []recordErr
	for _, c := range changes {
		f, v := c.field, c.value
		if c.parent != nil {
			if ids := c.parent.table.matches(c.parent.field, c.parent.value); len(ids) > 1 {
				// A parent reference matching several records (ProfileDirty); the code is the
				// upsert's, the wording UNCONFIRMED.
				errs = append(errs, newRecordErr("DUPLICATE_EXTERNAL_ID", fmt.Sprintf(
					"Foreign key external ID: %s matches more than one record for field %s in entity %s: [%s]",
					c.parent.value, c.parent.field.Name, c.parent.table.obj.Name, strings.Join(ids, ", "))))
				continue
			}
			p := c.parent.table.lookup(c.parent.field, c.parent.value)
			if p == nil {
				errs = append(errs, newRecordErr("INVALID_FIELD", fmt.Sprintf(
					"Foreign key external ID: %s not found for field %s in entity %s",
					c.parent.value, c.parent.field.Name, c.parent.table.obj.Name)))
				continue
			}
			values[f] = p.id
			continue
		}
		if e, ok := s.checkValue(f, v); ok {
			errs = append(errs, e)
			continue
		}
		if f.Type == TypeRef && v != nil {
			v, _ = canonicalID(v.(string))
		}
		values[f] = v
	}
	return values, errs
}

var emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s.]+$`)

// checkValue applies a field's type rules to a converted value; the caller holds s.mu.
func (s *Sim) checkValue(f *Field, v any) (recordErr, bool) {
	str, ok := v.(string)
	if !ok {
		return recordErr{}, false
	}
	switch {
	case f.Length > 0 && utf8.RuneCountInString(str) > f.Length:
		return newRecordErr("STRING_TOO_LONG", fmt.Sprintf("%s: data value too large: %s (max length=%d)",
			f.Label, str, f.Length), f.Name), true
	case f.Type == TypeEmail && !emailPattern.MatchString(str):
		return newRecordErr("INVALID_EMAIL_ADDRESS", f.Label+": invalid email address: "+str, f.Name), true
	case f.Type == TypePicklist && len(f.PicklistValues) > 0 && !slices.Contains(f.PicklistValues, str):
		return newRecordErr("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
			f.Label+": bad value for restricted picklist field: "+str, f.Name), true
	case f.Type == TypeRef:
		id, ok := canonicalID(str)
		if !ok {
			return newRecordErr("MALFORMED_ID", f.Label+": id value of incorrect type: "+str, f.Name), true
		}
		if parent := s.table(f.ReferenceTo[0]); parent == nil || parent.rowByID(id) == nil {
			return newRecordErr("INVALID_CROSS_REFERENCE_KEY", f.Label+": invalid cross reference id", f.Name), true
		}
	}
	return recordErr{}, false
}

// requiredMissing lists required fields without a value after a write.
func (t *table) requiredMissing(v values) []string {
	var missing []string
	for i := range t.obj.Fields {
		f := &t.obj.Fields[i]
		if f.Nillable || f.DefaultedOnCreate || f.Calculated {
			continue
		}
		if t.isNull(v, f) {
			missing = append(missing, f.Name)
		}
	}
	return missing
}

// valueError is a value that cannot be converted to its field's type.
type valueError struct {
	field *Field
	value any
}

func (e *valueError) Error() string {
	return fmt.Sprintf("%s: value not of required type: %v", e.field.Label, e.value)
}

// convert turns a JSON value (string, json.Number, bool or nil) or a CSV cell into the
// field's stored type. An empty text value means null, as Salesforce stores it.
func convert(f *Field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := &valueError{f, v}
	switch {
	case f.Type.textual():
		switch x := v.(type) {
		case string:
			if x == "" {
				return nil, nil
			}
			return x, nil
		case json.Number:
			return x.String(), nil
		case bool:
			return strconv.FormatBool(x), nil
		}
	case f.Type == TypeDouble:
		var str string
		switch x := v.(type) {
		case json.Number:
			str = x.String()
		case string:
			if x == "" {
				return nil, nil
			}
			str = x
		default:
			return nil, bad
		}
		n, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, bad
		}
		return n, nil
	case f.Type == TypeBoolean:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			if b, err := strconv.ParseBool(strings.ToLower(x)); err == nil {
				return b, nil
			}
		}
	case f.Type == TypeDateTime:
		if x, ok := v.(string); ok {
			if x == "" {
				return nil, nil
			}
			if t, ok := parseDateTime(x); ok {
				return t, nil
			}
		}
	}
	return nil, bad
}

// parseDateTime reads the ISO 8601 forms Salesforce accepts for a dateTime value.
func parseDateTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Truncate(time.Millisecond), true
		}
	}
	return time.Time{}, false
}

// formatDateTime writes a dateTime the way the REST API returns it.
func formatDateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000+0000") }
