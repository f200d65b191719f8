package config_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/config"
	"github.com/sjbackfill/backfill/internal/ratelimit"
)

func env(over map[string]string) func(string) string {
	base := map[string]string{
		"REDIS_URL": "redis://localhost:6379/0", "SKILLJAR_API_KEY": "k", "SALESFORCE_CLIENT_ID": "id",
		"SALESFORCE_CLIENT_SECRET": "s", "SALESFORCE_REDIRECT_URL": "https://h/salesforce/callback",
		"BACKFILL_API_TOKEN": "0123456789abcdef0123", "BACKFILL_SECRET_KEY": strings.Repeat("ab", 32),
	}
	for k, v := range over {
		base[k] = v
	}
	return func(k string) string { return base[k] }
}

func TestLoadAppliesDefaultsAndDerivesTheLoginHost(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.RoleAPI, env(map[string]string{"SALESFORCE_ENVIRONMENT": "sandbox"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.SalesforceLoginURL != "https://test.salesforce.com" || c.HTTPAddr != ":8080" || len(c.SecretKey) != 32 ||
		c.SliceDuration.Seconds() != 60 || c.RunLease != 15*time.Second || len(c.SkilljarRateLimit) != 2 ||
		c.SkilljarRateWindow != ratelimit.Sliding || c.SkilljarRateMargin != 500*time.Millisecond {
		t.Fatalf("config %+v", c)
	}
}

func TestTheAutoRateMarginShrinksForShortPeriods(t *testing.T) {
	t.Parallel()
	for limit, want := range map[string]time.Duration{"600/1m,5000/1h": 500 * time.Millisecond, "20/1s": 20 * time.Millisecond} {
		c, err := config.Load(config.RoleWorker, env(map[string]string{"SKILLJAR_RATE_LIMIT": limit}))
		if err != nil {
			t.Fatal(err)
		}
		if c.SkilljarRateMargin != want {
			t.Errorf("SKILLJAR_RATE_LIMIT=%s: auto margin %s, want %s", limit, c.SkilljarRateMargin, want)
		}
	}
	c, err := config.Load(config.RoleWorker, env(map[string]string{"SKILLJAR_RATE_MARGIN": "150ms", "SKILLJAR_RATE_WINDOW": "fixed"}))
	if err != nil || c.SkilljarRateMargin != 150*time.Millisecond || c.SkilljarRateWindow != ratelimit.Fixed {
		t.Errorf("explicit margin and window: %s %s %v", c.SkilljarRateMargin, c.SkilljarRateWindow, err)
	}
}

func TestLoadNamesTheVariableAndWhatItExpects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		role, name, value, want string
	}{
		{config.RoleWorker, "REDIS_URL", "", "is required for the worker role"},
		{config.RoleAPI, "REDIS_URL", "http://x:6379", "scheme \"http\""},
		{config.RoleAPI, "BACKFILL_SECRET_KEY", "short", "32 bytes"},
		{config.RoleAPI, "BACKFILL_API_TOKEN", "short", "at least 16 characters"},
		{config.RoleScheduler, "BACKFILL_CATCHUP_CRON", "every day", "not a cron expression"},
		{config.RoleAPI, "SALESFORCE_ENVIRONMENT", "staging", "production, sandbox or a My Domain URL"},
		{config.RoleAPI, "SKILLJAR_RATE_LIMIT", "600 per minute", "SKILLJAR_RATE_LIMIT"},
		{config.RoleWorker, "SKILLJAR_RATE_WINDOW", "leaky", "sliding or fixed"},
		{config.RoleWorker, "SKILLJAR_RATE_MARGIN", "half a second", "a duration such as 500ms"},
		{config.RoleWorker, "SKILLJAR_RATE_MARGIN", "-1s", "a duration such as 500ms"},
		{config.RoleWorker, "SKILLJAR_RATE_MARGIN", "1m", "not shorter than the period of the limit 600/1m0s"},
		{config.RoleWorker, "BACKFILL_SLICE_SECONDS", "0", "positive whole number"},
		{config.RoleWorker, "BACKFILL_RUN_LEASE_SECONDS", "-1", "positive whole number"},
		{config.RoleAPI, "LOG_LEVEL", "loud", "debug, info, warn or error"},
	} {
		_, err := config.Load(tc.role, env(map[string]string{tc.name: tc.value}))
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Var != tc.name || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: got %v; want an error on %s saying %q", tc.name, tc.value, err, tc.name, tc.want)
		}
	}
}

func TestARedisURLWithAPasswordIsNeverEchoed(t *testing.T) {
	t.Parallel()
	_, err := config.Load(config.RoleAPI, env(map[string]string{"REDIS_URL": "redis://:hunter2@/0"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("got %v; want an error without the password", err)
	}
}

func TestTheREADMEDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range config.Vars {
		if !strings.Contains(string(readme), "`"+v.Name+"`") {
			t.Errorf("README does not document %s", v.Name)
		}
	}
}

func TestLoadReportsEveryProblemAtOnceEachNamingItsVariable(t *testing.T) {
	t.Parallel()
	_, err := config.Load(config.RoleAPI, func(k string) string {
		return map[string]string{"LOG_LEVEL": "loud", "BACKFILL_SLICE_SECONDS": "soon",
			"BACKFILL_WEBHOOK_SHARE": "2", "BACKFILL_WEBHOOK_MAX_BYTES": "big"}[k]
	})
	var all config.Errors
	if !errors.As(err, &all) {
		t.Fatalf("got %v (%T); want config.Errors", err, err)
	}
	want := []string{"REDIS_URL", "SKILLJAR_API_KEY", "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET",
		"SALESFORCE_REDIRECT_URL", "BACKFILL_API_TOKEN", "BACKFILL_SECRET_KEY", "BACKFILL_SLICE_SECONDS", "BACKFILL_WEBHOOK_SHARE", "BACKFILL_WEBHOOK_MAX_BYTES", "LOG_LEVEL"}
	var got []string
	for _, e := range all {
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a *config.Error", e)
		}
		got = append(got, ce.Var)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("problems on %v, want %v", got, want)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "11 configuration problems:\n") || strings.Count(msg, "\n  ") != 11 ||
		!strings.Contains(msg, "openssl rand -hex 32") {
		t.Fatalf("message does not list every problem with its fix, one a line:\n%s", msg)
	}
}
