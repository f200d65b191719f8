package salesforcesim

import (
	"errors"
	"fmt"
	"strings"
)

// FieldType is a describe field type, as GET sobjects/{Object}/describe spells it.
type FieldType string

// The field types the simulated schema uses.
const (
	TypeID       FieldType = "id"
	TypeString   FieldType = "string"
	TypeEmail    FieldType = "email"
	TypeTextArea FieldType = "textarea"
	TypeURL      FieldType = "url"
	TypePicklist FieldType = "picklist"
	TypeRef      FieldType = "reference"
	TypeDateTime FieldType = "datetime"
	TypeDouble   FieldType = "double"
	TypeBoolean  FieldType = "boolean"
)

// textual reports whether values of the type are stored and compared as strings.
func (t FieldType) textual() bool {
	switch t {
	case TypeID, TypeString, TypeEmail, TypeTextArea, TypeURL, TypePicklist, TypeRef:
		return true
	}
	return false
}

func (t FieldType) soapType() string {
	switch t {
	case TypeID, TypeRef:
		return "tns:ID"
	case TypeDateTime:
		return "xsd:dateTime"
	case TypeDouble:
		return "xsd:double"
	case TypeBoolean:
		return "xsd:boolean"
	}
	return "xsd:string"
}

// Field is one field of a simulated sObject, with the describe flags the simulator enforces.
type Field struct {
	Name   string
	Label  string
	Type   FieldType
	Length int // maximum characters for textual types; 0 otherwise

	Createable bool
	Updateable bool
	// Nillable false on a createable field makes it required (REQUIRED_FIELD_MISSING) unless
	// DefaultedOnCreate is set.
	Nillable          bool
	DefaultedOnCreate bool
	ExternalID        bool
	Unique            bool // enforced case-insensitively, like a unique external id
	IDLookup          bool
	Calculated        bool
	Custom            bool
	// AutoNumber fields are numbered by the org on insert and written by no one.
	AutoNumber bool
	// MasterDetail makes a reference the master of a master-detail relationship: required,
	// and writing the child locks the parent (reference/salesforce.md §8.1, §8.5).
	MasterDetail bool

	ReferenceTo      []string
	RelationshipName string
	PicklistValues   []string // a restricted picklist: any other value is rejected
}

// SObject is one simulated object type and its fields.
type SObject struct {
	Name      string
	Label     string
	KeyPrefix string
	Custom    bool
	Fields    []Field
}

// field finds a field by name, case-insensitively as Salesforce matches API names.
func (o *SObject) field(name string) *Field {
	for i := range o.Fields {
		if strings.EqualFold(o.Fields[i].Name, name) {
			return &o.Fields[i]
		}
	}
	return nil
}

// externalID is the object's first external id field, or nil.
func (o *SObject) externalID() *Field {
	for i := range o.Fields {
		if o.Fields[i].ExternalID {
			return &o.Fields[i]
		}
	}
	return nil
}

// relationship finds the reference field whose relationship name is name.
func (o *SObject) relationship(name string) *Field {
	for i := range o.Fields {
		f := &o.Fields[i]
		if f.Type == TypeRef && strings.EqualFold(f.RelationshipName, name) {
			return f
		}
	}
	return nil
}

// validateSchema checks what the simulator relies on: unique object names, 3-character key
// prefixes, and lookups that name a known object and a relationship.
func validateSchema(schema []SObject) error {
	names := make(map[string]bool)
	for _, o := range schema {
		if names[strings.ToLower(o.Name)] {
			return fmt.Errorf("schema: object %s is defined twice", o.Name)
		}
		names[strings.ToLower(o.Name)] = true
	}
	var errs []error
	for _, o := range schema {
		if len(o.KeyPrefix) != 3 || !isAlnum(o.KeyPrefix) {
			errs = append(errs, fmt.Errorf("schema: %s.KeyPrefix %q must be 3 letters or digits", o.Name, o.KeyPrefix))
		}
		if o.field("Id") == nil {
			errs = append(errs, fmt.Errorf("schema: %s has no Id field", o.Name))
		}
		for _, f := range o.Fields {
			if f.Type != TypeRef {
				continue
			}
			if len(f.ReferenceTo) != 1 || !names[strings.ToLower(f.ReferenceTo[0])] || f.RelationshipName == "" {
				errs = append(errs, fmt.Errorf("schema: lookup %s.%s needs one known ReferenceTo object and a RelationshipName",
					o.Name, f.Name))
			}
		}
	}
	return errors.Join(errs...)
}

// ObfuscatedID is the external id every Skilljar package object carries: Skilljar's own id.
const ObfuscatedID = "skilljar__Obfuscated_Id__c"

