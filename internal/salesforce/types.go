package salesforce

import (
	"context"
	"strings"
)

// Credentials are what a data call needs: the bearer token and the org's instance URL
// (every data call goes to the instance URL the token response named, never the login host).
type Credentials struct {
	AccessToken string
	InstanceURL string
}

// TokenSource hands the client its credentials. Salesforce sends no expires_in, so the only
// expiry signal is a 401 INVALID_SESSION_ID: the client then calls Refresh with the
// credentials that failed, and the source either rotates them or returns newer ones another
// caller already obtained. A source that cannot refresh returns an error wrapping ErrAuth.
type TokenSource interface {
	Token(ctx context.Context) (Credentials, error)
	Refresh(ctx context.Context, stale Credentials) (Credentials, error)
}

// Record is one sObject row to write: field API name → value. Parent references are nested
// maps keyed by the relationship name, e.g.
// "skilljar__Student__r": map[string]any{"skilljar__Obfuscated_Id__c": "abc"}.
// A nil value clears the field; an absent key leaves it unchanged.
type Record map[string]any

// RecordError is one error Salesforce reported for one record.
type RecordError struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
	// MatchingIDs are the records an upsert's external id matched when it matched several
	// (DUPLICATE_EXTERNAL_ID); the client fills them in.
	MatchingIDs []string `json:"-"`
}

// Result is the outcome for one record of an upsert, in the order the records were sent.
type Result struct {
	ExternalID string
	ID         string
	Success    bool
	Created    bool
	Errors     []RecordError
}

// FieldDescribe is the part of a field's describe the preflight check reads.
type FieldDescribe struct {
	Name             string   `json:"name"`
	Label            string   `json:"label"`
	Type             string   `json:"type"`
	Length           int      `json:"length"`
	Createable       bool     `json:"createable"`
	Updateable       bool     `json:"updateable"`
	Nillable         bool     `json:"nillable"`
	ExternalID       bool     `json:"externalId"`
	Unique           bool     `json:"unique"`
	IDLookup         bool     `json:"idLookup"`
	ReferenceTo      []string `json:"referenceTo"`
	RelationshipName string   `json:"relationshipName"`
	Custom           bool     `json:"custom"`
	Calculated       bool     `json:"calculated"`
	// AutoNumber fields are numbered by the org; RestrictedPicklist ones take only
	// PicklistValues.
	AutoNumber         bool            `json:"autoNumber"`
	RestrictedPicklist bool            `json:"restrictedPicklist"`
	PicklistValues     []PicklistValue `json:"picklistValues"`
}

// PicklistValue is one entry of a picklist field's describe.
type PicklistValue struct {
	Value  string `json:"value"`
	Active bool   `json:"active"`
}

// SObjectDescribe is the part of GET sobjects/{name}/describe the engine reads.
type SObjectDescribe struct {
	Name       string          `json:"name"`
	Label      string          `json:"label"`
	KeyPrefix  string          `json:"keyPrefix"`
	Createable bool            `json:"createable"`
	Updateable bool            `json:"updateable"`
	Queryable  bool            `json:"queryable"`
	Fields     []FieldDescribe `json:"fields"`
}

// Field returns the named field's describe, matching names case-insensitively as Salesforce does.
func (d *SObjectDescribe) Field(name string) (FieldDescribe, bool) {
	for _, f := range d.Fields {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return FieldDescribe{}, false
}
