package salesforce

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Limit is one entry of the limits resource.
type Limit struct {
	Max       int `json:"Max"`
	Remaining int `json:"Remaining"`
}

// queryPage is one page of the query resource. Records stay raw until fn wants them, so a
// page is decoded once, record by record.
type queryPage struct {
	TotalSize      int               `json:"totalSize"`
	Done           bool              `json:"done"`
	NextRecordsURL string            `json:"nextRecordsUrl"`
	Records        []json.RawMessage `json:"records"`
}

// Query runs soql and calls fn with every record, following nextRecordsUrl until done.
// Records are decoded as JSON objects, "attributes" included. An error from fn stops the
// walk and is returned as is.
func (c *Client) Query(ctx context.Context, soql string, fn func(rec map[string]any) error) error {
	page, err := c.queryFirst(ctx, soql)
	for {
		if err != nil {
			return err
		}
		for _, raw := range page.Records {
			var rec map[string]any
			if err := json.Unmarshal(raw, &rec); err != nil {
				return fmt.Errorf("salesforce: decoding a query record: %w", err)
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if page.Done || page.NextRecordsURL == "" {
			return nil
		}
		page, err = c.queryPage(ctx, request{method: "GET", endpoint: "query", path: page.NextRecordsURL})
	}
}

// Count runs a SELECT COUNT() query and returns its totalSize. The REST answer's records is
// [] or null ([UNCONFIRMED] which); neither is read.
func (c *Client) Count(ctx context.Context, soql string) (int, error) {
	page, err := c.queryFirst(ctx, soql)
	if err != nil {
		return 0, err
	}
	return page.TotalSize, nil
}

func (c *Client) queryFirst(ctx context.Context, soql string) (*queryPage, error) {
	return c.queryPage(ctx, request{
		method:   "GET",
		endpoint: "query",
		path:     "query",
		query:    url.Values{"q": {soql}}.Encode(),
	})
}

func (c *Client) queryPage(ctx context.Context, r request) (*queryPage, error) {
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	var page queryPage
	if err := json.Unmarshal(resp.body, &page); err != nil {
		return nil, fmt.Errorf("salesforce: decoding a query page: %w", err)
	}
	return &page, nil
}

// Describe returns the describe of sobject: its fields, their types, lengths and flags.
func (c *Client) Describe(ctx context.Context, sobject string) (*SObjectDescribe, error) {
	if !apiNamePattern.MatchString(sobject) {
		return nil, fmt.Errorf("salesforce: sobject %q is not an API name", sobject)
	}
	var d SObjectDescribe
	if err := c.getJSON(ctx, "describe", "sobjects/"+sobject+"/describe", &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Limits returns the org's limits by name, e.g. "DailyApiRequests". Salesforce refreshes
// them only every few minutes, so polling faster than that learns nothing.
func (c *Client) Limits(ctx context.Context) (map[string]Limit, error) {
	var limits map[string]Limit
	if err := c.getJSON(ctx, "limits", "limits", &limits); err != nil {
		return nil, err
	}
	return limits, nil
}

func (c *Client) getJSON(ctx context.Context, endpoint, path string, v any) error {
	resp, err := c.do(ctx, request{method: "GET", endpoint: endpoint, path: path})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		return fmt.Errorf("salesforce: decoding %s: %w", path, err)
	}
	return nil
}

// QuoteString returns s as a quoted SOQL string literal, safe in = and IN comparisons.
// Backslashes are escaped before quotes, so an escape added for a quote is never escaped
// again; control characters use the escapes SOQL documents. In a LIKE pattern, _ and %
// still act as wildcards.
func QuoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04x`, r)
				continue
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
