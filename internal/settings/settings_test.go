package settings_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

type bundle struct {
	ctx   context.Context
	rdb   *redis.Client
	sj    *skilljarsim.Sim
	store *settings.Store
}

// setup gives a private Redis and a store that checks domains against a simulated Skilljar
// over HTTP.
func setup(t *testing.T) *bundle {
	t.Helper()
	sj, err := skilljarsim.Start(skilljarsim.Config{Seed: 3, Users: 10}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sj.Close() })
	src, err := skilljar.New(skilljar.Config{BaseURL: sj.URL(), APIKey: sj.APIKey(), MaxRetries: 1,
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.Start(t).Client(t)
	fixed := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	return &bundle{
		ctx: context.Background(), rdb: rdb, sj: sj,
		store: settings.New(rdb, settings.Config{Domains: src, Now: func() time.Time { return fixed }}),
	}
}

func TestGetReturnsDefaultsWhenNothingWasSaved(t *testing.T) {
	t.Parallel()
	b := setup(t)
	got, err := b.store.Get(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(settings.Defaults(), got) {
		t.Fatalf("unsaved settings: got %+v, want %+v", got, settings.Defaults())
	}
	if got.ContactMatch != "created" || got.SinkMode != "auto" || got.UpdatedAt != nil {
		t.Fatalf("defaults %+v", got)
	}
}

func TestPutNormalizesSavesAndGetReadsItBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	d0, d1 := b.sj.Org().Domains[0].Name, b.sj.Org().Domains[1].Name
	saved, err := b.store.Put(b.ctx, settings.Settings{
		Domains: []string{d1, d0, d1}, Objects: []string{"student", "course"},
		Environment: "Sandbox", LinkContacts: true, CreateContacts: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	want := settings.Settings{
		Domains: []string{d0, d1}, Objects: []string{"course", "student"}, Environment: "sandbox",
		LinkContacts: true, CreateContacts: true, ContactMatch: "created", SinkMode: "auto", UpdatedAt: &at,
	}
	if !reflect.DeepEqual(want, saved) {
		t.Fatalf("saved: got %+v, want %+v", saved, want)
	}
	got, err := b.store.Get(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("read back: got %+v, want %+v", got, want)
	}
}

func TestPutAcceptsAMyDomainURLAsTheEnvironment(t *testing.T) {
	t.Parallel()
	b := setup(t)
	saved, err := b.store.Put(b.ctx, settings.Settings{Environment: "https://acme.my.salesforce.com/"})
	if err != nil {
		t.Fatal(err)
	}
	if saved.Environment != "https://acme.my.salesforce.com" {
		t.Fatalf("environment saved as %q", saved.Environment)
	}
}

func TestInvalidSettingsNameEveryProblemAndSaveNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.Put(b.ctx, settings.Settings{
		Domains:      []string{b.sj.Org().Domains[0].Name, "nowhere.example.com", "elsewhere.example.com"},
		Objects:      []string{"student", "lesson"},
		Environment:  "staging",
		LinkContacts: false, CreateContacts: true,
		ContactMatch: "oldest",
		SinkMode:     "fax",
	})
	var ve *settings.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Put: %v, want a *ValidationError", err)
	}
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	want := []string{"domains", "objects", "environment", "create_contacts", "contact_match", "sink_mode"}
	if !reflect.DeepEqual(want, fields) {
		t.Fatalf("problem fields: got %+v, want %+v\n%v", fields, want, ve)
	}
	for _, p := range ve.Problems {
		switch p.Field {
		case "domains":
			// Both unknown names, and the names to choose from instead.
			for _, s := range []string{`"elsewhere.example.com", "nowhere.example.com"`, b.sj.Org().Domains[2].Name} {
				if !strings.Contains(p.Message, s) {
					t.Errorf("domains message %q does not mention %s", p.Message, s)
				}
			}
		case "objects":
			if !strings.Contains(p.Message, `"lesson"`) || !strings.Contains(p.Message, "course_progress") {
				t.Errorf("objects message %q", p.Message)
			}
		}
	}
	if n, err := b.rdb.Exists(b.ctx, "bf:settings").Result(); err != nil || n != 0 {
		t.Fatalf("invalid settings were saved: exists=%d err=%v", n, err)
	}
}

func TestInvalidSettingsLeaveTheSavedOnesInPlace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good, err := b.store.Put(b.ctx, settings.Settings{LinkContacts: true, ContactMatch: "modified"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Put(b.ctx, settings.Settings{SinkMode: "fax"}); err == nil {
		t.Fatal("an invalid sink mode was accepted")
	}
	got, err := b.store.Get(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(good, got) {
		t.Fatalf("settings after a refused save: got %+v, want %+v", got, good)
	}
}

func TestSkilljarOutageIsAnErrorNotAVerdictOnTheDomains(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sj.InjectFault(skilljarsim.Fault{PathPrefix: "/v1/domains", Kind: skilljarsim.Fault5xx, Times: 10})
	_, err := b.store.Put(b.ctx, settings.Settings{Domains: []string{b.sj.Org().Domains[0].Name}})
	var ve *settings.ValidationError
	if err == nil || errors.As(err, &ve) {
		t.Fatalf("Put during a Skilljar outage: %v, want a plain error", err)
	}
	if n, _ := b.rdb.Exists(b.ctx, "bf:settings").Result(); n != 0 {
		t.Fatal("settings were saved although the domains could not be checked")
	}
}
