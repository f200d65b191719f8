// Package mapping turns Skilljar records into Salesforce rows, driven by a mapping file: an
// embedded default for the Skilljar managed package, or one named by BACKFILL_MAPPING_FILE.
package mapping

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sjbackfill/backfill/internal/salesforce"
)

//go:embed default.json
var defaultFile []byte

// Field maps one source value to one sObject field, or one source id to a parent reference.
type Field struct {
	// Field is the sObject field API name written with the value.
	Field string `json:"field,omitempty"`
	// Relationship is the relationship name (…__r) of a parent lookup; the value is the
	// parent's external id, so children never need a parent's Salesforce Id.
	Relationship string `json:"relationship,omitempty"`
	// Parent is the mapping object the relationship points to.
	Parent string `json:"parent,omitempty"`
	// Source is the key of the value in the source record (see SourceKeys).
	Source string `json:"source"`
	// Type converts the value: string (default), datetime, number or boolean.
	Type string `json:"type,omitempty"`
	// Truncate cuts strings to this many characters; only for label fields such as Name,
	// where a shortened value loses nothing the record keeps elsewhere.
	Truncate int `json:"truncate,omitempty"`
	// ValueMap replaces source values on the way to Salesforce, e.g. Skilljar's "PASSED"
	// by an org's picklist value "Passed"; values it does not name pass unchanged.
	ValueMap map[string]string `json:"value_map,omitempty"`
	// Confirmed is false for names no public source states; preflight checks them all.
	Confirmed bool   `json:"confirmed"`
	Note      string `json:"note,omitempty"`

	// parentExternalID is the parent object's external id field, resolved after validation.
	parentExternalID string
}

// Object maps one kind of Skilljar record to one sObject.
type Object struct {
	Name       string  `json:"name"`
	SObject    string  `json:"sobject"`
	ExternalID string  `json:"external_id"`
	Confirmed  bool    `json:"confirmed"`
	Note       string  `json:"note,omitempty"`
	Fields     []Field `json:"fields"`
	// ContactField is the object's lookup to Contact, set from the learner's Contact when a
	// run links Contacts (Link Contacts); empty means the object carries none.
	ContactField string `json:"contact_field,omitempty"`
}

// Mapping is a whole mapping file.
type Mapping struct {
	Version int      `json:"version"`
	Note    string   `json:"note,omitempty"`
	Objects []Object `json:"objects"`
}

// Default returns the embedded mapping for the Skilljar managed package.
func Default() *Mapping {
	m, err := Parse(defaultFile)
	if err != nil {
		panic("mapping: embedded default is invalid: " + err.Error())
	}
	return m
}

// Load reads and validates a mapping file.
func Load(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping file: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("mapping file %s: %w", path, err)
	}
	return m, nil
}

// Parse decodes and validates a mapping; the error lists every problem found.
func Parse(b []byte) (*Mapping, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Mapping
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a valid mapping document: %w", err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	for i := range m.Objects {
		for j := range m.Objects[i].Fields {
			f := &m.Objects[i].Fields[j]
			if p, ok := m.Object(f.Parent); ok {
				f.parentExternalID = p.ExternalID
			}
		}
	}
	return &m, nil
}

// Names lists the objects this mapping maps, in dependency order.
func (m *Mapping) Names() []string {
	var out []string
	for _, name := range Order {
		if _, ok := m.Object(name); ok {
			out = append(out, name)
		}
	}
	return out
}

// WithParents returns the requested objects with every parent their relationships refer
// to, transitively, in dependency order, and the parents it added: Salesforce rejects a
// child row naming a parent it does not hold, so parents are written first. Requesting
// nothing means every mapped object. Names the mapping does not map are left out.
func (m *Mapping) WithParents(requested []string) (objects, added []string) {
	if len(requested) == 0 {
		return m.Names(), nil
	}
	want := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		o, ok := m.Object(name)
		if !ok || want[name] {
			return
		}
		want[name] = true
		for _, f := range o.Fields {
			if f.Parent != "" {
				visit(f.Parent)
			}
		}
	}
	for _, name := range requested {
		visit(name)
	}
	for _, name := range Order {
		if want[name] {
			objects = append(objects, name)
			if !slices.Contains(requested, name) {
				added = append(added, name)
			}
		}
	}
	return objects, added
}

// Object returns the named object's mapping.
func (m *Mapping) Object(name string) (*Object, bool) {
	for i := range m.Objects {
		if m.Objects[i].Name == name {
			return &m.Objects[i], true
		}
	}
	return nil, false
}

var fieldTypes = map[string]bool{"": true, "string": true, "datetime": true, "number": true, "boolean": true}

