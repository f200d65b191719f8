package mapping

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sjbackfill/backfill/internal/salesforce"
)

// ReviewPrefix starts the note of every object and field Suggest changed or could not fit,
// so a reviewer can search the file for it. The parser keeps notes as they are, so the
// suggested file loads unchanged.
const ReviewPrefix = "REVIEW: "

// Review is one difference between the mapping and the org, for a person to check.
type Review struct {
	Object string `json:"object"`
	// Field is the mapping's field or relationship, as it was before Suggest; empty for the
	// object itself.
	Field string `json:"field,omitempty"`
	Note  string `json:"note"`
}

// Suggestion is a mapping fitted to an org and every difference Suggest found.
type Suggestion struct {
	Mapping *Mapping `json:"mapping"`
	Review  []Review `json:"review"`
}

// Describe returns an sObject's describe, nil when the org has no such object.
type Describe func(ctx context.Context, sobject string) (*salesforce.SObjectDescribe, error)

// Suggest fits m to the org: each mapped field is kept where the org has its API name (in
// the org's spelling), else replaced by the org's field whose label matches the name's words
// ("skilljar__Completed_At__c" → "Completed At"), else left for review. A relationship is
// matched by name, then by a lookup to the parent's sObject. Every difference is noted on
// the entry itself (its note, starting ReviewPrefix) and returned in Review; the result is
// a copy, m is unchanged. What depends on Skilljar's values (a restricted picklist's
// value_map) is left to preflight, which knows them.
func Suggest(ctx context.Context, m *Mapping, describe Describe) (*Suggestion, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	out := &Mapping{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	s := &Suggestion{Mapping: out, Review: []Review{}}
	sobjects := map[string]string{}
	for _, o := range out.Objects {
		sobjects[o.Name] = o.SObject
	}
	for i := range out.Objects {
		o := &out.Objects[i]
		d, err := describe(ctx, o.SObject)
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", o.SObject, err)
		}
		if d == nil {
			s.note(o, nil, fmt.Sprintf("%s is not in the org: install the Skilljar managed package, or name the org's object for %s", o.SObject, o.Name))
			continue
		}
		if fd, ok := fit(d, o.ExternalID); ok {
			if fd.Name != o.ExternalID {
				s.note(o, nil, fmt.Sprintf("upsert key %s matched the org's %s (%q) by label", o.ExternalID, fd.Name, fd.Label))
				o.ExternalID = fd.Name
			}
			if !fd.Unique {
				s.note(o, nil, fmt.Sprintf("upsert key %s is not unique: upserts need View All Data and fail on duplicates", o.ExternalID))
			}
		} else {
			s.note(o, nil, fmt.Sprintf("upsert key %s is not in the org: choose an External ID field of %s", o.ExternalID, o.SObject))
		}
		for j := range o.Fields {
			f := &o.Fields[j]
			if f.Relationship != "" {
				s.fitRelationship(d, o, f, sobjects[f.Parent])
			} else if !strings.EqualFold(f.Field, o.ExternalID) {
				s.fitField(d, o, f)
			}
		}
	}
	return s, nil
}

// Note adds a difference found elsewhere (by preflight, say) to the review, and to the note
// of the named object, or of its field or relationship when field is not empty.
func (s *Suggestion) Note(object, field, note string) {
	for i := range s.Mapping.Objects {
		o := &s.Mapping.Objects[i]
		if o.Name != object {
			continue
		}
		for j := range o.Fields {
			if f := &o.Fields[j]; field != "" && (strings.EqualFold(f.Field, field) || strings.EqualFold(f.Relationship, field)) {
				s.note(o, f, note)
				return
			}
		}
		s.note(o, nil, note)
		return
	}
	s.Review = append(s.Review, Review{Object: object, Field: field, Note: note})
}

func (s *Suggestion) note(o *Object, f *Field, note string) {
	r := Review{Object: o.Name, Note: note}
	target := &o.Note
	if f != nil {
		r.Field = cmp.Or(f.Relationship, f.Field)
		target = &f.Note
	}
	s.Review = append(s.Review, r)
	// The newest difference first, then what the note said before.
	if rest := strings.TrimPrefix(*target, ReviewPrefix); rest != "" {
		note += "; " + rest
	}
	*target = ReviewPrefix + note
}

func (s *Suggestion) fitField(d *salesforce.SObjectDescribe, o *Object, f *Field) {
	fd, ok := fit(d, f.Field)
	switch {
	case !ok && f.Confirmed:
		s.note(o, f, fmt.Sprintf("%s is not in the org and no field is labelled %q: runs are refused until it is mapped to the org's field or removed", f.Field, label(f.Field)))
		return
	case !ok:
		s.note(o, f, fmt.Sprintf("%s is not in the org and no field is labelled %q: runs leave %s out; map the org's field or remove the entry", f.Field, label(f.Field), f.Source))
		return
	case fd.Name != f.Field && !strings.EqualFold(fd.Name, f.Field):
		s.note(o, f, fmt.Sprintf("%s is not in the org; matched the org's %s by its label %q", f.Field, fd.Name, fd.Label))
	}
	f.Field = fd.Name
	switch {
	case fd.AutoNumber:
		s.note(o, f, "an auto-number the org assigns: runs leave it out")
	case fd.Createable && !fd.Updateable:
		s.note(o, f, "createable but not updateable: runs write it on insert only")
	}
}

func (s *Suggestion) fitRelationship(d *salesforce.SObjectDescribe, o *Object, f *Field, parent string) {
	i := slices.IndexFunc(d.Fields, func(fd salesforce.FieldDescribe) bool { return strings.EqualFold(fd.RelationshipName, f.Relationship) })
	if i < 0 {
		i = slices.IndexFunc(d.Fields, func(fd salesforce.FieldDescribe) bool {
			return fd.RelationshipName != "" && slices.ContainsFunc(fd.ReferenceTo, func(r string) bool { return strings.EqualFold(r, parent) })
		})
		if i < 0 {
			s.note(o, f, fmt.Sprintf("no lookup named %s and none to %s: create the lookup or remove the entry", f.Relationship, parent))
			return
		}
		s.note(o, f, fmt.Sprintf("%s is not in the org; matched the org's lookup %s (%s) to %s", f.Relationship, d.Fields[i].Name, d.Fields[i].RelationshipName, parent))
	}
	fd := d.Fields[i]
	f.Relationship = fd.RelationshipName
	if fd.Createable && !fd.Updateable {
		s.note(o, f, "a master-detail without reparenting: runs set it on insert only")
	}
}

// fit finds the org's field for a mapped API name: by the name, else by its label.
func fit(d *salesforce.SObjectDescribe, name string) (salesforce.FieldDescribe, bool) {
	if fd, ok := d.Field(name); ok {
		return fd, true
	}
	want := squash(label(name))
	for _, fd := range d.Fields {
		if squash(fd.Label) == want {
			return fd, true
		}
	}
	return salesforce.FieldDescribe{}, false
}

// label is the label Salesforce proposes for a custom field's API name: the name without
// its namespace and __c, its underscores as spaces.
func label(name string) string {
	name = strings.TrimSuffix(name, "__c")
	if _, rest, ok := strings.Cut(name, "__"); ok {
		name = rest
	}
	return strings.ReplaceAll(name, "_", " ")
}

// squash compares labels ignoring case, spaces and underscores.
func squash(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '_' {
			return -1
		}
		return r
	}, strings.ToLower(s))
}
