package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
)

// The API reference at /v1/docs is rendered on the server from the embedded OpenAPI
// document: no script, no stylesheet from elsewhere, so it works offline and under a CSP
// that allows nothing but its own inline style (pinned by hash).

// oaSchema is the part of an OpenAPI schema the page shows.
type oaSchema struct {
	Ref         string              `json:"$ref"`
	Type        any                 `json:"type"` // a name, or a list of names (3.1)
	Items       *oaSchema           `json:"items"`
	Enum        []any               `json:"enum"`
	Format      string              `json:"format"`
	Description string              `json:"description"`
	Properties  map[string]oaSchema `json:"properties"`
	Required    []string            `json:"required"`
	OneOf       []oaSchema          `json:"oneOf"`
}

type oaParameter struct {
	Ref         string   `json:"$ref"`
	Name        string   `json:"name"`
	In          string   `json:"in"`
	Required    bool     `json:"required"`
	Description string   `json:"description"`
	Schema      oaSchema `json:"schema"`
}

type oaContent map[string]struct {
	Schema oaSchema `json:"schema"`
}

type oaResponse struct {
	Ref         string    `json:"$ref"`
	Description string    `json:"description"`
	Content     oaContent `json:"content"`
}

type oaOperation struct {
	Summary     string        `json:"summary"`
	Description string        `json:"description"`
	OperationID string        `json:"operationId"`
	Parameters  []oaParameter `json:"parameters"`
	RequestBody *struct {
		Description string    `json:"description"`
		Content     oaContent `json:"content"`
	} `json:"requestBody"`
	Responses map[string]oaResponse `json:"responses"`
}

type oaDocument struct {
	Info struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Parameters map[string]oaParameter `json:"parameters"`
		Responses  map[string]oaResponse  `json:"responses"`
		Schemas    map[string]oaSchema    `json:"schemas"`
	} `json:"components"`
}

// What the template shows.
type (
	docsPage struct {
		Title, Version string
		Description    []string // paragraphs
		Operations     []docsOperation
		Schemas        []docsSchema
	}
	docsOperation struct {
		Method, Path, Summary, Description, Anchor string
		Parameters                                 []docsField
		Body                                       template.HTML
		Responses                                  []docsResponse
	}
	docsResponse struct {
		Code, Description string
		Schema            template.HTML
	}
	docsField struct {
		Name, In, Description string
		Required              bool
		Type                  template.HTML
	}
	docsSchema struct {
		Name, Description string
		Fields            []docsField
	}
)

// methodOrder lists an endpoint's methods in the order a reader expects.
var methodOrder = []string{"get", "post", "put", "patch", "delete"}

// buildDocsPage turns the document into what the template shows.
func buildDocsPage(raw []byte) (docsPage, error) {
	var doc oaDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		return docsPage{}, fmt.Errorf("openapi.json: %w", err)
	}
	page := docsPage{Title: doc.Info.Title, Version: doc.Info.Version, Description: strings.Split(doc.Info.Description, "\n\n")}
	paths := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, path := range paths {
		for _, method := range methodOrder {
			raw, ok := doc.Paths[path][method]
			if !ok {
				continue
			}
			var op oaOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				return docsPage{}, fmt.Errorf("openapi.json: %s %s: %w", method, path, err)
			}
			page.Operations = append(page.Operations, doc.operation(method, path, op))
		}
	}
	names := make([]string, 0, len(doc.Components.Schemas))
	for n := range doc.Components.Schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := doc.Components.Schemas[n]
		page.Schemas = append(page.Schemas, docsSchema{Name: n, Description: s.Description, Fields: fields(s)})
	}
	return page, nil
}

func (doc *oaDocument) operation(method, path string, op oaOperation) docsOperation {
	out := docsOperation{Method: strings.ToUpper(method), Path: path, Summary: op.Summary, Description: op.Description, Anchor: "op-" + op.OperationID}
	for _, p := range op.Parameters {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			p = doc.Components.Parameters[name]
		}
		out.Parameters = append(out.Parameters, docsField{Name: p.Name, In: p.In, Required: p.Required, Description: p.Description, Type: typeHTML(p.Schema)})
	}
	if op.RequestBody != nil {
		out.Body = contentHTML(op.RequestBody.Content)
	}
	codes := make([]string, 0, len(op.Responses))
	for c := range op.Responses {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, code := range codes {
		r := op.Responses[code]
		if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
			r = doc.Components.Responses[name]
		}
		out.Responses = append(out.Responses, docsResponse{Code: code, Description: r.Description, Schema: contentHTML(r.Content)})
	}
	return out
}

