package webui_test

import (
	"net/http"
	"testing"
)

// A path that can name no asset is the client's mistake: a 404, never a 500.
func TestAssetPathsThatNameNoFileAnswer404(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	for _, path := range []string{"/assets/%ff%fe", "/assets/%00", "/assets/no-such.css", "/assets/app.css%ff"} {
		if p := e.get(t, path); p.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404; body %.200s", path, p.status, p.body)
		}
	}
	e.get(t, "/assets/app.css").requireStatus(t, http.StatusOK)
}
