package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes every route of the API; a test holds it and the routes equal.
//
//go:embed openapi.json
var openAPIDocument []byte

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument)
	return nil
}
