package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/settings"
)

// The decoder accepts exactly one JSON object whose keys are unique and spelled exactly as
// documented: encoding/json alone takes null as "no change", keeps the last of duplicate
// keys, and matches keys case-insensitively under Unicode folding.
func TestSettingsBodiesThatAreNotOneObjectWithExactUniqueKeysChangeNothing(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	requireStatus(t, e.Do(t, http.MethodPut, "/v1/settings", `{"link_contacts": true, "sink_mode": "bulk"}`), http.StatusOK)

	cases := []struct {
		name, body, code, field string
	}{
		{"null", `null`, httpapi.CodeInvalidJSON, ""},
		{"null with spaces", " \n null \t", httpapi.CodeInvalidJSON, ""},
		{"an array", `[]`, httpapi.CodeInvalidJSON, ""},
		{"a string", `"x"`, httpapi.CodeInvalidJSON, ""},
		{"duplicate keys", `{"sink_mode": "bulk", "sink_mode": "collections"}`, httpapi.CodeInvalidJSON, "sink_mode"},
		{"duplicate keys, one escaped", `{"link_contacts": true, "link\u005fcontacts": false}`, httpapi.CodeInvalidJSON, "link_contacts"},
		{"Kelvin sign for k", `{"lin\u212a_contacts": false}`, httpapi.CodeUnknownField, "lin\u212a_contacts"},
		{"other case", `{"Link_Contacts": false}`, httpapi.CodeUnknownField, "Link_Contacts"},
		{"upper case", `{"SINK_MODE": "collections"}`, httpapi.CodeUnknownField, "SINK_MODE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requireError(t, e.Do(t, http.MethodPut, "/v1/settings", tc.body), http.StatusBadRequest, tc.code, tc.field)
		})
	}
	var st settings.Settings
	r := e.Do(t, http.MethodGet, "/v1/settings", nil)
	requireStatus(t, r, http.StatusOK)
	r.JSON(t, &st)
	if !st.LinkContacts || st.SinkMode != "bulk" {
		t.Fatalf("refused bodies changed the settings to %+v", st)
	}
}

// Every JSON route shares the decoder: a run start refuses the same bodies, and an empty body
// still means "the saved settings".
func TestStartBodiesThatAreNotOneObjectWithExactUniqueKeysStartNothing(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	for _, body := range []string{`null`, `{"dry_run": true, "dry_run": false}`, `{"DRY_RUN": true}`, `{"dry_ru\u212a": true}`} {
		if r := e.Do(t, http.MethodPost, "/v1/backfills", body); r.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /v1/backfills %s: status %d, want 400; body %s", body, r.StatusCode, r.Body)
		}
	}
	if n := e.Enqueued(t); n != 0 {
		t.Fatalf("refused bodies enqueued %d tasks", n)
	}
	startRun(t, e, "")
}
