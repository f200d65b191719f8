// Package simclient connects the real Skilljar and Salesforce clients to the simulators, with
// retries paced for tests rather than for production.
package simclient

import (
	"time"

	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// Skilljar is a client of the simulator with millisecond backoffs and enough retries to ride
// out the simulator's fault rates; limiter may be nil.
func Skilljar(sj *skilljarsim.Sim, limiter skilljar.Limiter) (*skilljar.Client, error) {
	return skilljar.New(skilljar.Config{
		BaseURL: sj.URL(), APIKey: sj.APIKey(), Limiter: limiter,
		RetryBaseDelay: 5 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond,
		RequestTimeout: 5 * time.Second, MaxRetries: 8,
	})
}

// Salesforce is a client of the simulated org holding a freshly granted access token, with
// millisecond backoffs and bulk polls; tune, when given, changes the configuration further.
func Salesforce(sf *salesforcesim.Sim, tune ...func(*salesforce.Config)) (*salesforce.Client, error) {
	tok := sf.MintTokens("api refresh_token")
	cfg := salesforce.Config{
		Tokens:      salesforce.StaticTokens(salesforce.Credentials{AccessToken: tok.AccessToken, InstanceURL: tok.InstanceURL}),
		BackoffBase: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		BulkPollInterval: 20 * time.Millisecond, BulkPollMax: 100 * time.Millisecond,
	}
	for _, f := range tune {
		f(&cfg)
	}
	return salesforce.New(cfg)
}
