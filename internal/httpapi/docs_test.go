package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
)

// The reference page renders every route and schema of the document on the server, and its
// CSP allows nothing but the page's own style block.
func TestDocsPageShowsEveryRouteAndSchemaUnderAStrictCSP(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	doc, _ := fetchOpenAPI(t, e)
	r := e.Do(t, http.MethodGet, "/v1/docs", nil)
	requireStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	page := string(r.Body)
	for path, ops := range doc.Paths {
		for method := range ops {
			want := `<span class="method">` + strings.ToUpper(method) + `</span> <span class="path">` + path + `</span>`
			if !strings.Contains(page, want) {
				t.Errorf("the page lacks %s %s", strings.ToUpper(method), path)
			}
		}
	}
	for name := range doc.Components.Schemas {
		if !strings.Contains(page, `id="schema-`+name+`"`) {
			t.Errorf("the page lacks schema %s", name)
		}
	}
	// Every link stays on the page or the server: nothing is fetched from elsewhere.
	for _, m := range regexp.MustCompile(`(?i)(href|src)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if !strings.HasPrefix(m[2], "#") && !strings.HasPrefix(m[2], "/") {
			t.Errorf("link %s=%q leaves the server", m[1], m[2])
		}
		if strings.HasPrefix(m[2], "#") && !strings.Contains(page, `id="`+m[2][1:]+`"`) {
			t.Errorf("link %q points at nothing on the page", m[2])
		}
	}
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Error("the page holds a script")
	}
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(page)
	if style == nil {
		t.Fatal("the page has no style block")
	}
	sum := sha256.Sum256([]byte(style[1]))
	csp := r.Header.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'none'; ") || !strings.Contains(csp, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Fatalf("CSP %q does not pin the page's style and forbid the rest", csp)
	}
}

func TestDocsPageAsksABrowserForThePassword(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	r := e.DoRaw(t, http.MethodGet, "/v1/docs", nil)
	requireStatus(t, r, http.StatusUnauthorized)
	if ch := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Basic ") {
		t.Fatalf("WWW-Authenticate %q, want a Basic challenge", ch)
	}
	r = e.DoRaw(t, http.MethodGet, "/v1/docs", nil, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("operator:"+apitest.Token)))
	requireStatus(t, r, http.StatusOK)
}
