package config_test

import (
	"errors"
	"testing"

	"github.com/sjbackfill/backfill/internal/config"
)

// The client secret goes to the environment's login host at every connect: an origin that is
// not Salesforce's stops the process unless SALESFORCE_LOGIN_ORIGINS names it.
func TestLoadTakesALoginHostOutsideSalesforceOnlyWhenConfigured(t *testing.T) {
	sim := "http://127.0.0.1:8082"
	var cerr *config.Error
	if _, err := config.Load(config.RoleAPI, env(map[string]string{"SALESFORCE_ENVIRONMENT": sim})); !errors.As(err, &cerr) || cerr.Var != "SALESFORCE_ENVIRONMENT" {
		t.Fatalf("an unlisted origin loaded: %v", err)
	}
	c, err := config.Load(config.RoleAPI, env(map[string]string{"SALESFORCE_ENVIRONMENT": sim, "SALESFORCE_LOGIN_ORIGINS": " https://x.example/ , " + sim}))
	if err != nil || c.SalesforceLoginURL != sim || len(c.SalesforceLoginOrigins) != 2 {
		t.Fatalf("a listed origin: login %q origins %v (%v)", c.SalesforceLoginURL, c.SalesforceLoginOrigins, err)
	}
	for _, bad := range []string{"127.0.0.1:8082", "http://127.0.0.1:8082/login", "https://u:p@x.example"} {
		if _, err := config.Load(config.RoleAPI, env(map[string]string{"SALESFORCE_LOGIN_ORIGINS": bad})); !errors.As(err, &cerr) || cerr.Var != "SALESFORCE_LOGIN_ORIGINS" {
			t.Errorf("SALESFORCE_LOGIN_ORIGINS=%q: %v, want an error naming the variable", bad, err)
		}
	}
}
