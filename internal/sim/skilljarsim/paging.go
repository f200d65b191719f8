package skilljarsim

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Paging follows Django REST framework, which the API is built on (reference §4.1).
const (
	defaultPageSize = 100
	// maxPageSize caps page_size. The live cap is undocumented (UNCONFIRMED); 1,000 is the
	// largest size the team's client asks for.
	maxPageSize = 1000
)

const (
	msgInvalidPage   = "Invalid page."
	msgInvalidCursor = "Invalid cursor"
)

type pageEnvelope[T any] struct {
	Count    int     `json:"count"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
	Results  []T     `json:"results"`
}

// cursorEnvelope has no count: /v1/users in cursor mode (reference §3.3, UNCONFIRMED).
type cursorEnvelope[T any] struct {
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
	Results  []T     `json:"results"`
}

// pageSize reads page_size the way DRF does: a positive integer, capped; anything else means
// the default. Endpoints that do not take page_size ignore it.
func pageSize(r *http.Request, honoured bool) int {
	if !honoured {
		return defaultPageSize
	}
	n, err := strconv.Atoi(r.URL.Query().Get("page_size"))
	if err != nil || n <= 0 {
		return defaultPageSize
	}
	return min(n, maxPageSize)
}

// numberPage serves rows [0, total) as DRF's PageNumberPagination: a page number past the
// end, below 1 or not an integer is 404 "Invalid page."; the first page of an empty list is
// an empty page. row renders the row at a position.
func numberPage[T any](r *http.Request, total int, sizeHonoured bool, row func(i int) T) response {
	size := pageSize(r, sizeHonoured)
	pages := max(1, (total+size-1)/size)
	n := 1
	if raw := strings.TrimSpace(r.URL.Query().Get("page")); raw == "last" {
		n = pages
	} else if raw != "" {
		var err error
		if n, err = strconv.Atoi(raw); err != nil {
			return detail(http.StatusNotFound, msgInvalidPage)
		}
	}
	if n < 1 || n > pages {
		return detail(http.StatusNotFound, msgInvalidPage)
	}
	lo, hi := (n-1)*size, min(n*size, total)
	env := pageEnvelope[T]{Count: total, Results: make([]T, 0, hi-lo)}
	for i := lo; i < hi; i++ {
		env.Results = append(env.Results, row(i))
	}
	if n < pages {
		env.Next = link(r, "page", strconv.Itoa(n+1))
	}
	switch {
	case n == 2:
		env.Previous = link(r, "page", "")
	case n > 2:
		env.Previous = link(r, "page", strconv.Itoa(n-1))
	}
	return jsonResponse(http.StatusOK, env)
}

// cursor is DRF CursorPagination's token: offset past the position, direction, and the
// ordering key of the row the page starts after.
type cursor struct {
	offset   int
	reverse  bool
	position string
}

// encode mirrors DRF: base64 of the urlencoded tokens, e.g. "cD0yMDIy..." for "p=2022...".
func (c cursor) encode() string {
	q := url.Values{}
	if c.offset != 0 {
		q.Set("o", strconv.Itoa(c.offset))
	}
	if c.reverse {
		q.Set("r", "1")
	}
	q.Set("p", c.position)
	return base64.StdEncoding.EncodeToString([]byte(q.Encode()))
}

func decodeCursor(s string) (cursor, bool) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, false
	}
	q, err := url.ParseQuery(string(raw))
	if err != nil {
		return cursor{}, false
	}
	c := cursor{reverse: q.Get("r") == "1", position: q.Get("p")}
	if o := q.Get("o"); o != "" {
		if c.offset, err = strconv.Atoi(o); err != nil || c.offset < 0 {
			return cursor{}, false
		}
	}
	return c, true
}

// pythonTime renders a cursor position as DRF does: str() of a Python datetime.
func pythonTime(t time.Time) string {
	if t.Nanosecond() == 0 {
		return t.UTC().Format("2006-01-02 15:04:05+00:00")
	}
	return t.UTC().Format("2006-01-02 15:04:05.000000+00:00")
}

func parsePythonTime(s string) (time.Time, error) {
	return time.Parse("2006-01-02 15:04:05.999999-07:00", s)
}

// cursorPage serves rows [0, total) as DRF's CursorPagination. key(i) is the ordering key of
// row i and must be strictly monotonic in i, ascending or not; a cursor names the key a page
// starts after (or, reversed, ends before), so rows inserted elsewhere never shift a crawl.
func cursorPage[T any](r *http.Request, total int, ascending bool, key func(i int) time.Time, row func(i int) T) response {
	size := pageSize(r, true)
	lo, hi := 0, min(size, total)
	if raw := r.URL.Query().Get("cursor"); raw != "" {
		c, ok := decodeCursor(raw)
		if !ok {
			return detail(http.StatusNotFound, msgInvalidCursor)
		}
		at, err := parsePythonTime(c.position)
		if err != nil {
			return detail(http.StatusNotFound, msgInvalidCursor)
		}
		beyond := func(i int) bool { // row i comes after the cursor position
			if ascending {
				return key(i).After(at)
			}
			return key(i).Before(at)
		}
		if c.reverse {
			end := sort.Search(total, func(i int) bool { return beyond(i) || key(i).Equal(at) })
			hi = max(0, end-c.offset)
			lo = max(0, hi-size)
		} else {
			lo = min(total, sort.Search(total, beyond)+c.offset)
			hi = min(total, lo+size)
		}
	}
	env := cursorEnvelope[T]{Results: make([]T, 0, hi-lo)}
	for i := lo; i < hi; i++ {
		env.Results = append(env.Results, row(i))
	}
	if hi < total && hi > 0 {
		env.Next = link(r, "cursor", cursor{position: pythonTime(key(hi - 1))}.encode())
	}
	if lo > 0 {
		env.Previous = link(r, "cursor", cursor{reverse: true, position: pythonTime(key(lo))}.encode())
	}
	return jsonResponse(http.StatusOK, env)
}

// link is the request's absolute URL with one query parameter replaced ("" removes it);
// other parameters are kept, sorted as DRF's replace_query_param leaves them.
func link(r *http.Request, param, value string) *string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	q := r.URL.Query()
	if value == "" {
		q.Del(param)
	} else {
		q.Set(param, value)
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
	s := u.String()
	return &s
}
