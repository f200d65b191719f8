package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
)

// PreflightError lists every problem found in the org before the first write that the run
// cannot adapt to.
type PreflightError struct{ Problems []string }

func (e *PreflightError) Error() string {
	return fmt.Sprintf("preflight found %d problem(s) in the Salesforce org; nothing was written: %s",
		len(e.Problems), strings.Join(e.Problems, "; "))
}

// fieldTypes are the describe types a mapping value type may be written to.
var fieldTypes = map[string][]string{
	"datetime": {"datetime", "date"},
	"number":   {"double", "int", "long", "currency", "percent"},
	"boolean":  {"boolean"},
}

// findings collects what preflight sorts a difference into: blocking problems, which fail the
// run before any write, and adaptations, which the run applies and lists in its plan.
type findings struct {
	problems    []string
	adaptations []runstore.Adaptation
}

func (f *findings) block(format string, args ...any) {
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

func (f *findings) adapt(kind string, o *mapping.Object, field, format string, args ...any) {
	f.adaptations = append(f.adaptations, runstore.Adaptation{
		Kind: kind, Object: o.Name, SObject: o.SObject, Field: field, Message: fmt.Sprintf(format, args...),
	})
}

// Preflight describes every mapped object in scope and compares it with the mapping. What the
// run can safely work around becomes an adaptation: a field createable but not updateable
// (a master-detail relationship without reparenting) is written on insert only, an
// auto-numbered field and an unconfirmed field the org lacks are left out, and a non-unique
// external id is warned about. Everything else blocks: a missing object, key, confirmed field
// or relationship, a field the integration user cannot write, a type mismatch, or a restricted
// picklist the mapping's values do not fit. It returns the adaptations, a *PreflightError
// naming every blocking problem, or an error of the describe calls themselves (auth, network)
// for the caller to classify.
func Preflight(ctx context.Context, sink Sink, m *mapping.Mapping, objects []string, sc runstore.Scope) ([]runstore.Adaptation, error) {
	described := map[string]*salesforce.SObjectDescribe{}
	describe := func(sobject string) (*salesforce.SObjectDescribe, error) {
		if d, ok := described[sobject]; ok {
			return d, nil
		}
		d, err := sink.Describe(ctx, sobject)
		var apiErr *salesforce.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			described[sobject] = nil
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		described[sobject] = d
		return d, nil
	}

	var f findings
	for _, name := range objects {
		o, _ := m.Object(name)
		d, err := describe(o.SObject)
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", o.SObject, err)
		}
		if d == nil {
			f.block("%s: object not found in the org (is the Skilljar managed package installed, and does the integration user have access? the mapping names it for %s)", o.SObject, name)
			continue
		}
		f.checkKey(d, o)
		for _, mf := range o.Fields {
			if mf.Relationship != "" {
				f.checkRelationship(d, o, mf, m)
			} else if !strings.EqualFold(mf.Field, o.ExternalID) {
				f.checkField(d, o, mf)
			}
		}
	}
	if sc.LinkContacts {
		p, err := checkContacts(m, objects, sc.CreateContacts, describe)
		if err != nil {
			return nil, err
		}
		f.problems = append(f.problems, p...)
	}
	if len(f.problems) > 0 {
		return f.adaptations, &PreflightError{Problems: f.problems}
	}
	return f.adaptations, nil
}

// checkKey checks the upsert key: it must be an external id, and should be unique.
func (f *findings) checkKey(d *salesforce.SObjectDescribe, o *mapping.Object) {
	ext, ok := d.Field(o.ExternalID)
	switch {
	case !ok:
		f.block("%s.%s: upsert key not found on the object", o.SObject, o.ExternalID)
	case !ext.ExternalID && !ext.IDLookup:
		f.block("%s.%s: upsert key is not an External ID field; mark it External ID in Setup or map another key", o.SObject, o.ExternalID)
	case !ext.Createable:
		f.block("%s.%s: upsert key is not writable by the integration user; check field-level security", o.SObject, o.ExternalID)
	case !ext.Unique:
		// reference/salesforce.md §8.7.
		f.adapt(runstore.AdaptWarn, o, o.ExternalID, "%s.%s is not unique: a record whose key matches several Salesforce records is rejected "+
			"(DUPLICATE_EXTERNAL_ID) until the duplicates are merged, and upserts on it need the View All Data permission; "+
			"mark the field Unique in Setup once no duplicates remain", o.SObject, o.ExternalID)
	}
}

