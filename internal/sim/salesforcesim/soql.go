package salesforcesim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file parses the SOQL subset the engine and its tests need: a field list (with
// one-level relationship paths) or COUNT(), FROM, WHERE with comparisons, IN, LIKE and
// AND/OR/NOT, ORDER BY, LIMIT and OFFSET. What it does not understand is MALFORMED_QUERY.

// soqlError is a query Salesforce would refuse, with the error code it would use.
type soqlError struct {
	code    string
	message string
}

func (e *soqlError) Error() string { return e.code + ": " + e.message }

func malformed(format string, args ...any) *soqlError {
	return &soqlError{"MALFORMED_QUERY", fmt.Sprintf(format, args...)}
}

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokIdent
	tokString
	tokNumber
	tokDateTime
	tokDate
	tokPunct
)

type token struct {
	kind tokenKind
	text string // the source text (identifiers, numbers, punctuation)
	str  string // a string literal's value
	like string // a string literal as a LIKE pattern: \% and \_ kept escaped
	// likeOnly marks a string literal that used \% or \_, which only LIKE allows.
	likeOnly bool
}

var (
	dateTimeLiteral = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})`)
	dateLiteral     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}`)
	numberLiteral   = regexp.MustCompile(`^[+-]?\d+(\.\d+)?`)
)

func lex(q string) ([]token, error) {
	var toks []token
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			t, n, err := lexString(q[i:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i += n
		case c >= '0' && c <= '9' || (c == '-' || c == '+') && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9':
			rest := q[i:]
			if m := dateTimeLiteral.FindString(rest); m != "" {
				toks = append(toks, token{kind: tokDateTime, text: m})
				i += len(m)
			} else if m := dateLiteral.FindString(rest); m != "" {
				toks = append(toks, token{kind: tokDate, text: m})
				i += len(m)
			} else {
				m := numberLiteral.FindString(rest)
				toks = append(toks, token{kind: tokNumber, text: m})
				i += len(m)
			}
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(q) && (q[j] == '_' || q[j] >= 'a' && q[j] <= 'z' || q[j] >= 'A' && q[j] <= 'Z' || q[j] >= '0' && q[j] <= '9') {
				j++
			}
			toks = append(toks, token{kind: tokIdent, text: q[i:j]})
			i = j
		default:
			for _, p := range []string{"!=", "<>", "<=", ">=", "=", "<", ">", "(", ")", ",", "."} {
				if strings.HasPrefix(q[i:], p) {
					toks = append(toks, token{kind: tokPunct, text: p})
					i += len(p)
					goto next
				}
			}
			return nil, malformed("unexpected character: '%c'", c)
		next:
		}
	}
	return append(toks, token{kind: tokEOF}), nil
}

// lexString reads a quoted literal with SOQL's escapes; any other backslash is an error.
func lexString(s string) (token, int, error) {
	var val, like strings.Builder
	t := token{kind: tokString}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\'':
			t.str, t.like = val.String(), like.String()
			return t, i + 1, nil
		case '\\':
			if i+1 >= len(s) {
				return token{}, 0, malformed("unterminated string literal")
			}
			i++
			e := s[i]
			var r rune
			switch e {
			case 'n', 'N':
				r = '\n'
			case 'r', 'R':
				r = '\r'
			case 't', 'T':
				r = '\t'
			case 'b', 'B':
				r = '\b'
			case 'f', 'F':
				r = '\f'
			case '"', '\'', '\\':
				r = rune(e)
			case '%', '_':
				t.likeOnly = true
				val.WriteByte(e)
				like.WriteByte('\\')
				like.WriteByte(e)
				continue
			case 'u':
				if i+4 >= len(s) {
					return token{}, 0, malformed("invalid unicode escape in string literal")
				}
				n, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
				if err != nil {
					return token{}, 0, malformed("invalid unicode escape in string literal")
				}
				r = rune(n)
				i += 4
			default:
				return token{}, 0, malformed("Invalid string literal '%s'. Illegal character sequence '\\%c' in string literal.", s, e)
			}
			val.WriteRune(r)
			if r == '\\' {
				like.WriteString(`\\`)
			} else {
				like.WriteRune(r)
			}
		default:
			_, size := utf8.DecodeRuneInString(s[i:])
			val.WriteString(s[i : i+size])
			like.WriteString(s[i : i+size])
			i += size - 1
		}
	}
	return token{}, 0, malformed("unterminated string literal")
}

