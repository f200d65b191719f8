package skilljar

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodePage feeds arbitrary bodies to the page decoders of every record type: they
// never panic, and a page they accept was valid UTF-8 and valid JSON, with a next URL only
// from an envelope.
func FuzzDecodePage(f *testing.F) {
	for _, seed := range []string{
		``, `[]`, `{}`, `null`, `{"count": 1, "next": null, "previous": null, "results": [{"id": "u1"}]}`,
		`{"next": "https://api.skilljar.com/v1/users?cursor=x", "results": []}`, `{"results": null}`,
		`[{"id": "c1", "title": "Go", "created_at": "2024-01-02T03:04:05Z"}]`, "[\"\xff\"]",
		`{"count": "1", "results": []}`, `[{"user": {"id": 1}}]`, `{"results": [{"course": {"id": "c"}, "score": "9.5"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(kind string, next string, err error) {
			if err != nil {
				return
			}
			if !utf8.Valid(body) || !json.Valid(body) {
				t.Fatalf("%s page %q accepted but is not valid UTF-8 JSON", kind, body)
			}
			if next != "" && body[firstNonSpace(body)] != '{' {
				t.Fatalf("%s page %q is an array but has a next URL %q", kind, body, next)
			}
		}
		p1, err := decodePage[DomainUser](body)
		check("domain user", p1.Next, err)
		p2, err := decodePage[Course](body)
		check("course", p2.Next, err)
		p3, err := decodePage[PublishedCourse](body)
		check("published course", p3.Next, err)
		p4, err := decodePage[UserOverview](body)
		check("user", p4.Next, err)
		p5, err := decodePage[UserCourseProgress](body)
		check("course progress", p5.Next, err)
		p6, err := decodePage[Domain](body)
		check("domain", p6.Next, err)
	})
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return 0
}
