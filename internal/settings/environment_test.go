package settings_test

import (
	"errors"
	"testing"

	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/settings"
)

// The next connect sends the client secret to the environment's login host, so only
// Salesforce's login hosts over https, and origins the configuration names, may be saved.
func TestEnvironmentMustBeASalesforceLoginHostOrAConfiguredOrigin(t *testing.T) {
	t.Parallel()
	sim := "http://127.0.0.1:48123"
	store := settings.New(redistest.Start(t).Client(t), settings.Config{LoginOrigins: []string{sim}})
	for _, env := range []string{
		"production", "sandbox", "https://login.salesforce.com", "https://test.salesforce.com",
		"https://acme.my.salesforce.com", "https://acme.my.salesforce.com/", "https://acme--uat.sandbox.my.salesforce.com",
		sim, sim + "/",
	} {
		if _, err := store.Put(t.Context(), settings.Settings{Environment: env}); err != nil {
			t.Errorf("environment %q refused: %v", env, err)
		}
	}
	for _, env := range []string{
		"http://127.0.0.1:48124", "http://localhost:48123", "https://evil.example", "http://acme.my.salesforce.com",
		"https://acme.my.salesforce.com.evil.example", "https://evilmy.salesforce.com", "https://my.salesforce.com",
		"https://user:pw@acme.my.salesforce.com", "https://acme.my.salesforce.com/services/oauth2", "https://acme.my.salesforce.com?x=1",
		"https://acme.my.salesforce.com:8443", "https://login.salesforce.com.evil.example", "ftp://login.salesforce.com", "https://", "staging",
	} {
		_, err := store.Put(t.Context(), settings.Settings{Environment: env})
		var invalid *settings.ValidationError
		if !errors.As(err, &invalid) || len(invalid.Problems) != 1 || invalid.Problems[0].Field != "environment" {
			t.Errorf("environment %q: %v, want one problem with environment", env, err)
		}
	}
	if saved, err := store.Get(t.Context()); err != nil || saved.Environment != sim {
		t.Fatalf("the refused environments replaced the saved one: %q (%v)", saved.Environment, err)
	}
	// Without configured origins the simulator's origin is refused too.
	bare := settings.New(redistest.Start(t).Client(t), settings.Config{})
	if _, err := bare.Put(t.Context(), settings.Settings{Environment: sim}); err == nil {
		t.Fatalf("%s saved without being configured", sim)
	}
}