// query is a parsed SOQL statement resolved against the schema.
type query struct {
	table   *table
	count   bool
	fields  []*fieldPath
	where   condition
	orderBy []orderKey
	limit   int // -1: none
	offset  int
}

// fieldPath is a selected or filtered field: a field of the queried object, or of a parent
// through a lookup's relationship name.
type fieldPath struct {
	rel    *Field // the lookup on the queried object; nil for its own fields
	parent *table
	field  *Field
}

type orderKey struct {
	path       *fieldPath
	desc       bool
	nullsFirst bool
}

type parser struct {
	sim  *Sim
	toks []token
	pos  int
	t    *table
}

// parseQuery parses and resolves a SOQL statement; the caller holds s.mu.
func (s *Sim) parseQuery(soql string) (*query, error) {
	toks, err := lex(soql)
	if err != nil {
		return nil, err
	}
	p := &parser{sim: s, toks: toks}
	return p.query()
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) keyword(words ...string) bool {
	for i, w := range words {
		t := p.toks[min(p.pos+i, len(p.toks)-1)]
		if t.kind != tokIdent || !strings.EqualFold(t.text, w) {
			return false
		}
	}
	p.pos += len(words)
	return true
}

func (p *parser) punct(s string) bool {
	if t := p.peek(); t.kind == tokPunct && t.text == s {
		p.pos++
		return true
	}
	return false
}

func (p *parser) unexpected() error {
	t := p.peek()
	if t.kind == tokEOF {
		return malformed("unexpected end of query")
	}
	text := t.text
	if t.kind == tokString {
		text = "'" + t.str + "'"
	}
	return malformed("unexpected token: '%s'", text)
}

func (p *parser) query() (*query, error) {
	q := &query{limit: -1}
	if !p.keyword("SELECT") {
		return nil, p.unexpected()
	}
	var names [][]string
	if p.keyword("COUNT") {
		if !p.punct("(") || !p.punct(")") {
			return nil, malformed("only COUNT() is supported among aggregate functions")
		}
		q.count = true
	} else {
		for {
			path, err := p.pathNames()
			if err != nil {
				return nil, err
			}
			names = append(names, path)
			if !p.punct(",") {
				break
			}
		}
	}
	if !p.keyword("FROM") {
		return nil, p.unexpected()
	}
	obj := p.next()
	if obj.kind != tokIdent {
		return nil, p.unexpected()
	}
	if p.t = p.sim.table(obj.text); p.t == nil {
		return nil, &soqlError{"INVALID_TYPE", fmt.Sprintf("sObject type '%s' is not supported.", obj.text)}
	}
	q.table = p.t
	seen := make(map[*Field]map[*Field]bool)
	for _, n := range names {
		fp, err := p.resolve(n)
		if err != nil {
			return nil, err
		}
		if seen[fp.rel][fp.field] {
			return nil, malformed("duplicate field selected: %s", strings.Join(n, "."))
		}
		if seen[fp.rel] == nil {
			seen[fp.rel] = make(map[*Field]bool)
		}
		seen[fp.rel][fp.field] = true
		q.fields = append(q.fields, fp)
	}
	if p.keyword("WHERE") {
		c, err := p.condition()
		if err != nil {
			return nil, err
		}
		q.where = c
	}
	if p.keyword("ORDER", "BY") {
		if q.count {
			return nil, malformed("ORDER BY cannot be used with COUNT()")
		}
		for {
			k, err := p.orderKey()
			if err != nil {
				return nil, err
			}
			q.orderBy = append(q.orderBy, k)
			if !p.punct(",") {
				break
			}
		}
	}
	if p.keyword("LIMIT") {
		n, err := p.integer()
		if err != nil {
			return nil, err
		}
		q.limit = n
	}
	if p.keyword("OFFSET") {
		n, err := p.integer()
		if err != nil {
			return nil, err
		}
		if n > 2000 {
			return nil, &soqlError{"NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"}
		}
		q.offset = n
	}
	if p.peek().kind != tokEOF {
		return nil, p.unexpected()
	}
	return q, nil
}

