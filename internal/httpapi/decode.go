package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
)

// decode reads the request body as one JSON object into dst, refusing unknown fields,
// wrong types, trailing data and bodies over the limit. Keys must be unique and spelled
// exactly as documented: encoding/json alone would keep the last of duplicate keys and
// match keys case-insensitively (a Kelvin sign matches "k"), and would take null as an
// empty object. An empty body leaves dst as it is unless required.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, dst any, required bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Field: "Content-Type",
				Message: fmt.Sprintf("the body must be JSON sent as Content-Type: application/json, not %q", ct)}
		}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return decodeError(err, dst)
	}
	return decodeObject(raw, dst, required)
}

// decodeObject is decode once the body is read.
func decodeObject(raw []byte, dst any, required bool) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		if required {
			return decodeError(io.EOF, dst)
		}
		return nil
	}
	if err := checkKeys(json.NewDecoder(bytes.NewReader(raw)), jsonFields(dst)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, dst)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(err, dst)
		}
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "the body holds more than one JSON value; send one object"}
	}
	return nil
}

// checkKeys reads the first JSON value from dec and refuses it unless it is an object whose
// keys are among fields, exactly, and whose objects at every depth have no key twice.
func checkKeys(dec *json.Decoder, fields []string) error {
	tok, err := dec.Token()
	if err != nil {
		return tokenError(err)
	}
	if tok != json.Delim('{') {
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON,
			Message: "the body must be a JSON object, not " + kindOf(tok)}
	}
	return walkObject(dec, fields)
}

// walkObject reads an object's members after its '{'. Only the top level is checked
// against fields; nested objects are checked for duplicates alone.
func walkObject(dec *json.Decoder, fields []string) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return tokenError(err)
		}
		key := tok.(string) // json.Decoder yields object keys as strings
		if seen[key] {
			return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Field: key,
				Message: fmt.Sprintf("the key %q appears more than once; send each field once", key)}
		}
		seen[key] = true
		if fields != nil && !slices.Contains(fields, key) {
			return &Error{Status: http.StatusBadRequest, Code: CodeUnknownField, Field: key,
				Message: fmt.Sprintf("unknown field %q (field names are case-sensitive); this body takes %s", key, strings.Join(fields, ", "))}
		}
		if err := walkValue(dec); err != nil {
			return err
		}
	}
	_, err := dec.Token() // the closing '}'
	if err != nil {
		return tokenError(err)
	}
	return nil
}

// walkValue reads one value, checking the objects inside it.
func walkValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return tokenError(err)
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, nil)
	case json.Delim('['):
		for dec.More() {
			if err := walkValue(dec); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return tokenError(err)
		}
	}
	return nil
}

// tokenError reports a token the walk could not read. The body is not empty, so an end of
// input inside the walk is an unfinished value.
func tokenError(err error) *Error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return decodeError(err, nil)
}

// kindOf names the JSON kind of a token that opens a value.
func kindOf(tok json.Token) string {
	switch tok.(type) {
	case nil:
		return "null"
	case bool:
		return "true or false"
	case float64:
		return "a number"
	case string:
		return "a string"
	}
	return "an array"
}

// decodeError turns what encoding/json reports into an answer that names the field.
func decodeError(err error, dst any) *Error {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	bad := func(code, field, format string, args ...any) *Error {
		return &Error{Status: http.StatusBadRequest, Code: code, Field: field, Message: fmt.Sprintf(format, args...), cause: err}
	}
	switch {
	case errors.As(err, &tooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, cause: err,
			Message: fmt.Sprintf("the body is larger than %d bytes", tooLarge.Limit)}
	case errors.Is(err, io.EOF):
		return bad(CodeInvalidJSON, "", "the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad(CodeInvalidJSON, "", "the body ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return bad(CodeInvalidJSON, "", "malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return bad(CodeInvalidJSON, "", "the body must be a JSON object, not %s", article(typ.Value))
		}
		return bad(CodeInvalidType, typ.Field, "%s must hold %s, not %s", typ.Field, describe(typ.Type), article(typ.Value))
	}
	// encoding/json reports an unknown field only in its message.
	if name, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
		name = strings.TrimSuffix(name, `"`)
		return bad(CodeUnknownField, name, "unknown field %q; this body takes %s", name, strings.Join(jsonFields(dst), ", "))
	}
	return bad(CodeInvalidJSON, "", "the body is not valid: %v", err)
}

// describe names the JSON a Go type accepts.
func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(describe(t.Elem()), "a "), "an ") + "s"
	case reflect.Pointer:
		return describe(t.Elem())
	}
	return "an object"
}

func article(jsonKind string) string {
	switch jsonKind {
	case "array", "object":
		return "an " + jsonKind
	case "number", "string", "bool":
		return "a " + jsonKind
	}
	return jsonKind
}

// jsonFields lists the JSON names of a struct's fields.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}