// DefaultSchema is Contact plus the Skilljar managed package's objects (namespace skilljar__).
// Names marked UNCONFIRMED are guesses (reference/skilljar.md §6): the package's full field
// list is only published as a spreadsheet. Lookups are modelled as reparentable lookups
// because whether Course Progress is master-detail to Student is UNCONFIRMED.
func DefaultSchema() []SObject {
	return []SObject{
		contact(),
		customObject("skilljar__Student__c", "Student", "a01",
			textField("skilljar__Email__c", "Email", TypeEmail, 80),
			textField("skilljar__First_Name__c", "First Name", TypeString, 255), // UNCONFIRMED name
			textField("skilljar__Last_Name__c", "Last Name", TypeString, 255),   // UNCONFIRMED name
			lookup("skilljar__Contact__c", "Contact", "Contact", "skilljar__Contact__r", true),
		),
		// UNCONFIRMED object name (only the skilljar__Course__r relationship is sourced).
		customObject("skilljar__Course__c", "Course", "a02",
			textField("skilljar__Title__c", "Title", TypeString, 255),
			textField("skilljar__Short_Description__c", "Short Description", TypeTextArea, 255), // UNCONFIRMED
		),
		// UNCONFIRMED object name.
		customObject("skilljar__Published_Course__c", "Published Course", "a03",
			lookup("skilljar__Course__c", "Course", "skilljar__Course__c", "skilljar__Course__r", true),
			textField("skilljar__Domain_Name__c", "Domain Name", TypeString, 255), // UNCONFIRMED
			textField("skilljar__Course_Url__c", "Course URL", TypeURL, 255),      // UNCONFIRMED
		),
		customObject("skilljar__Course_Progress__c", "Course Progress", "a04",
			lookup("skilljar__Student__c", "Student", "skilljar__Student__c", "skilljar__Student__r", false),
			lookup("skilljar__Course__c", "Course", "skilljar__Course__c", "skilljar__Course__r", true),
			lookup("skilljar__Published_Course__c", "Published Course", "skilljar__Published_Course__c",
				"skilljar__Published_Course__r", true),
			lookup("skilljar__Contact__c", "Contact", "Contact", "skilljar__Contact__r", true),
			valueField("skilljar__Enrolled_At__c", "Enrolled At", TypeDateTime), // UNCONFIRMED
			valueField("skilljar__Completed_At__c", "Completed At", TypeDateTime),
			picklist("skilljar__Success_Status__c", "Success Status", "PASSED", "FAILED"),
			valueField("skilljar__Score__c", "Score", TypeDouble),                       // UNCONFIRMED
			valueField("skilljar__Max_Score__c", "Max Score", TypeDouble),               // UNCONFIRMED
			valueField("skilljar__Latest_Activity__c", "Latest Activity", TypeDateTime), // UNCONFIRMED
			textField("skilljar__Enrollment_Id__c", "Enrollment Id", TypeString, 255),   // UNCONFIRMED
			valueField("skilljar__Active__c", "Active", TypeBoolean),                    // UNCONFIRMED
		),
	}
}

func contact() SObject {
	return SObject{
		Name: "Contact", Label: "Contact", KeyPrefix: "003",
		Fields: append([]Field{
			idField(),
			{Name: "FirstName", Label: "First Name", Type: TypeString, Length: 40, Createable: true, Updateable: true, Nillable: true},
			{Name: "LastName", Label: "Last Name", Type: TypeString, Length: 80, Createable: true, Updateable: true},
			{Name: "Email", Label: "Email", Type: TypeEmail, Length: 80, Createable: true, Updateable: true, Nillable: true},
			{Name: "Name", Label: "Full Name", Type: TypeString, Length: 121, Calculated: true, Nillable: false},
		}, auditFields()...),
	}
}

// customObject adds the fields every custom object has: Id, Name (defaulted to the Id when
// omitted), the audit dates and the package's external id.
func customObject(name, label, prefix string, fields ...Field) SObject {
	all := []Field{
		idField(),
		{Name: "Name", Label: label + " Name", Type: TypeString, Length: 80, Createable: true, Updateable: true,
			DefaultedOnCreate: true},
		{Name: ObfuscatedID, Label: "Obfuscated Id", Type: TypeString, Length: 255, Createable: true, Updateable: true,
			Nillable: true, ExternalID: true, Unique: true, IDLookup: true, Custom: true},
	}
	all = append(all, fields...)
	all = append(all, auditFields()...)
	return SObject{Name: name, Label: label, KeyPrefix: prefix, Custom: true, Fields: all}
}

func idField() Field {
	return Field{Name: "Id", Label: "Record ID", Type: TypeID, Length: 18, DefaultedOnCreate: true, IDLookup: true}
}

func auditFields() []Field {
	audit := func(name, label string) Field {
		return Field{Name: name, Label: label, Type: TypeDateTime, DefaultedOnCreate: true}
	}
	return []Field{
		audit("CreatedDate", "Created Date"),
		audit("LastModifiedDate", "Last Modified Date"),
		audit("SystemModstamp", "System Modstamp"),
	}
}

func textField(name, label string, t FieldType, length int) Field {
	return Field{Name: name, Label: label, Type: t, Length: length, Createable: true, Updateable: true,
		Nillable: true, Custom: true}
}

func valueField(name, label string, t FieldType) Field {
	return Field{Name: name, Label: label, Type: t, Createable: true, Updateable: true, Nillable: true, Custom: true}
}

func picklist(name, label string, values ...string) Field {
	f := textField(name, label, TypePicklist, 255)
	f.PicklistValues = values
	return f
}

func lookup(name, label, to, relationship string, nillable bool) Field {
	return Field{Name: name, Label: label, Type: TypeRef, Length: 18, Createable: true, Updateable: true,
		Nillable: nillable, Custom: true, ReferenceTo: []string{to}, RelationshipName: relationship}
}