func (p *parser) integer() (int, error) {
	t := p.next()
	n, err := strconv.Atoi(t.text)
	if t.kind != tokNumber || err != nil || n < 0 {
		p.pos--
		return 0, p.unexpected()
	}
	return n, nil
}

// pathNames reads "Field" or "Relationship__r.Field".
func (p *parser) pathNames() ([]string, error) {
	t := p.next()
	if t.kind != tokIdent || isReserved(t.text) {
		p.pos--
		return nil, p.unexpected()
	}
	names := []string{t.text}
	if p.punct(".") {
		t := p.next()
		if t.kind != tokIdent {
			p.pos--
			return nil, p.unexpected()
		}
		names = append(names, t.text)
		if p.peek().kind == tokPunct && p.peek().text == "." {
			return nil, malformed("only one level of relationship is supported in this simulator")
		}
	}
	return names, nil
}

func isReserved(word string) bool {
	switch strings.ToUpper(word) {
	case "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT", "OFFSET", "NULL",
		"TRUE", "FALSE", "ASC", "DESC", "NULLS", "FIRST", "LAST":
		return true
	}
	return false
}

func (p *parser) resolve(names []string) (*fieldPath, error) {
	if len(names) == 1 {
		f := p.t.obj.field(names[0])
		if f == nil {
			return nil, &soqlError{"INVALID_FIELD", fmt.Sprintf("No such column '%s' on entity '%s'.", names[0], p.t.obj.Name)}
		}
		return &fieldPath{field: f}, nil
	}
	rel := p.t.obj.relationship(names[0])
	if rel == nil {
		return nil, &soqlError{"INVALID_FIELD", fmt.Sprintf(
			"Didn't understand relationship '%s' in field path. Please reference your WSDL or the describe call for the appropriate names.", names[0])}
	}
	parent := p.sim.table(rel.ReferenceTo[0])
	f := parent.obj.field(names[1])
	if f == nil {
		return nil, &soqlError{"INVALID_FIELD", fmt.Sprintf("No such column '%s' on entity '%s'.", names[1], parent.obj.Name)}
	}
	return &fieldPath{rel: rel, parent: parent, field: f}, nil
}

func (p *parser) orderKey() (orderKey, error) {
	names, err := p.pathNames()
	if err != nil {
		return orderKey{}, err
	}
	fp, err := p.resolve(names)
	if err != nil {
		return orderKey{}, err
	}
	k := orderKey{path: fp, nullsFirst: true}
	if p.keyword("DESC") {
		k.desc, k.nullsFirst = true, false
	} else {
		p.keyword("ASC")
	}
	if p.keyword("NULLS") {
		switch {
		case p.keyword("FIRST"):
			k.nullsFirst = true
		case p.keyword("LAST"):
			k.nullsFirst = false
		default:
			return orderKey{}, p.unexpected()
		}
	}
	return k, nil
}

// condition is a WHERE clause node.
type condition interface {
	match(q *query, r *row) bool
}

type andCond []condition
type orCond []condition
type notCond struct{ c condition }

func (c andCond) match(q *query, r *row) bool {
	for _, x := range c {
		if !x.match(q, r) {
			return false
		}
	}
	return true
}

