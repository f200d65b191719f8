package salesforce

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"time"
)

// CollectionsMax is how many records one sObject Collections call accepts.
const CollectionsMax = 200

// CodeUnableToLockRow is the per-record error worth retrying: another transaction held the
// row (or its parent) for longer than Salesforce's 10 s lock wait.
const CodeUnableToLockRow = "UNABLE_TO_LOCK_ROW"

// apiNamePattern is what sObject and field API names look like; checking it keeps caller
// input out of the URL path.
var apiNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

func checkNames(sobject, extIDField string) error {
	if !apiNamePattern.MatchString(sobject) {
		return fmt.Errorf("salesforce: sobject %q is not an API name", sobject)
	}
	if !apiNamePattern.MatchString(extIDField) {
		return fmt.Errorf("salesforce: external id field %q is not an API name", extIDField)
	}
	return nil
}

// Upsert writes recs to sobject by extIDField through sObject Collections with
// allOrNone=false, and returns one Result per record in input order. Records are grouped by
// parent and sent in calls of at most CollectionsMax records (fewer once the object showed
// it tolerates fewer), in parallel within MaxConcurrency. A call that fails as a whole for
// its size is split until the failing records stand alone (see Config.SplitOn); records
// that fail with UNABLE_TO_LOCK_ROW go again, only they, up to LockRetries rounds with
// backoff; records refused a create-only field go again without it (SetCreateOnly); every
// other record error is returned as Salesforce reported it. The error is non-nil only when
// a call failed in a way no record explains; results of the other calls are then lost to
// the caller, which is safe because replaying an upsert by external id is idempotent.
func (c *Client) Upsert(ctx context.Context, sobject, extIDField string, recs []Record) ([]Result, error) {
	w, err := c.writer(sobject, extIDField)
	if err != nil {
		return nil, err
	}
	return w.write(ctx, recs, false)
}

func lockedRow(r Result) bool {
	for _, e := range r.Errors {
		if e.StatusCode == CodeUnableToLockRow {
			return true
		}
	}
	return false
}

// upsertResult is one item of a collections response. Failed items may carry "id": null
// and may omit "created" ([UNCONFIRMED] against a real org), which the zero values absorb;
// an insert's SaveResult is the same without "created".
type upsertResult struct {
	ID      string        `json:"id"`
	Success bool          `json:"success"`
	Created bool          `json:"created"`
	Errors  []RecordError `json:"errors"`
}

// collectionCall sends recs, all of type sobject, as one sObject Collections request with
// allOrNone=false (r names the method, path and label; its body is filled in here) and
// returns one result item per record, in order.
func (c *Client) collectionCall(ctx context.Context, r request, sobject string, recs []Record) ([]upsertResult, error) {
	type attributes struct {
		Type string `json:"type"`
	}
	body := struct {
		AllOrNone bool             `json:"allOrNone"`
		Records   []map[string]any `json:"records"`
	}{Records: make([]map[string]any, len(recs))}
	for i, rec := range recs {
		// Collections need attributes.type in every record; a copy carries it, so the
		// caller's records stay exactly as they were handed over.
		m := make(map[string]any, len(rec)+1)
		maps.Copy(m, rec)
		m["attributes"] = attributes{Type: sobject}
		body.Records[i] = m
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("salesforce: encoding %d %s records: %w", len(recs), sobject, err)
	}
	r.body = data
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	var items []upsertResult
	if err := json.Unmarshal(resp.body, &items); err != nil {
		return nil, fmt.Errorf("salesforce: decoding %s %s results: %w", sobject, r.endpoint, err)
	}
	if len(items) != len(recs) {
		return nil, fmt.Errorf("salesforce: %s %s returned %d results for %d records", sobject, r.endpoint, len(items), len(recs))
	}
	return items, nil
}

// upsertCall is one PATCH composite/sobjects/{sobject}/{extIDField}.
func (c *Client) upsertCall(ctx context.Context, sobject, extIDField string, recs []Record) ([]Result, error) {
	items, err := c.collectionCall(ctx, request{
		method:   "PATCH",
		endpoint: "collections_upsert",
		path:     "composite/sobjects/" + sobject + "/" + extIDField,
	}, sobject, recs)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(recs))
	for i, it := range items {
		results[i] = Result{
			ExternalID: externalID(recs[i], extIDField),
			ID:         it.ID,
			Success:    it.Success,
			Created:    it.Created,
			Errors:     it.Errors,
		}
	}
	return results, nil
}

// externalID renders the record's external id the way Salesforce will see it.
func externalID(r Record, field string) string {
	v, ok := r[field]
	if !ok || v == nil {
		return ""
	}
	s, err := cellValue(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return s
}

// cellValue renders a scalar field value as text, the form both a CSV cell and an external
// id comparison need.
func cellValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case json.Number:
		return v.String(), nil
	case time.Time:
		// The dateTime form Bulk API CSV documents; JSON bodies use RFC 3339 on their own.
		return v.UTC().Format("2006-01-02T15:04:05.000Z"), nil
	}
	return "", fmt.Errorf("unsupported value type %T", v)
}
