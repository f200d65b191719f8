package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// decode reads the request body as one JSON object into dst, refusing unknown fields,
// wrong types, trailing data and bodies over the limit. An empty body leaves dst as it is
// unless required.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, dst any, required bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Field: "Content-Type",
				Message: fmt.Sprintf("the body must be JSON sent as Content-Type: application/json, not %q", ct)}
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) && !required {
			return nil
		}
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