func (c orCond) match(q *query, r *row) bool {
	for _, x := range c {
		if x.match(q, r) {
			return true
		}
	}
	return false
}

func (c notCond) match(q *query, r *row) bool { return !c.c.match(q, r) }

// condition parses a run of terms joined by one connective: SOQL requires parentheses to
// mix AND and OR.
func (p *parser) condition() (condition, error) {
	first, err := p.term()
	if err != nil {
		return nil, err
	}
	terms := []condition{first}
	connective := ""
	for {
		var word string
		switch {
		case p.keyword("AND"):
			word = "AND"
		case p.keyword("OR"):
			word = "OR"
		default:
			if len(terms) == 1 {
				return first, nil
			}
			if connective == "AND" {
				return andCond(terms), nil
			}
			return orCond(terms), nil
		}
		if connective != "" && word != connective {
			return nil, malformed("unexpected token: '%s' (use parentheses to combine AND and OR)", word)
		}
		connective = word
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
	}
}

func (p *parser) term() (condition, error) {
	if p.keyword("NOT") {
		c, err := p.term()
		if err != nil {
			return nil, err
		}
		return notCond{c}, nil
	}
	if p.punct("(") {
		c, err := p.condition()
		if err != nil {
			return nil, err
		}
		if !p.punct(")") {
			return nil, p.unexpected()
		}
		return c, nil
	}
	return p.comparison()
}

// comparison is "path op literal", "path [NOT] IN (literals)" or "path LIKE 'pattern'".
type comparison struct {
	path    *fieldPath
	op      string // = != < > <= >= IN NOT IN LIKE
	values  []any  // converted literals; nil is null
	pattern *regexp.Regexp
}

func (p *parser) comparison() (condition, error) {
	names, err := p.pathNames()
	if err != nil {
		return nil, err
	}
	fp, err := p.resolve(names)
	if err != nil {
		return nil, err
	}
	c := &comparison{path: fp}
	switch {
	case p.keyword("NOT", "IN"):
		c.op = "NOT IN"
	case p.keyword("IN"):
		c.op = "IN"
	case p.keyword("LIKE"):
		c.op = "LIKE"
	default:
		t := p.next()
		switch t.text {
		case "=", "!=", "<", ">", "<=", ">=":
			c.op = t.text
		case "<>":
			c.op = "!="
		default:
			p.pos--
			return nil, p.unexpected()
		}
	}
	switch c.op {
	case "LIKE":
		t := p.next()
		if t.kind != tokString || !fp.field.Type.textual() {
			p.pos--
			return nil, malformed("LIKE needs a string field and a quoted pattern")
		}
		c.pattern = likePattern(t.like)
	case "IN", "NOT IN":
		if !p.punct("(") {
			return nil, p.unexpected()
		}
		for {
			v, err := p.literal(fp.field)
			if err != nil {
				return nil, err
			}
			c.values = append(c.values, v)
			if p.punct(")") {
				break
			}
			if !p.punct(",") {
				return nil, p.unexpected()
			}
		}
	default:
		v, err := p.literal(fp.field)
		if err != nil {
			return nil, err
		}
		if v == nil && c.op != "=" && c.op != "!=" {
			return nil, malformed("null can only be compared with = or !=")
		}
		if fp.field.Type == TypeBoolean && c.op != "=" && c.op != "!=" {
			return nil, &soqlError{"INVALID_FIELD", "boolean fields can only be compared with = or !="}
		}
		c.values = []any{v}
	}
	return c, nil
}

