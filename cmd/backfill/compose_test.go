package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	composecli "github.com/compose-spec/compose-go/v2/cli"

	"github.com/sjbackfill/backfill/internal/config"
)

// No Docker engine runs on our machines, so the compose file is checked with compose-go, the
// loader `docker compose config` itself uses: schema, interpolation and references.
func TestComposeFileLoadsAndKeepsRedisDurableAndEveryRoleWired(t *testing.T) {
	t.Parallel()
	env := []string{}
	for _, v := range config.Vars {
		env = append(env, v.Name+"=x")
	}
	opts, err := composecli.NewProjectOptions([]string{"../../docker-compose.yml"}, composecli.WithEnv(env), composecli.WithName("backfill"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	redis, ok := p.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	cmd := strings.Join(redis.Command, " ")
	for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis command %q lacks %q", cmd, want)
		}
	}
	if redis.HealthCheck == nil {
		t.Error("redis has no healthcheck")
	}
	for _, role := range []string{"api", "worker", "scheduler"} {
		s, ok := p.Services[role]
		if !ok || !slices.Equal(s.Command, []string{role}) {
			t.Errorf("service %s runs %v, want the %s role", role, s.Command, role)
			continue
		}
		if s.Build == nil {
			t.Errorf("%s is not built from the Dockerfile", role)
		}
		for _, v := range config.Vars {
			if v.Roles != nil && !slices.Contains(v.Roles, role) {
				continue
			}
			if _, ok := s.Environment[v.Name]; !ok {
				t.Errorf("%s does not pass %s", role, v.Name)
			}
		}
		// Each role is probed the way a distroless image allows: by the binary itself.
		probe := []string{"CMD", "/usr/local/bin/backfill", "healthcheck"}
		if role != "api" {
			probe = append(probe, role)
		}
		if s.HealthCheck == nil || !slices.Equal(s.HealthCheck.Test, probe) {
			t.Errorf("%s's healthcheck is %v, want %v", role, s.HealthCheck, probe)
		}
	}
	w := p.Services["worker"]
	if w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas < 2 {
		t.Error("workers should run as several replicas")
	}
	if w.StopGracePeriod == nil || time.Duration(*w.StopGracePeriod) <= 60*time.Second {
		t.Error("the worker's stop_grace_period must exceed its 60s shutdown wait so a slice commits its batch")
	}
	if _, err := os.Stat("../../Dockerfile"); err != nil {
		t.Fatal(err)
	}
	ignore, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(ignore), "\n")
	for _, want := range []string{".git", ".env"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not keep %s out of the build context", want)
		}
	}
}
