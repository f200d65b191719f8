package salesforcesim

import (
	"strings"
	"time"
)

// Record is one stored row as a test sees it: Id, CreatedDate, LastModifiedDate and
// SystemModstamp (time.Time, UTC) plus every set field under its API name. Textual fields
// hold strings, double fields float64, boolean fields bool, datetime fields time.Time, and
// references the parent's 18-character Id. Cleared fields are absent.
type Record map[string]any

// Write is one accepted record write, in the order the org accepted them.
type Write struct {
	SObject    string
	ExternalID string // empty when the write was not keyed by an external id
	ID         string
	Created    bool
}

type row struct {
	id       string
	values   map[string]any // canonical field name → value; absent = null
	created  time.Time
	modified time.Time
}

// table holds one object's rows, in creation order, with an index per unique field.
type table struct {
	obj    *SObject
	rows   []*row
	byID   map[string]*row
	unique map[string]map[string]*row // canonical field name → lower-case value → row
	seq    uint64
}

func newTable(obj *SObject) *table {
	t := &table{obj: obj, byID: make(map[string]*row), unique: make(map[string]map[string]*row)}
	for _, f := range obj.Fields {
		if f.Unique {
			t.unique[f.Name] = make(map[string]*row)
		}
	}
	return t
}

// lookup finds the row whose field equals value: by Id, or case-insensitively through a
// unique index.
func (t *table) lookup(field *Field, value string) *row {
	if field.Type == TypeID {
		id, ok := canonicalID(value)
		if !ok {
			return nil
		}
		return t.byID[id]
	}
	return t.unique[field.Name][strings.ToLower(value)]
}

// value reads one field of a row, computing the fields Salesforce computes.
func (t *table) value(r *row, f *Field) any {
	switch f.Name {
	case "Id":
		return r.id
	case "CreatedDate":
		return r.created
	case "LastModifiedDate", "SystemModstamp":
		return r.modified
	}
	if f.Calculated && f.Name == "Name" {
		// Contact.Name is FirstName plus LastName.
		first, _ := r.values["FirstName"].(string)
		last, _ := r.values["LastName"].(string)
		return strings.TrimSpace(first + " " + last)
	}
	return r.values[f.Name]
}

func (t *table) record(r *row) Record {
	rec := make(Record, len(r.values)+4)
	for _, f := range t.obj.Fields {
		if v := t.value(r, &f); v != nil {
			rec[f.Name] = v
		}
	}
	return rec
}

func (s *Sim) table(name string) *table { return s.tables[strings.ToLower(name)] }

// Records returns copies of an object's rows in creation order (nil for an unknown object).
func (s *Sim) Records(sobject string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.table(sobject)
	if t == nil {
		return nil
	}
	out := make([]Record, len(t.rows))
	for i, r := range t.rows {
		out[i] = t.record(r)
	}
	return out
}

// RecordByExternalID finds a row by a field's value, case-insensitively: through the index
// for unique fields and Id, else the first row in creation order.
func (s *Sim) RecordByExternalID(sobject, field, value string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.table(sobject)
	if t == nil {
		return nil, false
	}
	f := t.obj.field(field)
	if f == nil {
		return nil, false
	}
	if f.Unique || f.Type == TypeID {
		if r := t.lookup(f, value); r != nil {
			return t.record(r), true
		}
		return nil, false
	}
	for _, r := range t.rows {
		if v, ok := r.values[f.Name].(string); ok && strings.EqualFold(v, value) {
			return t.record(r), true
		}
	}
	return nil, false
}

// Count is the number of rows of an object.
func (s *Sim) Count(sobject string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.table(sobject); t != nil {
		return len(t.rows)
	}
	return 0
}

// WriteLog lists every accepted record write in order, so a test can count replays.
func (s *Sim) WriteLog() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Write(nil), s.writes...)
}

// SetFieldAccess changes a field's createable and updateable flags, as a profile or
// permission-set change would; describe and every write path see the change at once.
func (s *Sim) SetFieldAccess(sobject, field string, createable, updateable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.table(sobject); t != nil {
		if f := t.obj.field(field); f != nil {
			f.Createable, f.Updateable = createable, updateable
		}
	}
}
