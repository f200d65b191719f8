package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
)

// PreflightError lists every problem found in the org before the first write.
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

// Preflight describes every mapped object in scope and checks that each mapped field exists
// and is writable, that each relationship points to the mapped parent, and that each upsert
// key is an external id. It returns a *PreflightError naming every problem, or an error of
// the describe calls themselves (auth, network) for the caller to classify.
func Preflight(ctx context.Context, sink Sink, m *mapping.Mapping, objects []string, sc runstore.Scope) error {
	described := map[string]*salesforce.SObjectDescribe{}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

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

	for _, name := range objects {
		o, _ := m.Object(name)
		d, err := describe(o.SObject)
		if err != nil {
			return fmt.Errorf("describe %s: %w", o.SObject, err)
		}
		if d == nil {
			add("%s: object not found in the org (is the Skilljar managed package installed, and does the integration user have access? the mapping names it for %s)", o.SObject, name)
			continue
		}
		if ext, ok := d.Field(o.ExternalID); !ok {
			add("%s.%s: upsert key not found on the object", o.SObject, o.ExternalID)
		} else if !ext.ExternalID && !ext.IDLookup {
			add("%s.%s: upsert key is not an External ID field; mark it External ID in Setup or map another key", o.SObject, o.ExternalID)
		}
		for _, f := range o.Fields {
			if f.Relationship != "" {
				problems = append(problems, checkRelationship(d, f, m)...)
				continue
			}
			fd, ok := d.Field(f.Field)
			if !ok {
				add("%s.%s: field not found (mapped from %s.%s); fix the mapping or grant the integration user field access", o.SObject, f.Field, name, f.Source)
				continue
			}
			if !fd.Createable || !fd.Updateable {
				add("%s.%s: field is not writable by the integration user (createable=%t, updateable=%t); check field-level security or remove it from the mapping", o.SObject, f.Field, fd.Createable, fd.Updateable)
			}
			if allowed, typed := fieldTypes[f.Type]; typed && !contains(allowed, fd.Type) {
				add("%s.%s: field type is %s but the mapping writes a %s", o.SObject, f.Field, fd.Type, f.Type)
			}
		}
	}
	if sc.LinkContacts {
		p, err := checkContacts(m, objects, sc.CreateContacts, describe)
		if err != nil {
			return err
		}
		problems = append(problems, p...)
	}
	if len(problems) > 0 {
		return &PreflightError{Problems: problems}
	}
	return nil
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

func checkRelationship(d *salesforce.SObjectDescribe, f mapping.Field, m *mapping.Mapping) []string {
	var fd *salesforce.FieldDescribe
	for i := range d.Fields {
		if strings.EqualFold(d.Fields[i].RelationshipName, f.Relationship) {
			fd = &d.Fields[i]
			break
		}
	}
	if fd == nil {
		return []string{fmt.Sprintf("%s.%s: relationship not found (no lookup field has this relationship name)", d.Name, f.Relationship)}
	}
	var problems []string
	if !fd.Createable || !fd.Updateable {
		problems = append(problems, fmt.Sprintf("%s.%s: lookup is not writable by the integration user (createable=%t, updateable=%t)", d.Name, fd.Name, fd.Createable, fd.Updateable))
	}
	parent, _ := m.Object(f.Parent)
	matches := false
	for _, ref := range fd.ReferenceTo {
		if strings.EqualFold(ref, parent.SObject) {
			matches = true
		}
	}
	if !matches {
		problems = append(problems, fmt.Sprintf("%s.%s: lookup points to %s, but the mapping's %s is %s", d.Name, fd.Name, strings.Join(fd.ReferenceTo, ", "), f.Parent, parent.SObject))
	}
	return problems
}