// literal reads a value and checks it against the field's type, as SOQL does.
func (p *parser) literal(f *Field) (any, error) {
	t := p.next()
	if t.kind == tokIdent && strings.EqualFold(t.text, "null") {
		return nil, nil
	}
	mismatch := func(want string) error {
		return &soqlError{"INVALID_FIELD", fmt.Sprintf(
			"value of filter criterion for field '%s' must be of type %s and should not be enclosed in quotes", f.Name, want)}
	}
	switch {
	case t.kind == tokString && t.likeOnly:
		return nil, malformed("Invalid string literal: \\%% and \\_ are only allowed in LIKE patterns")
	case f.Type == TypeID || f.Type == TypeRef:
		if t.kind != tokString {
			return nil, p.unexpected()
		}
		id, ok := canonicalID(t.str)
		if !ok {
			return nil, &soqlError{"INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: " + t.str}
		}
		return id, nil
	case f.Type.textual():
		if t.kind != tokString {
			p.pos--
			return nil, p.unexpected()
		}
		return t.str, nil
	case f.Type == TypeDouble:
		if t.kind != tokNumber {
			return nil, mismatch("double")
		}
		n, _ := strconv.ParseFloat(t.text, 64)
		return n, nil
	case f.Type == TypeBoolean:
		if t.kind == tokIdent && (strings.EqualFold(t.text, "true") || strings.EqualFold(t.text, "false")) {
			return strings.EqualFold(t.text, "true"), nil
		}
		return nil, mismatch("boolean")
	case f.Type == TypeDateTime:
		if t.kind != tokDateTime {
			return nil, mismatch("dateTime")
		}
		v, ok := parseDateTime(t.text)
		if !ok {
			return nil, malformed("invalid dateTime literal: %s", t.text)
		}
		return v, nil
	}
	return nil, p.unexpected()
}

// likePattern compiles a LIKE pattern: % is any run, _ one character, \% and \_ literal;
// matching is case-insensitive as in SOQL.
func likePattern(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?is)^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '\\' && i+1 < len(pattern):
			i++
			b.WriteString(regexp.QuoteMeta(string(pattern[i])))
		case c == '%':
			b.WriteString(".*")
		case c == '_':
			b.WriteString(".")
		default:
			_, size := utf8.DecodeRuneInString(pattern[i:])
			b.WriteString(regexp.QuoteMeta(pattern[i : i+size]))
			i += size - 1
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func (c *comparison) match(q *query, r *row) bool {
	v := q.get(c.path, r)
	switch c.op {
	case "LIKE":
		s, ok := v.(string)
		return ok && c.pattern.MatchString(s)
	case "IN", "NOT IN":
		in := false
		for _, x := range c.values {
			if x == nil && v == nil || x != nil && v != nil && compareValues(v, x) == 0 {
				in = true
				break
			}
		}
		return in == (c.op == "IN")
	}
	want := c.values[0]
	switch {
	case want == nil:
		return (v == nil) == (c.op == "=")
	case v == nil:
		return c.op == "!=" // a null is unequal to any value and unordered against it
	}
	n := compareValues(v, want)
	switch c.op {
	case "=":
		return n == 0
	case "!=":
		return n != 0
	case "<":
		return n < 0
	case ">":
		return n > 0
	case "<=":
		return n <= 0
	}
	return n >= 0
}

// get reads a field path for a row, following the lookup for parent fields.
func (q *query) get(fp *fieldPath, r *row) any {
	if fp.rel == nil {
		return q.table.value(r, fp.field)
	}
	if p := q.parentRow(fp, r); p != nil {
		return fp.parent.value(p, fp.field)
	}
	return nil
}

func (q *query) parentRow(fp *fieldPath, r *row) *row {
	return fp.parent.rowByID(q.table.text(r.values, fp.rel.Name))
}

// compareValues orders two non-nil values of one field. Text compares case-insensitively as
// SOQL does; ids are compared in their 18-character form, whose suffix keeps ids that differ
// only in case distinct under folding.
func compareValues(a, b any) int {
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		return strings.Compare(strings.ToLower(x), strings.ToLower(y))
	case float64:
		y, _ := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case bool:
		y, _ := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case time.Time:
		y, _ := b.(time.Time)
		return x.Compare(y)
	}
	return 0
}
