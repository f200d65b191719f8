package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/doctor"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/skilljar"
	"github.com/sjbackfill/backfill/internal/webhooks"
)

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

// fetchOpenAPI reads the document as the server serves it.
func fetchOpenAPI(t *testing.T, e *apitest.Env) (openAPIDoc, []byte) {
	t.Helper()
	r := e.Do(t, http.MethodGet, "/v1/openapi.json", nil)
	requireStatus(t, r, http.StatusOK)
	var doc openAPIDoc
	r.JSON(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	return doc, r.Body
}

func TestOpenAPIDocumentDescribesExactlyTheRegisteredRoutes(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	doc, _ := fetchOpenAPI(t, e)
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	var registered []string
	for key := range e.Server.Config.Handler.(*httpapi.Server).Routes() {
		registered = append(registered, key)
	}
	sort.Strings(documented)
	sort.Strings(registered)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in the OpenAPI document", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("the OpenAPI document describes %s, which the server does not serve", d)
		}
	}
}

func TestOpenAPIReferencesResolveAndOperationsDescribeTheirAnswers(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	doc, raw := fetchOpenAPI(t, e)
	var tree map[string]any
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"\$ref":\s*"#/([^"]+)"`).FindAllSubmatch(raw, -1) {
		var node any = tree
		for _, part := range strings.Split(string(m[1]), "/") {
			obj, ok := node.(map[string]any)
			if !ok || obj[part] == nil {
				t.Errorf("$ref #/%s does not resolve", m[1])
				break
			}
			node = obj[part]
		}
	}
	for path, ops := range doc.Paths {
		for method, rawOp := range ops {
			var op struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(rawOp, &op); err != nil {
				t.Fatal(err)
			}
			if op.OperationID == "" || len(op.Responses) == 0 {
				t.Errorf("%s %s has no operationId or no responses", method, path)
			}
			if path != "/healthz" && path != "/readyz" && op.Responses["401"] == nil {
				t.Errorf("%s %s does not describe its 401", method, path)
			}
		}
	}
}

// jsonNames lists the JSON names a Go type encodes, embedded structs flattened.
func jsonNames(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case f.Anonymous && name == "":
			out = append(out, jsonNames(f.Type)...)
		default:
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func TestOpenAPISchemasListTheFieldsTheServerSends(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	doc, _ := fetchOpenAPI(t, e)
	types := map[string]any{
		"Error": httpapi.Error{}, "ErrorBody": httpapi.ErrorBody{}, "FieldError": settings.FieldError{},
		"Health": httpapi.Health{}, "StartBody": httpapi.StartBody{}, "RunList": httpapi.RunList{},
		"EventList": httpapi.EventList{}, "RejectedPage": httpapi.RejectedPage{}, "SampleList": httpapi.SampleList{},
		"Run": runstore.Run{}, "Scope": runstore.Scope{}, "Plan": runstore.Plan{}, "Adaptation": runstore.Adaptation{}, "StreamDef": runstore.StreamDef{},
		"StreamStatus": runstore.StreamStatus{}, "Counters": runstore.Counters{}, "Progress": runstore.Progress{},
		"Summary": runstore.Summary{}, "ObjectSummary": runstore.ObjectSummary{}, "DomainSummary": runstore.DomainSummary{}, "Event": runstore.Event{},
		"Rejected": runstore.Rejected{}, "Sample": runstore.Sample{}, "Settings": settings.Settings{},
		"ConnectionStatus": connection.Status{}, "ConnectionEventList": httpapi.ConnectionEventList{},
		"ConnectionEvent": connection.Event{}, "WebhookStatus": webhooks.Status{},
		"WebhookSubscription": webhooks.Subscription{}, "WebhookPing": skilljar.PingResult{}, "WebhookQueue": webhooks.QueueStats{},
		"DoctorReport": doctor.Report{}, "DoctorEntry": doctor.Entry{},
		"MappingSuggestion": mapping.Suggestion{}, "MappingReview": mapping.Review{}, "Mapping": mapping.Mapping{},
		"MappingObject": mapping.Object{}, "MappingField": mapping.Field{},
	}
	for name, v := range types {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s is missing", name)
			continue
		}
		var props []string
		for p := range schema.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		if want := jsonNames(reflect.TypeOf(v)); !slices.Equal(props, want) {
			t.Errorf("schema %s has properties %v; %T encodes %v", name, props, v, want)
		}
	}
	for name := range doc.Components.Schemas {
		if _, ok := types[name]; !ok {
			t.Errorf("schema %s is not checked against a Go type", name)
		}
	}
}

func TestOpenAPIDocumentStatesTheStoresRunIDRule(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	_, body := fetchOpenAPI(t, e)
	var doc struct {
		Components struct {
			Parameters struct {
				RunID struct {
					Schema struct{ Pattern string } `json:"schema"`
				}
			} `json:"parameters"`
			Schemas struct {
				Run struct {
					Properties struct {
						ID struct{ Pattern string } `json:"id"`
					} `json:"properties"`
				}
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	for where, got := range map[string]string{
		"parameters.RunID":          doc.Components.Parameters.RunID.Schema.Pattern,
		"schemas.Run.properties.id": doc.Components.Schemas.Run.Properties.ID.Pattern,
	} {
		if got != runstore.IDPattern {
			t.Errorf("%s has pattern %q; the store mints ids of shape %q", where, got, runstore.IDPattern)
		}
	}
}

// TestOpenAPIObjectEnumsListThePipelinesObjects keeps the document's object lists in step
// with the objects a scope may name: a new Skilljar object must appear in both.
func TestOpenAPIObjectEnumsListThePipelinesObjects(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("openapi.json") // the embedded document's source
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	found := 0
	var visit func(at string, n any)
	visit = func(at string, n any) {
		switch n := n.(type) {
		case map[string]any:
			for k, v := range n {
				if prop, ok := v.(map[string]any); ok && k == "objects" {
					if items, ok := prop["items"].(map[string]any); ok && items["enum"] != nil {
						found++
						var enum []string
						for _, e := range items["enum"].([]any) {
							enum = append(enum, e.(string))
						}
						if want := pipeline.Objects(); !slices.Equal(enum, want) {
							t.Errorf("%s/objects enumerates %v; the pipeline's objects are %v", at, enum, want)
						}
					}
				}
				visit(at+"/"+k, v)
			}
		case []any:
			for i, v := range n {
				visit(fmt.Sprintf("%s/%d", at, i), v)
			}
		}
	}
	visit("#", tree)
	if found < 2 {
		t.Fatalf("found %d object enums; the start body and the settings each have one", found)
	}
}