// checkField sorts one mapped value field.
func (f *findings) checkField(d *salesforce.SObjectDescribe, o *mapping.Object, mf mapping.Field) {
	fd, ok := d.Field(mf.Field)
	switch {
	case !ok && mf.Confirmed:
		f.block("%s.%s: field not found (mapped from %s.%s); fix the mapping or grant the integration user field access", o.SObject, mf.Field, o.Name, mf.Source)
		return
	case !ok:
		f.adapt(runstore.AdaptOmit, o, mf.Field, "%s.%s is not in the org; %s.%s is left out. The field's name is unconfirmed "+
			"(reference/skilljar.md §6): map the org's field for it, or remove it from the mapping to silence this", o.SObject, mf.Field, o.Name, mf.Source)
		return
	case fd.AutoNumber:
		f.adapt(runstore.AdaptOmit, o, mf.Field, "%s.%s is an auto-number the org assigns; %s.%s is left out", o.SObject, mf.Field, o.Name, mf.Source)
		return
	case !fd.Createable:
		f.block("%s.%s: field is not writable by the integration user (createable=%t, updateable=%t); check field-level security or remove it from the mapping",
			o.SObject, mf.Field, fd.Createable, fd.Updateable)
		return
	case !fd.Updateable:
		f.adapt(runstore.AdaptCreateOnly, o, mf.Field, "%s.%s can be set only when a record is created; it is written on insert and left out on update",
			o.SObject, mf.Field)
	}
	if allowed, typed := fieldTypes[mf.Type]; typed && !slices.Contains(allowed, fd.Type) {
		f.block("%s.%s: field type is %s but the mapping writes a %s", o.SObject, mf.Field, fd.Type, mf.Type)
	}
	if fd.RestrictedPicklist {
		f.checkPicklist(fd, o, mf)
	}
}

// checkRelationship checks a parent lookup: it must exist, point to the mapped parent and be
// createable; one that is not updateable (master-detail without reparenting, reference/
// salesforce.md §8.1) is written on insert only.
func (f *findings) checkRelationship(d *salesforce.SObjectDescribe, o *mapping.Object, mf mapping.Field, m *mapping.Mapping) {
	i := slices.IndexFunc(d.Fields, func(fd salesforce.FieldDescribe) bool { return strings.EqualFold(fd.RelationshipName, mf.Relationship) })
	if i < 0 {
		f.block("%s.%s: relationship not found (no lookup field has this relationship name)", d.Name, mf.Relationship)
		return
	}
	fd := d.Fields[i]
	switch {
	case !fd.Createable:
		f.block("%s.%s: lookup is not writable by the integration user (createable=%t, updateable=%t)", d.Name, fd.Name, fd.Createable, fd.Updateable)
	case !fd.Updateable:
		f.adapt(runstore.AdaptCreateOnly, o, fd.Name, "%s.%s cannot be reparented (master-detail without Allow Reparenting); "+
			"%s is written when a record is created and left out on update", d.Name, fd.Name, mf.Relationship)
	}
	parent, _ := m.Object(mf.Parent)
	if !slices.ContainsFunc(fd.ReferenceTo, func(ref string) bool { return strings.EqualFold(ref, parent.SObject) }) {
		f.block("%s.%s: lookup points to %s, but the mapping's %s is %s", d.Name, fd.Name, strings.Join(fd.ReferenceTo, ", "), mf.Parent, parent.SObject)
	}
}

// checkContacts checks what Link Contacts needs: a readable Contact object (creatable too
// with Create Contacts) and a writable Contact lookup on the objects that carry one.
func checkContacts(m *mapping.Mapping, objects []string, create bool, describe func(string) (*salesforce.SObjectDescribe, error)) ([]string, error) {
	var problems []string
	d, err := describe("Contact")
	if err != nil {
		return nil, fmt.Errorf("describe Contact: %w", err)
	}
	switch {
	case d == nil || !d.Queryable:
		problems = append(problems, "Contact: not readable by the integration user, which Link Contacts needs; grant access or turn Link Contacts off")
	case create && !d.Createable:
		problems = append(problems, "Contact: the integration user cannot create Contacts, which Create Contacts needs; grant Create on Contact or turn Create Contacts off")
	}
	for _, name := range objects {
		o, _ := m.Object(name)
		if o.ContactField == "" {
			continue
		}
		od, err := describe(o.SObject)
		if err != nil || od == nil {
			continue // reported with the object itself
		}
		f, ok := od.Field(o.ContactField)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s.%s: Contact lookup not found; fix the mapping's contact_field or turn Link Contacts off", o.SObject, o.ContactField))
		case !f.Createable || !f.Updateable:
			problems = append(problems, fmt.Sprintf("%s.%s: Contact lookup is not writable by the integration user", o.SObject, o.ContactField))
		}
	}
	return problems, nil
}