func fields(s oaSchema) []docsField {
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]docsField, 0, len(names))
	for _, n := range names {
		p := s.Properties[n]
		out = append(out, docsField{Name: n, Required: slices.Contains(s.Required, n), Description: p.Description, Type: typeHTML(p)})
	}
	return out
}

// contentHTML names the schemas of a body, by media type when there is more than JSON.
func contentHTML(c oaContent) template.HTML {
	var parts []string
	for media, m := range c {
		t := string(typeHTML(m.Schema))
		if media != "application/json" {
			t = template.HTMLEscapeString(media) + ": " + t
		}
		parts = append(parts, t)
	}
	sort.Strings(parts)
	return template.HTML(strings.Join(parts, "; "))
}

// typeHTML renders a schema's type, linking references to their schema on the page.
func typeHTML(s oaSchema) template.HTML {
	esc := template.HTMLEscapeString
	var t string
	switch {
	case s.Ref != "":
		name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		t = `<a href="#schema-` + esc(name) + `">` + esc(name) + `</a>`
	case s.Items != nil:
		t = "array of " + string(typeHTML(*s.Items))
	case len(s.OneOf) > 0:
		var alts []string
		for _, o := range s.OneOf {
			alts = append(alts, string(typeHTML(o)))
		}
		t = strings.Join(alts, " or ")
	default:
		switch v := s.Type.(type) {
		case string:
			t = esc(v)
		case []any:
			var names []string
			for _, n := range v {
				names = append(names, esc(fmt.Sprint(n)))
			}
			t = strings.Join(names, " or ")
		default:
			t = "any"
		}
		if s.Format != "" {
			t += " (" + esc(s.Format) + ")"
		}
	}
	if len(s.Enum) > 0 {
		var vals []string
		for _, v := range s.Enum {
			vals = append(vals, "<code>"+esc(fmt.Sprint(v))+"</code>")
		}
		t += ": " + strings.Join(vals, ", ")
	}
	return template.HTML(t)
}

const docsCSS = `body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}
code,.path{font-family:ui-monospace,monospace}h2{margin-top:2.5rem;border-bottom:1px solid #d0d7de}
section{margin:1.5rem 0;padding:.5rem 1rem;border:1px solid #d0d7de;border-radius:6px}
.method{display:inline-block;min-width:4rem;font-weight:600}table{border-collapse:collapse;width:100%}
td,th{text-align:left;vertical-align:top;padding:.2rem .6rem .2rem 0}th{font-weight:600}.req{color:#b35900}`

var docsTemplate = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>` + docsCSS + `</style></head><body>
<h1>{{.Title}} <small>v{{.Version}}</small></h1>
{{range .Description}}<p>{{.}}</p>{{end}}
<p>The machine-readable document: <a href="/v1/openapi.json"><code>/v1/openapi.json</code></a>.</p>
<h2>Routes</h2>
<ul>{{range .Operations}}<li><a href="#{{.Anchor}}"><span class="method">{{.Method}}</span> <span class="path">{{.Path}}</span></a> {{.Summary}}</li>{{end}}</ul>
{{range .Operations}}<section id="{{.Anchor}}">
<h3><span class="method">{{.Method}}</span> <span class="path">{{.Path}}</span></h3>
<p>{{.Summary}}</p>{{with .Description}}<p>{{.}}</p>{{end}}
{{with .Parameters}}<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>
{{range .}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.In}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>{{end}}</table>{{end}}
{{with .Body}}<p>Body: {{.}}</p>{{end}}
<table><tr><th>status</th><th>answer</th><th></th></tr>
{{range .Responses}}<tr><td>{{.Code}}</td><td>{{.Schema}}</td><td>{{.Description}}</td></tr>{{end}}</table>
</section>{{end}}
<h2>Schemas</h2>
{{range .Schemas}}<section id="schema-{{.Name}}"><h3>{{.Name}}</h3>{{with .Description}}<p>{{.}}</p>{{end}}
{{with .Fields}}<table><tr><th>field</th><th>type</th><th></th></tr>
{{range .}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>{{end}}</table>{{end}}
</section>{{end}}
</body></html>
`))

// docsCSP allows the page nothing but its own style block.
var docsCSP = func() string {
	sum := sha256.Sum256([]byte(docsCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// docsHTML renders the page once: the document is embedded and never changes.
var docsHTML = sync.OnceValues(func() ([]byte, error) {
	page, err := buildDocsPage(openAPIDocument)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := docsTemplate.Execute(&b, page); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
})

func (s *Server) docs(w http.ResponseWriter, _ *http.Request) error {
	body, err := docsHTML()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", docsCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
	return nil
}
