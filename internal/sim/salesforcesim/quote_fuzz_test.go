package salesforcesim

import (
	"testing"
	"unicode/utf8"

	"github.com/sjbackfill/backfill/internal/salesforce"
)

// FuzzQuoteString checks the engine's SOQL quoting against the simulator's SOQL lexer, an
// implementation of the escapes Salesforce documents that shares no code with it: any text
// becomes exactly one string literal holding that text, and nothing after it.
func FuzzQuoteString(f *testing.F) {
	for _, seed := range []string{
		"", "ann@example.com", "O'Brien", `Back\slash`, `\'`, `'\`, "' OR Id != null OR Email = '",
		"a\nb\rc\td\be\ff", "100% sure_", "Zoë", "\u2028\x00\x7f", `\u0027`, "''''", `\\'`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // the engine only quotes text Skilljar sent as valid UTF-8
		}
		lit := salesforce.QuoteString(s)
		toks, err := lex("SELECT Id FROM Contact WHERE Email = " + lit)
		if err != nil {
			t.Fatalf("%q quoted as %s does not lex: %v", s, lit, err)
		}
		if n := len(toks); n < 2 || toks[n-2].kind != tokString || toks[n-1].kind != tokEOF {
			t.Fatalf("%q quoted as %s does not end the query as one string literal: %+v", s, lit, toks)
		}
		if got := toks[len(toks)-2]; got.str != s || got.likeOnly {
			t.Fatalf("%q quoted as %s reads back as %q", s, lit, got.str)
		}
	})
}
