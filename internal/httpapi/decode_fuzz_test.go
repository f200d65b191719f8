package httpapi

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/sjbackfill/backfill/internal/settings"
)

// FuzzDecode feeds arbitrary bodies to the shared request decoder. Whatever it accepts is
// one valid JSON object that survives a round trip unchanged; whatever it refuses gets a
// 4xx with a message; nothing panics.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `{"domains": ["a"], "dry_run": true}`, `{"dry_run": true, "dry_run": false}`,
		`{"lin\u212a_contacts": true}`, `{"link_contacts": true, "sink_mode": "bulk", "environment": "sandbox"}`,
		`{"domains": [{"a": 1, "a": 2}]}`, `{"domains": [`, `{} {}`, `{"objects": [[[[]]]]}`, "{\"domains\": [\"\xff\"]}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, dst := range []any{&StartBody{}, &settings.Settings{}} {
			err := decodeObject(raw, dst, true)
			var apiErr *Error
			if err != nil {
				if !errors.As(err, &apiErr) || apiErr.Status < 400 || apiErr.Status > 499 || apiErr.Message == "" {
					t.Fatalf("body %q refused with %#v, want a 4xx with a message", raw, err)
				}
				continue
			}
			if !json.Valid(raw) {
				t.Fatalf("body %q accepted but is not valid JSON", raw)
			}
			again, err := json.Marshal(dst)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(dst).Elem()).Interface()
			if err := decodeObject(again, back, true); err != nil {
				t.Fatalf("body %q accepted, but its re-encoding %s is refused: %v", raw, again, err)
			}
			// Compared as JSON: omitempty makes [] and a nil list the same body.
			if twice, _ := json.Marshal(back); string(twice) != string(again) {
				t.Fatalf("body %q decoded to %s, its re-encoding to %s", raw, again, twice)
			}
		}
	})
}
