package salesforce

import (
	"context"
	"fmt"
)

// Create inserts recs as new sobject rows through sObject Collections (POST
// composite/sobjects), CollectionsMax records per call with allOrNone=false, and returns one
// Result per record in input order, with Created set on every success. Unlike Upsert, a
// replayed Create inserts again: a caller that may replay must query for the rows first.
// For the same reason a call whose answer was lost (a timeout, a dropped connection) is not
// resent. The error is non-nil only when a whole call failed; the records of earlier calls,
// and of the failed call itself when its answer was lost, may then have been created.
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

// createCall is one POST composite/sobjects of at most CollectionsMax records. It is marked
// not idempotent: an insert whose answer was lost may have happened, and sending it again
// would create every row twice.
func (c *Client) createCall(ctx context.Context, sobject string, recs []Record) ([]Result, error) {
	items, err := c.collectionCall(ctx, request{
		method:        "POST",
		endpoint:      "collections_create",
		path:          "composite/sobjects",
		notIdempotent: true,
	}, sobject, recs)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(recs))
	for i, it := range items {
		results[i] = Result{ID: it.ID, Success: it.Success, Created: it.Success, Errors: it.Errors}
	}
	return results, nil
}
