package mapping

import (
	"encoding/json"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary documents to the mapping-file parser: it never panics, and a
// mapping it accepts is accepted again, unchanged, after a round trip through JSON, and maps
// an empty source record of each of its objects without panicking.
func FuzzParse(f *testing.F) {
	def, err := os.ReadFile("default.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def)
	for _, seed := range []string{``, `{}`, `null`, `{"objects": []}`, `{"objects": [{"name": "course"}]}`, `{"objects": [{"name": "x", "fields": [{}]}]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := Parse(doc)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("document %q refused without a message", doc)
			}
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Parse(again)
		if err != nil {
			t.Fatalf("document %q accepted, its re-encoding %s refused: %v", doc, again, err)
		}
		if twice, _ := json.Marshal(m2); string(twice) != string(again) {
			t.Fatalf("document %q changed in a round trip: %s, then %s", doc, again, twice)
		}
		for i := range m.Objects {
			_, _, _ = m.Objects[i].Row(Source{})
		}
	})
}
