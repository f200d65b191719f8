package salesforcesim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The API versions the instance answers: collections upsert needs v46.0; the newest is the
// latest release the reference lists.
const (
	minAPIVersion    = 46
	latestAPIVersion = 67
)

// maxCollectionRecords is the sObject Collections limit per request.
const maxCollectionRecords = 200

// maxCollectionChunks is how many runs of one object type a collections insert may hold:
// {account1, account2, contact1, account3} is three chunks (reference: "Create Records Using
// sObject Collections").
const maxCollectionChunks = 10

func (s *Sim) instanceHandler() http.Handler {
	rt := newRoutes()
	rt.handle("GET /services/data", "GET versions", s.handleVersions)
	rt.handle("GET /services/data/{$}", "GET versions", s.handleVersions)
	d := func(method, path, label string, h http.HandlerFunc) {
		rt.handle(method+" /services/data/{version}/"+path, label, s.dataAPI(h))
	}
	d("GET", "limits", "GET limits", s.handleLimits)
	d("GET", "sobjects", "GET sobjects", s.handleGlobalDescribe)
	d("GET", "sobjects/{object}/describe", "GET sobjects/describe", s.handleDescribe)
	d("POST", "sobjects/{object}", "POST sobjects", s.handleCreate)
	d("GET", "sobjects/{object}/{id}", "GET sobjects/id", s.handleGetRecord)
	d("PATCH", "sobjects/{object}/{id}", "PATCH sobjects/id", s.handleUpdate)
	d("GET", "sobjects/{object}/{field}/{value}", "GET sobjects/externalid", s.handleGetRecord)
	d("PATCH", "sobjects/{object}/{field}/{value}", "PATCH sobjects/externalid", s.handleUpsertOne)
	d("POST", "composite/sobjects", "POST composite/sobjects", s.handleCollectionCreate)
	d("PATCH", "composite/sobjects/{object}/{field}", "PATCH composite/sobjects", s.handleCollectionUpsert)
	d("GET", "query", "GET query", s.handleQuery)
	d("GET", "query/{locator}", "GET query/more", s.handleQueryMore)
	d("GET", "queryAll", "GET query", s.handleQuery) // nothing is ever deleted here, so queryAll = query
	d("GET", "queryAll/{locator}", "GET query/more", s.handleQueryMore)
	d("POST", "jobs/ingest", "POST jobs/ingest", s.handleCreateJob)
	d("GET", "jobs/ingest", "GET jobs/ingest", s.handleListJobs)
	d("GET", "jobs/ingest/{id}", "GET jobs/ingest/id", s.handleGetJob)
	d("PATCH", "jobs/ingest/{id}", "PATCH jobs/ingest/id", s.handlePatchJob)
	d("DELETE", "jobs/ingest/{id}", "DELETE jobs/ingest/id", s.handleDeleteJob)
	d("PUT", "jobs/ingest/{id}/batches", "PUT jobs/ingest/batches", s.handleUpload)
	d("GET", "jobs/ingest/{id}/successfulResults", "GET jobs/ingest/successfulResults", s.handleJobResults(resultsSuccessful))
	d("GET", "jobs/ingest/{id}/failedResults", "GET jobs/ingest/failedResults", s.handleJobResults(resultsFailed))
	d("GET", "jobs/ingest/{id}/unprocessedrecords", "GET jobs/ingest/unprocessedrecords", s.handleJobResults(resultsUnprocessed))
	return host{sim: s, routes: rt, instance: true}
}

var versionPattern = regexp.MustCompile(`^v(\d+)\.0$`)

func validVersion(v string) bool {
	m := versionPattern.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	n, _ := strconv.Atoi(m[1])
	return n >= minAPIVersion && n <= latestAPIVersion
}

