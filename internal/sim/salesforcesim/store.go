package salesforcesim

import (
	"math"
	"slices"
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

// logEntry is one Write as the log keeps it: the object and Id through pointers the store
// already holds.
type logEntry struct {
	table      *table
	row        *row
	externalID string
	created    bool
}

// row is one stored record. It keeps its fields in slices indexed by the table's slots
// rather than in a map: at hundreds of thousands of rows a map per row cost over a kilobyte
// each, most of the simulator's heap.
type row struct {
	id       string
	created  int64 // Unix milliseconds, the precision Salesforce keeps
	modified int64
	values
}

// values are a row's stored fields. text holds the textual fields, "" meaning null (convert
// stores an empty text as null). nums holds the others, encoded by field type: a datetime as
// Unix milliseconds, a double as its IEEE 754 bits, a boolean as 0 or 1, and null as nullNum.
type values struct {
	text []string
	nums []uint64
}

// nullNum is null in values.nums. As a double it is a NaN strconv.ParseFloat never returns,
// as a datetime it is 140,000 years before any year parseDateTime reads, and as a boolean it
// is neither 0 nor 1.
const nullNum uint64 = 0xFFF0_0000_0000_0001

func (v values) clone() values { return values{slices.Clone(v.text), slices.Clone(v.nums)} }

// slot is where a stored field lives in values: text[index] or nums[index].
type slot struct {
	index int
	text  bool
}

// table holds one object's rows, in creation order, with an index per unique field.
type table struct {
	obj   *SObject
	slots map[string]slot // stored field's canonical name → its place in values
	nText int
	nNums int
	// rows are in creation order: rows[i] has the Id newID(prefix, i+1). Only undoing a
	// create removes a row, always the last.
	rows []*row
	// unique indexes the unique and the external id fields: canonical field name →
	// lower-case value → row. Only a non-unique external id can hold a value twice; the
	// rows beyond the first are in dups.
	unique map[string]map[string]*row
	dups   map[string]map[string][]*row
}

func newTable(obj *SObject) *table {
	t := &table{obj: obj, slots: make(map[string]slot), unique: make(map[string]map[string]*row),
		dups: make(map[string]map[string][]*row)}
	for i := range obj.Fields {
		f := &obj.Fields[i]
		switch {
		case computed(f):
		case f.Type.textual():
			t.slots[f.Name] = slot{index: t.nText, text: true}
			t.nText++
		default:
			t.slots[f.Name] = slot{index: t.nNums}
			t.nNums++
		}
		if f.Unique || f.ExternalID {
			t.unique[f.Name] = make(map[string]*row)
			t.dups[f.Name] = make(map[string][]*row)
		}
	}
	return t
}

// computed reports whether a field's value comes from the row itself rather than a write.
func computed(f *Field) bool {
	switch f.Name {
	case "Id", "CreatedDate", "LastModifiedDate", "SystemModstamp":
		return true
	}
	return f.Calculated && f.Name == "Name" // Contact.Name is FirstName plus LastName
}

// newValues is a row with every field null.
func (t *table) newValues() values {
	v := values{text: make([]string, t.nText), nums: make([]uint64, t.nNums)}
	for i := range v.nums {
		v.nums[i] = nullNum
	}
	return v
}

// get reads a stored field: nil for null, else a string, float64, bool or time.Time.
func (t *table) get(v values, f *Field) any {
	sl, ok := t.slots[f.Name]
	switch {
	case !ok:
		return nil
	case sl.text:
		if s := v.text[sl.index]; s != "" {
			return s
		}
		return nil
	}
	n := v.nums[sl.index]
	if n == nullNum {
		return nil
	}
	switch f.Type {
	case TypeDateTime:
		return fromMillis(int64(n))
	case TypeDouble:
		return math.Float64frombits(n)
	case TypeBoolean:
		return n == 1
	}
	return nil
}

// isNull reports whether a field has no value, as get returning nil would, without boxing it.
func (t *table) isNull(v values, f *Field) bool {
	sl, ok := t.slots[f.Name]
	switch {
	case !ok:
		return true
	case sl.text:
		return v.text[sl.index] == ""
	}
	return v.nums[sl.index] == nullNum
}

// text reads a textual field by canonical name without boxing it: "" for null, or for a
// field that is not stored as text.
func (t *table) text(v values, name string) string {
	if sl, ok := t.slots[name]; ok && sl.text {
		return v.text[sl.index]
	}
	return ""
}

// set stores a value convert or resolveValues produced; nil makes the field null. Fields
// computed from the row are not stored and ignore it.
func (t *table) set(v values, f *Field, x any) {
	sl, ok := t.slots[f.Name]
	switch {
	case !ok:
		return
	case sl.text:
		s, _ := x.(string)
		// A restricted picklist holds few distinct values: share the schema's copy.
		if i := slices.Index(f.PicklistValues, s); i >= 0 {
			s = f.PicklistValues[i]
		}
		v.text[sl.index] = s
		return
	}
	n := nullNum
	switch x := x.(type) {
	case time.Time:
		n = uint64(x.UnixMilli())
	case float64:
		n = math.Float64bits(x)
	case bool:
		n = 0
		if x {
			n = 1
		}
	}
	v.nums[sl.index] = n
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// rowByID finds a row by its 18-character Id. A table numbers its rows' Ids in creation
// order (newID), so an Id names its row's position and needs no index.
func (t *table) rowByID(id string) *row {
	seq, ok := idSeq(id)
	if !ok || seq == 0 || seq > uint64(len(t.rows)) {
		return nil
	}
	if r := t.rows[seq-1]; r.id == id {
		return r
	}
	return nil
}

// lookup finds the row whose field equals value: by Id, or case-insensitively through a
// unique index.
func (t *table) lookup(field *Field, value string) *row {
	if field.Type == TypeID {
		id, ok := canonicalID(value)
		if !ok {
			return nil
		}
		return t.rowByID(id)
	}
	return t.unique[field.Name][strings.ToLower(value)]
}

// matches lists the Ids of every row whose indexed field equals value.
func (t *table) matches(field *Field, value string) []string {
	v := strings.ToLower(value)
	first := t.unique[field.Name][v]
	if first == nil {
		return nil
	}
	ids := []string{first.id}
	for _, r := range t.dups[field.Name][v] {
		ids = append(ids, r.id)
	}
	return ids
}

// value reads one field of a row, computing the fields Salesforce computes.
func (t *table) value(r *row, f *Field) any {
	switch f.Name {
	case "Id":
		return r.id
	case "CreatedDate":
		return fromMillis(r.created)
	case "LastModifiedDate", "SystemModstamp":
		return fromMillis(r.modified)
	}
	if f.Calculated && f.Name == "Name" {
		return strings.TrimSpace(t.text(r.values, "FirstName") + " " + t.text(r.values, "LastName"))
	}
	return t.get(r.values, f)
}

func (t *table) record(r *row) Record {
	rec := make(Record, len(t.obj.Fields))
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
	if _, indexed := t.unique[f.Name]; indexed || f.Type == TypeID {
		if r := t.lookup(f, value); r != nil {
			return t.record(r), true
		}
		return nil, false
	}
	for _, r := range t.rows {
		if v := t.text(r.values, f.Name); v != "" && strings.EqualFold(v, value) {
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
	out := make([]Write, len(s.writes))
	for i, w := range s.writes {
		out[i] = Write{SObject: w.table.obj.Name, ExternalID: w.externalID, ID: w.row.id, Created: w.created}
	}
	return out
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

// Writable reports whether an object has the field and a client may set it: false for a field
// the org lacks, numbers itself (auto-number) or computes.
func (s *Sim) Writable(sobject, field string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.table(sobject)
	if t == nil {
		return false
	}
	f := t.obj.field(field)
	return f != nil && !f.AutoNumber && !f.Calculated && (f.Createable || f.Updateable)
}
