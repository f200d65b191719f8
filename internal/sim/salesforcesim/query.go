package salesforcesim

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	// queryBatchSize is the most records one query response carries (reference §4.5).
	queryBatchSize = 2000
	// maxOpenCursors bounds the memory held by unfinished queries; the oldest cursor is
	// dropped first, and paging it then answers INVALID_QUERY_LOCATOR as an expired
	// Salesforce cursor does.
	maxOpenCursors = 50
)

// cursor is a query's result set, rendered when the query ran, as Salesforce snapshots it.
type cursor struct {
	locator   string
	version   string
	records   []jsonObject
	batchSize int
}

type queryResponse struct {
	TotalSize      int          `json:"totalSize"`
	Done           bool         `json:"done"`
	NextRecordsURL string       `json:"nextRecordsUrl,omitempty"`
	Records        []jsonObject `json:"records"`
}

var batchSizeOption = regexp.MustCompile(`(?i)batchSize=(\d+)`)

func (s *Sim) handleQuery(w http.ResponseWriter, r *http.Request) {
	soql := r.URL.Query().Get("q")
	if strings.TrimSpace(soql) == "" {
		writeAPIError(w, http.StatusBadRequest, "MALFORMED_QUERY", "A query string has to be specified")
		return
	}
	batch := queryBatchSize
	// Sforce-Query-Options: batchSize=N asks for smaller pages (200 to 2,000).
	if m := batchSizeOption.FindStringSubmatch(r.Header.Get("Sforce-Query-Options")); m != nil {
		n, _ := strconv.Atoi(m[1])
		batch = min(max(n, 200), queryBatchSize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.parseQuery(soql)
	if err != nil {
		var se *soqlError
		errors.As(err, &se)
		writeAPIError(w, http.StatusBadRequest, se.code, se.message)
		return
	}
	rows := q.run()
	s.raceQuery(q, rows)
	if q.count {
		writeJSON(w, http.StatusOK, queryResponse{TotalSize: len(rows), Done: true, Records: []jsonObject{}})
		return
	}
	version := r.PathValue("version")
	c := &cursor{version: version, batchSize: batch, records: make([]jsonObject, len(rows))}
	for i, row := range rows {
		c.records[i] = q.render(version, row)
	}
	writeJSON(w, http.StatusOK, s.page(c, 0))
}

// run filters, sorts and limits the queried rows.
func (q *query) run() []*row {
	var rows []*row
	for _, r := range q.table.rows {
		if q.where == nil || q.where.match(q, r) {
			rows = append(rows, r)
		}
	}
	if len(q.orderBy) > 0 {
		slices.SortStableFunc(rows, func(a, b *row) int {
			for _, k := range q.orderBy {
				if n := q.compareKey(k, a, b); n != 0 {
					return n
				}
			}
			return 0
		})
	}
	rows = rows[min(q.offset, len(rows)):]
	if q.limit >= 0 && len(rows) > q.limit {
		rows = rows[:q.limit]
	}
	return rows
}

func (q *query) compareKey(k orderKey, a, b *row) int {
	va, vb := q.get(k.path, a), q.get(k.path, b)
	switch {
	case va == nil && vb == nil:
		return 0
	case va == nil || vb == nil:
		if (va == nil) == k.nullsFirst {
			return -1
		}
		return 1
	}
	n := compareValues(va, vb)
	if k.desc {
		return -n
	}
	return n
}

// render writes one row with the selected fields in query order; the fields of one parent
// are nested under its relationship name, or the relationship is null without a parent.
func (q *query) render(version string, r *row) jsonObject {
	out := jsonObject{{"attributes", attributes(version, q.table.obj.Name, r.id)}}
	nested := make(map[*Field]int) // relationship → index in out
	for _, fp := range q.fields {
		if fp.rel == nil {
			out = append(out, jsonField{fp.field.Name, outputValue(q.table.value(r, fp.field))})
			continue
		}
		p := q.parentRow(fp, r)
		i, ok := nested[fp.rel]
		if !ok {
			i = len(out)
			nested[fp.rel] = i
			var v any // a JSON null when there is no parent
			if p != nil {
				v = jsonObject{{"attributes", attributes(version, fp.parent.obj.Name, p.id)}}
			}
			out = append(out, jsonField{fp.rel.RelationshipName, v})
		}
		if p != nil {
			obj := out[i].value.(jsonObject)
			out[i].value = append(obj, jsonField{fp.field.Name, outputValue(fp.parent.value(p, fp.field))})
		}
	}
	return out
}

// page answers one batch of a cursor, keeping the cursor open while more remain; the
// caller holds s.mu.
func (s *Sim) page(c *cursor, offset int) queryResponse {
	end := min(offset+c.batchSize, len(c.records))
	resp := queryResponse{TotalSize: len(c.records), Done: end == len(c.records), Records: c.records[offset:end]}
	if resp.Done {
		s.cursors = slices.DeleteFunc(s.cursors, func(x *cursor) bool { return x == c })
		return resp
	}
	if c.locator == "" {
		c.locator = newID("01g", s.nextSeq())
		s.cursors = append(s.cursors, c)
		if len(s.cursors) > maxOpenCursors {
			s.cursors = s.cursors[1:]
		}
	}
	resp.NextRecordsURL = fmt.Sprintf("/services/data/%s/query/%s-%d", c.version, c.locator, end)
	return resp
}

func (s *Sim) handleQueryMore(w http.ResponseWriter, r *http.Request) {
	locator, offsetText, _ := strings.Cut(r.PathValue("locator"), "-")
	offset, err := strconv.Atoi(offsetText)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.cursors, func(c *cursor) bool { return c.locator == locator })
	if err != nil || i < 0 || offset < 0 || offset >= len(s.cursors[i].records) {
		writeAPIError(w, http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	writeJSON(w, http.StatusOK, s.page(s.cursors[i], offset))
}