func (m *Mapping) validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if m.Version != 1 {
		add("version: %d is not supported; set \"version\": 1", m.Version)
	}
	if len(m.Objects) == 0 {
		add("objects: the mapping maps no objects; map at least one of %s", strings.Join(Order, ", "))
	}
	seen := map[string]bool{}
	for _, o := range m.Objects {
		seen[o.Name] = true
	}
	for i, o := range m.Objects {
		at := fmt.Sprintf("objects[%d]", i)
		keys, known := SourceKeys[o.Name]
		if !known {
			add("%s.name: %q is not a Skilljar record kind; use one of %s", at, o.Name, strings.Join(Order, ", "))
		}
		if o.SObject == "" {
			add("%s.sobject: missing; name the Salesforce object API name, e.g. skilljar__Student__c", at)
		}
		if o.ExternalID == "" {
			add("%s.external_id: missing; name the external id field upserts match on, e.g. skilljar__Obfuscated_Id__c", at)
		}
		targets := map[string]bool{}
		for j, f := range o.Fields {
			fat := fmt.Sprintf("%s.fields[%d]", at, j)
			target := f.Field
			switch {
			case f.Field != "" && f.Relationship != "":
				add("%s: set either field or relationship, not both", fat)
			case f.Field == "" && f.Relationship == "":
				add("%s: set field (an sObject field) or relationship (a parent lookup …__r)", fat)
			case f.Relationship != "":
				target = f.Relationship
				if !strings.HasSuffix(strings.ToLower(f.Relationship), "__r") {
					add("%s.relationship: %q is not a relationship name; custom relationships end in __r", fat, f.Relationship)
				}
				if !seen[f.Parent] {
					add("%s.parent: %q is not an object of this mapping; parents must be mapped so they are written first", fat, f.Parent)
				} else if indexOf(f.Parent) >= indexOf(o.Name) {
					add("%s.parent: %s is written after %s; a parent must come earlier in %s", fat, f.Parent, o.Name, strings.Join(Order, " → "))
				}
			}
			if known && !keys[f.Source] {
				add("%s.source: %q is not a field of %s records; known: %s", fat, f.Source, o.Name, strings.Join(slices.Sorted(maps.Keys(keys)), ", "))
			}
			if !fieldTypes[f.Type] {
				add("%s.type: %q is unknown; use string, datetime, number or boolean", fat, f.Type)
			}
			if f.Truncate < 0 {
				add("%s.truncate: must be 0 (off) or a positive length", fat)
			}
			if len(f.ValueMap) > 0 && (f.Relationship != "" || f.Type != "" && f.Type != "string") {
				add("%s.value_map: maps text values only; remove it or make the field a string field", fat)
			}
			if target != "" {
				if targets[strings.ToLower(target)] {
					add("%s: %s is mapped twice in %s", fat, target, o.Name)
				}
				targets[strings.ToLower(target)] = true
			}
		}
		if o.ExternalID != "" && !targets[strings.ToLower(o.ExternalID)] {
			add("%s.fields: no field maps the external id %s; map it from \"id\"", at, o.ExternalID)
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func indexOf(name string) int {
	for i, n := range Order {
		if n == name {
			return i
		}
	}
	return len(Order)
}

// SalesforceTime is how datetimes are written: UTC with milliseconds, Salesforce's precision.
const SalesforceTime = "2006-01-02T15:04:05.000Z"

// Row maps a source record to a Salesforce row and returns it with its external id. Keys
// absent from the source are left out of the row, so an upsert leaves those fields as they
// are; keys present with a nil value clear the field.
func (o *Object) Row(src Source) (salesforce.Record, string, error) {
	row := make(salesforce.Record, len(o.Fields))
	var extID string
	for _, f := range o.Fields {
		raw, ok := src[f.Source]
		if !ok {
			continue
		}
		v, err := convert(raw, f)
		if err != nil {
			return nil, "", fmt.Errorf("%s.%s from %s: %w", o.Name, f.Field+f.Relationship, f.Source, err)
		}
		if f.Relationship != "" {
			if v == nil {
				row[f.Relationship] = nil
				continue
			}
			row[f.Relationship] = map[string]any{f.parentExternalID: v}
			continue
		}
		row[f.Field] = v
		if strings.EqualFold(f.Field, o.ExternalID) {
			extID, _ = v.(string)
		}
	}
	if extID == "" {
		return nil, "", fmt.Errorf("%s: source record has no value for the external id %s", o.Name, o.ExternalID)
	}
	return row, extID, nil
}

func convert(raw any, f Field) (any, error) {
	if raw == nil {
		return nil, nil
	}
	switch f.Type {
	case "datetime":
		switch t := raw.(type) {
		case time.Time:
			return t.UTC().Format(SalesforceTime), nil
		case string:
			p, err := time.Parse(time.RFC3339Nano, t)
			if err != nil {
				return nil, fmt.Errorf("%q is not an ISO-8601 time", t)
			}
			return p.UTC().Format(SalesforceTime), nil
		}
	case "number":
		switch n := raw.(type) {
		case float64:
			return n, nil
		case int:
			return float64(n), nil
		}
	case "boolean":
		if b, ok := raw.(bool); ok {
			return b, nil
		}
	default:
		s := fmt.Sprint(raw)
		if t, ok := raw.(time.Time); ok {
			s = t.UTC().Format(SalesforceTime)
		}
		if v, ok := f.ValueMap[s]; ok {
			s = v
		}
		if f.Truncate > 0 && utf8.RuneCountInString(s) > f.Truncate {
			s = string([]rune(s)[:f.Truncate])
		}
		return s, nil
	}
	return nil, fmt.Errorf("%v (%T) is not a %s", raw, raw, f.Type)
}