// dataAPI wraps a data API handler with what Salesforce checks first: the version, the
// session, and the daily request allocation, which every accepted call spends.
func (s *Sim) dataAPI(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !validVersion(r.PathValue("version")) {
			writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
			return
		}
		s.mu.Lock()
		if !s.validToken(bearer(r)) {
			s.mu.Unlock()
			writeAPIError(w, http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid")
			return
		}
		if s.usage >= s.cfg.DailyLimit {
			w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d", s.usage, s.cfg.DailyLimit))
			s.mu.Unlock()
			writeAPIError(w, http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
			return
		}
		s.usage++
		w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d", s.usage, s.cfg.DailyLimit))
		s.mu.Unlock()
		h(w, r)
	}
}

// handleVersions lists the API versions; like Salesforce's Versions resource it needs no
// session and spends no API request.
func (s *Sim) handleVersions(w http.ResponseWriter, r *http.Request) {
	var out []map[string]string
	for v := minAPIVersion; v <= latestAPIVersion; v++ {
		out = append(out, map[string]string{
			"label":   fmt.Sprintf("API %d.0", v),
			"url":     fmt.Sprintf("/services/data/v%d.0", v),
			"version": fmt.Sprintf("%d.0", v),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

type limit struct {
	Max       int `json:"Max"`
	Remaining int `json:"Remaining"`
}

// dailyBulkBatches is the DailyBulkApiBatches allocation (reference §3.6).
const dailyBulkBatches = 15000

func (s *Sim) handleLimits(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := map[string]limit{
		"DailyApiRequests":              {s.cfg.DailyLimit, max(s.cfg.DailyLimit-s.usage, 0)},
		"DailyBulkApiBatches":           {dailyBulkBatches, max(dailyBulkBatches-s.batches, 0)},
		"DailyBulkV2QueryJobs":          {10000, 10000},
		"DailyBulkV2QueryFileStorageMB": {976562, 976562},
		"DataStorageMB":                 {1024, 1024},
		"FileStorageMB":                 {1024, 1024},
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// object finds the object named in the path or answers 404; it takes s.mu itself.
func (s *Sim) object(w http.ResponseWriter, r *http.Request) *table {
	s.mu.Lock()
	t := s.table(r.PathValue("object"))
	s.mu.Unlock()
	if t == nil {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
	return t
}

func (s *Sim) handleGlobalDescribe(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var objects []map[string]any
	for _, obj := range s.cfg.Schema {
		objects = append(objects, map[string]any{
			"name": obj.Name, "label": obj.Label, "keyPrefix": obj.KeyPrefix, "custom": obj.Custom,
			"createable": true, "updateable": true, "queryable": true,
			"urls": map[string]string{"describe": "/services/data/" + r.PathValue("version") + "/sobjects/" + obj.Name + "/describe"},
		})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"encoding": "UTF-8", "maxBatchSize": maxCollectionRecords, "sobjects": objects})
}

type picklistEntry struct {
	Active       bool    `json:"active"`
	DefaultValue bool    `json:"defaultValue"`
	Label        string  `json:"label"`
	Value        string  `json:"value"`
	ValidFor     *string `json:"validFor"`
}

type fieldDescribe struct {
	Name               string          `json:"name"`
	Label              string          `json:"label"`
	Type               FieldType       `json:"type"`
	SoapType           string          `json:"soapType"`
	Length             int             `json:"length"`
	Createable         bool            `json:"createable"`
	Updateable         bool            `json:"updateable"`
	Nillable           bool            `json:"nillable"`
	DefaultedOnCreate  bool            `json:"defaultedOnCreate"`
	ExternalID         bool            `json:"externalId"`
	Unique             bool            `json:"unique"`
	CaseSensitive      bool            `json:"caseSensitive"`
	IDLookup           bool            `json:"idLookup"`
	Filterable         bool            `json:"filterable"`
	Sortable           bool            `json:"sortable"`
	Calculated         bool            `json:"calculated"`
	Custom             bool            `json:"custom"`
	AutoNumber         bool            `json:"autoNumber"`
	CascadeDelete      bool            `json:"cascadeDelete"`
	ReferenceTo        []string        `json:"referenceTo"`
	RelationshipName   *string         `json:"relationshipName"`
	RestrictedPicklist bool            `json:"restrictedPicklist"`
	PicklistValues     []picklistEntry `json:"picklistValues"`
}

func (s *Sim) handleDescribe(w http.ResponseWriter, r *http.Request) {
	t := s.object(w, r)
	if t == nil {
		return
	}
	s.mu.Lock()
	obj := t.obj
	fields := make([]fieldDescribe, 0, len(obj.Fields))
	for _, f := range obj.Fields {
		d := fieldDescribe{
			Name: f.Name, Label: f.Label, Type: f.Type, SoapType: f.Type.soapType(), Length: f.Length,
			Createable: f.Createable, Updateable: f.Updateable, Nillable: f.Nillable,
			DefaultedOnCreate: f.DefaultedOnCreate, ExternalID: f.ExternalID, Unique: f.Unique,
			IDLookup: f.IDLookup, Filterable: true, Sortable: true, Calculated: f.Calculated, Custom: f.Custom,
			AutoNumber: f.AutoNumber, CascadeDelete: f.MasterDetail,
			ReferenceTo: append([]string{}, f.ReferenceTo...), PicklistValues: []picklistEntry{},
			RestrictedPicklist: len(f.PicklistValues) > 0,
		}
		if f.RelationshipName != "" {
			d.RelationshipName = &f.RelationshipName
		}
		for _, v := range f.PicklistValues {
			d.PicklistValues = append(d.PicklistValues, picklistEntry{Active: true, Label: v, Value: v})
		}
		fields = append(fields, d)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"name": obj.Name, "label": obj.Label, "labelPlural": obj.Label + "s", "keyPrefix": obj.KeyPrefix,
		"custom": obj.Custom, "createable": true, "updateable": true, "queryable": true, "deletable": true,
		"fields": fields,
	})
}

// handleGetRecord answers GET sobjects/{Object}/{Id} and GET sobjects/{Object}/{ExtField}/{value}.
func (s *Sim) handleGetRecord(w http.ResponseWriter, r *http.Request) {
	t := s.object(w, r)
	if t == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var found *row
	if id := r.PathValue("id"); id != "" {
		found = t.lookup(t.obj.field("Id"), id)
	} else if f := t.obj.field(r.PathValue("field")); f != nil && (f.ExternalID || f.IDLookup) {
		found = t.lookup(f, r.PathValue("value"))
	}
	if found == nil {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	fields := t.obj.Fields
	if list := r.URL.Query().Get("fields"); list != "" {
		fields = nil
		for _, name := range strings.Split(list, ",") {
			f := t.obj.field(strings.TrimSpace(name))
			if f == nil {
				writeAPIError(w, http.StatusBadRequest, "INVALID_FIELD",
					fmt.Sprintf("No such column '%s' on entity '%s'.", strings.TrimSpace(name), t.obj.Name))
				return
			}
			fields = append(fields, *f)
		}
	}
	out := jsonObject{{"attributes", attributes(r.PathValue("version"), t.obj.Name, found.id)}}
	for _, f := range fields {
		out = append(out, jsonField{f.Name, outputValue(t.value(found, &f))})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) handleCreate(w http.ResponseWriter, r *http.Request) {
	t := s.object(w, r)
	if t == nil {
		return
	}
	var raw map[string]any
	if !decodeBody(w, r, &raw) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changes, aerr := s.parseJSONRecord(t, raw)
	if aerr != nil {
		writeJSON(w, http.StatusBadRequest, []apiError{*aerr})
		return
	}
	res := s.transact(r.Context(), []writeOp{{table: t, mode: modeInsert, changes: changes}}, false)[0]
	writeSingleResult(w, res, http.StatusCreated)
}

// handleUpdate answers PATCH sobjects/{Object}/{Id}: the body's fields are written to that
// record, and success is 204 with no body.
func (s *Sim) handleUpdate(w http.ResponseWriter, r *http.Request) {
	t := s.object(w, r)
	if t == nil {
		return
	}
	var raw map[string]any
	if !decodeBody(w, r, &raw) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := canonicalID(r.PathValue("id"))
	if !ok || t.rowByID(id) == nil {
		// An unknown Id is 404; for a malformed one the status is UNCONFIRMED.
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	changes, aerr := s.parseJSONRecord(t, raw)
	if aerr != nil {
		writeJSON(w, http.StatusBadRequest, []apiError{*aerr})
		return
	}
	res := s.transact(r.Context(), []writeOp{{table: t, mode: modeUpdate, keyValue: id, changes: changes}}, false)[0]
	if !res.ok() {
		writeRecordErrors(w, res.errors)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) handleUpsertOne(w http.ResponseWriter, r *http.Request) {
	t := s.object(w, r)
	if t == nil {
		return
	}
	var raw map[string]any
	if !decodeBody(w, r, &raw) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key, aerr := externalIDField(t, r.PathValue("field"))
	if aerr != nil {
		writeJSON(w, http.StatusNotFound, []apiError{*aerr})
		return
	}
	// The value in the URL is the key; a copy of the key field in the body is ignored.
	for k := range raw {
		if strings.EqualFold(k, key.Name) {
			delete(raw, k)
		}
	}
	changes, aerr := s.parseJSONRecord(t, raw)
	if aerr != nil {
		writeJSON(w, http.StatusBadRequest, []apiError{*aerr})
		return
	}
	value := r.PathValue("value")
	if ids := t.matches(key, value); len(ids) > 1 {
		// A single-record upsert matching several records answers 300 with their URLs and
		// writes nothing (reference/salesforce.md §2.3).
		urls := make([]string, len(ids))
		for i, id := range ids {
			urls[i] = "/services/data/" + r.PathValue("version") + "/sobjects/" + t.obj.Name + "/" + id
		}
		writeJSON(w, http.StatusMultipleChoices, urls)
		return
	}
	changes = append(changes, change{field: key, value: value})
	res := s.transact(r.Context(), []writeOp{{table: t, mode: modeUpsert, key: key, keyValue: value, changes: changes}}, false)[0]
	status := http.StatusOK // UNCONFIRMED per version: older versions answered an update with 204
	if res.created {
		status = http.StatusCreated
	}
	writeSingleResult(w, res, status)
}

func writeSingleResult(w http.ResponseWriter, res writeResult, status int) {
	if !res.ok() {
		writeRecordErrors(w, res.errors)
		return
	}
	writeJSON(w, status, upsertResultOf(res))
}

// writeRecordErrors answers a failed single-record write: 400 with the record's errors as
// the REST error array.
func writeRecordErrors(w http.ResponseWriter, recErrs []recordErr) {
	errs := make([]apiError, len(recErrs))
	for i, e := range recErrs {
		errs[i] = apiError{Message: e.Message, ErrorCode: e.StatusCode, Fields: e.Fields}
	}
	writeJSON(w, http.StatusBadRequest, errs)
}

// upsertResult is one element of a collections response (and the single-record answer).
type upsertResult struct {
	ID      *string     `json:"id"`
	Success bool        `json:"success"`
	Errors  []recordErr `json:"errors"`
	Created bool        `json:"created"`
}

func upsertResultOf(res writeResult) upsertResult {
	out := upsertResult{Success: res.ok(), Errors: res.errors, Created: res.created}
	if res.id != "" {
		out.ID = &res.id
	}
	if out.Errors == nil {
		out.Errors = []recordErr{}
	}
	return out
}

// saveResult is one element of a collections insert response. A failed record has no id
// key at all, as in Salesforce's documented example.
type saveResult struct {
	ID      string      `json:"id,omitempty"`
	Success bool        `json:"success"`
	Errors  []recordErr `json:"errors"`
}

// collection is the body of a collections insert or upsert.
type collection struct {
	AllOrNone bool             `json:"allOrNone"`
	Records   []map[string]any `json:"records"`
}

// decodeCollection reads a collection body of at most maxCollectionRecords records, or
// answers 400.
func decodeCollection(w http.ResponseWriter, r *http.Request) (collection, bool) {
	var body collection
	if !decodeBody(w, r, &body) {
		return body, false
	}
	if len(body.Records) > maxCollectionRecords {
		writeAPIError(w, http.StatusBadRequest, "EXCEEDED_ID_LIMIT",
			"record limit reached. cannot submit more than 200 records into this call")
		return body, false
	}
	return body, true
}

// handleCollectionCreate answers POST composite/sobjects: records of any objects, each
// naming its own in attributes.type, inserted in order, one SaveResult each.
func (s *Sim) handleCollectionCreate(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeCollection(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := make([]writeOp, len(body.Records))
	chunks := 0
	for i, raw := range body.Records {
		t, aerr := s.recordTable(raw)
		if aerr != nil {
			writeJSON(w, http.StatusBadRequest, []apiError{*aerr})
			return
		}
		if i == 0 || t != ops[i-1].table {
			chunks++
		}
		changes, aerr := s.parseJSONRecord(t, raw)
		if aerr != nil {
			writeJSON(w, http.StatusBadRequest, []apiError{*aerr})
			return
		}
		ops[i] = writeOp{table: t, mode: modeInsert, changes: changes}
	}
	if chunks > maxCollectionChunks {
		// The limit and the message are Salesforce's; the errorCode, and that the whole
		// request fails rather than each record, are UNCONFIRMED.
		writeAPIError(w, http.StatusBadRequest, "INVALID_BATCH_SIZE", fmt.Sprintf(
			"Cannot have more than %d chunks in a single operation. Please rearrange the data to reduce chunking.", maxCollectionChunks))
		return
	}
	results := s.transact(r.Context(), ops, body.AllOrNone)
	out := make([]saveResult, len(results))
	for i, res := range results {
		out[i] = saveResult{ID: res.id, Success: res.ok(), Errors: res.errors}
		if out[i].Errors == nil {
			out[i].Errors = []recordErr{}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) handleCollectionUpsert(w http.ResponseWriter, r *http.Request) {
	t := s.object(w, r)
	if t == nil {
		return
	}
	body, ok := decodeCollection(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key, aerr := externalIDField(t, r.PathValue("field"))
	if aerr != nil {
		writeJSON(w, http.StatusNotFound, []apiError{*aerr})
		return
	}
	ops := make([]writeOp, len(body.Records))
	for i, raw := range body.Records {
		if aerr := checkRecordType(t, raw); aerr != nil {
			writeJSON(w, http.StatusBadRequest, []apiError{*aerr})
			return
		}
		changes, aerr := s.parseJSONRecord(t, raw)
		if aerr != nil {
			writeJSON(w, http.StatusBadRequest, []apiError{*aerr})
			return
		}
		op := writeOp{table: t, mode: modeUpsert, key: key, changes: changes}
		for _, c := range changes {
			if c.field == key {
				op.keyValue, _ = c.value.(string)
			}
		}
		ops[i] = op
	}
	results := s.transact(r.Context(), ops, body.AllOrNone)
	out := make([]upsertResult, len(results))
	for i, res := range results {
		out[i] = upsertResultOf(res)
	}
	writeJSON(w, http.StatusOK, out)
}

// externalIDField resolves the key field named in an upsert URL.
func externalIDField(t *table, name string) (*Field, *apiError) {
	f := t.obj.field(name)
	if f == nil || !f.ExternalID {
		// A wrong external id field answers 404 NOT_FOUND (reference §2.3).
		return nil, &apiError{ErrorCode: "NOT_FOUND", Message: "The requested resource does not exist"}
	}
	return f, nil
}

// recordType is the sObject type a collection record names in attributes.type.
func recordType(raw map[string]any) string {
	for k, v := range raw {
		if attrs, ok := v.(map[string]any); ok && strings.EqualFold(k, "attributes") {
			typ, _ := attrs["type"].(string)
			return typ
		}
	}
	return ""
}

// missingType refuses a collection record without attributes.type. UNCONFIRMED code and
// wording.
func missingType() *apiError {
	return &apiError{ErrorCode: "INVALID_TYPE", Message: "When using the sObject Collections API, every record must specify attributes.type"}
}

// recordTable finds the object a collections insert record names; the caller holds s.mu.
func (s *Sim) recordTable(raw map[string]any) (*table, *apiError) {
	typ := recordType(raw)
	if typ == "" {
		return nil, missingType()
	}
	t := s.table(typ)
	if t == nil {
		// UNCONFIRMED for collections: the code and wording SOQL uses for an unknown object.
		return nil, &apiError{ErrorCode: "INVALID_TYPE", Message: fmt.Sprintf("sObject type '%s' is not supported.", typ)}
	}
	return t, nil
}

// checkRecordType enforces that each collections upsert record names the URL's sObject.
func checkRecordType(t *table, raw map[string]any) *apiError {
	switch typ := recordType(raw); {
	case typ == "":
		return missingType()
	case !strings.EqualFold(typ, t.obj.Name):
		return &apiError{ErrorCode: "INVALID_TYPE",
			Message: fmt.Sprintf("Record type %s does not match the sObject %s in the URL", typ, t.obj.Name)}
	}
	return nil
}

// parseJSONRecord reads one record's fields and parent references. An unknown field or a
// value of the wrong JSON type fails the whole request, as Salesforce's deserializer does.
// The caller holds s.mu.
func (s *Sim) parseJSONRecord(t *table, raw map[string]any) ([]change, *apiError) {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		if !strings.EqualFold(k, "attributes") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys) // deterministic errors when several keys are wrong
	changes := make([]change, 0, len(keys))
	for _, k := range keys {
		v := raw[k]
		if _, isList := v.([]any); isList {
			return nil, &apiError{ErrorCode: "JSON_PARSER_ERROR", Message: "Cannot deserialize a JSON array into field " + k}
		}
		if f := t.obj.field(k); f != nil {
			cv, err := convert(f, v)
			if err != nil {
				return nil, &apiError{ErrorCode: "JSON_PARSER_ERROR", Message: fmt.Sprintf(
					"Cannot deserialize instance of %s from value %v or request may be missing a required field",
					strings.TrimPrefix(f.Type.soapType(), "xsd:"), v)}
			}
			changes = append(changes, change{field: f, value: cv})
			continue
		}
		f := t.obj.relationship(k)
		if f == nil {
			return nil, noSuchColumn(k, t.obj.Name)
		}
		c, aerr := s.parentChange(f, v)
		if aerr != nil {
			return nil, aerr
		}
		changes = append(changes, c)
	}
	return changes, nil
}

// parentChange reads a relationship value: null clears the lookup, an object names the
// parent by one of its external id (or idLookup) fields.
func (s *Sim) parentChange(f *Field, v any) (change, *apiError) {
	if v == nil {
		return change{field: f}, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return change{}, &apiError{ErrorCode: "JSON_PARSER_ERROR",
			Message: "Cannot deserialize instance of " + f.ReferenceTo[0] + " from a value that is not an object"}
	}
	delete(obj, "attributes")
	parent := s.table(f.ReferenceTo[0])
	if len(obj) != 1 || parent == nil {
		return change{}, &apiError{ErrorCode: "INVALID_FIELD",
			Message: "A relationship reference must name exactly one external id field of " + f.ReferenceTo[0]}
	}
	var (
		name  string
		value any
	)
	for name, value = range obj {
	}
	pf := parent.obj.field(name)
	if pf == nil {
		return change{}, noSuchColumn(name, parent.obj.Name)
	}
	if !pf.ExternalID && !pf.IDLookup {
		return change{}, &apiError{ErrorCode: "INVALID_FIELD",
			Message: fmt.Sprintf("Field %s on %s is not an external id or indexed field", pf.Name, parent.obj.Name)}
	}
	var str string
	switch x := value.(type) {
	case string:
		str = x
	case json.Number:
		str = x.String()
	default:
		return change{}, &apiError{ErrorCode: "JSON_PARSER_ERROR",
			Message: fmt.Sprintf("Invalid value %v for %s.%s", value, f.RelationshipName, pf.Name)}
	}
	return change{field: f, parent: &parentRef{table: parent, field: pf, value: str}}, nil
}

func noSuchColumn(field, object string) *apiError {
	return &apiError{ErrorCode: "INVALID_FIELD", Message: fmt.Sprintf("No such column '%s' on sobject of type %s", field, object)}
}

// decodeBody reads a JSON request body, keeping numbers exact, or answers 400
// JSON_PARSER_ERROR.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON body")
	}
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "JSON_PARSER_ERROR", "Unexpected request body: "+err.Error())
		return false
	}
	return true
}

// jsonObject is a JSON object that keeps its keys in order, as Salesforce's responses do
// (attributes first, then fields in query or describe order).
type jsonObject []jsonField

type jsonField struct {
	key   string
	value any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.key)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.key, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func attributes(version, object, id string) jsonObject {
	return jsonObject{{"type", object}, {"url", "/services/data/" + version + "/sobjects/" + object + "/" + id}}
}

// outputValue renders a stored value the way the REST API writes it.
func outputValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return formatDateTime(t)
	}
	return v
}
