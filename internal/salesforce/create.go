package salesforce

import (
	"context"
	"encoding/json"
	"fmt"
)

// Create inserts recs as new sobject rows through sObject Collections (POST
// composite/sobjects), CollectionsMax records per call with allOrNone=false, and returns one
// Result per record in input order, with Created set on every success. Unlike Upsert, a
// replayed Create inserts again: a caller that may replay must query for the rows first.
// The error is non-nil only when a whole call failed; records of earlier calls may then
// have been created.
func (c *Client) Create(ctx context.Context, sobject string, recs []Record) ([]Result, error) {
	if !apiNamePattern.MatchString(sobject) {
		return nil, fmt.Errorf("salesforce: sobject %q is not an API name", sobject)
	}
	results := make([]Result, 0, len(recs))
	for start := 0; start < len(recs); start += CollectionsMax {
		res, err := c.createCall(ctx, sobject, recs[start:min(start+CollectionsMax, len(recs))])
		if err != nil {
			return nil, err
		}
		results = append(results, res...)
	}
	return results, nil
}

// createCall is one POST composite/sobjects of at most CollectionsMax records.
func (c *Client) createCall(ctx context.Context, sobject string, recs []Record) ([]Result, error) {
	body := struct {
		AllOrNone bool             `json:"allOrNone"`
		Records   []map[string]any `json:"records"`
	}{Records: make([]map[string]any, len(recs))}
	for i, r := range recs {
		// A copy: the collection needs attributes.type in each record (the type is not in
		// the URL), and the caller's records stay as they were handed over.
		m := make(map[string]any, len(r)+1)
		for k, v := range r {
			m[k] = v
		}
		m["attributes"] = map[string]string{"type": sobject}
		body.Records[i] = m
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("salesforce: encoding %d %s records: %w", len(recs), sobject, err)
	}
	resp, err := c.do(ctx, request{method: "POST", endpoint: "collections_create", path: "composite/sobjects", body: data})
	if err != nil {
		return nil, err
	}
	// A SaveResult is an UpsertResult without "created".
	var items []upsertResult
	if err := json.Unmarshal(resp.body, &items); err != nil {
		return nil, fmt.Errorf("salesforce: decoding %s create results: %w", sobject, err)
	}
	if len(items) != len(recs) {
		return nil, fmt.Errorf("salesforce: %s create returned %d results for %d records", sobject, len(items), len(recs))
	}
	results := make([]Result, len(recs))
	for i, it := range items {
		results[i] = Result{ID: it.ID, Success: it.Success, Created: it.Success, Errors: it.Errors}
	}
	return results, nil
}
