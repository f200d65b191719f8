package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// simFlags are the simulators' settings; their names are a contract for scripts.
type simFlags struct {
	skilljarAddr, salesforceAddr string
	seed                         int64
	domains, users, courses      int
	latency                      time.Duration
	faultRate                    float64
	lockErrorRate                float64
	perMinute, perHour           int
	throttleWindow               string
	dailyLimit                   int
	sessionTTL                   time.Duration
	// orgProfiles and refreshIdle shape the Salesforce org as real ones are; userOrder and
	// membershipChurn shape Skilljar's lists.
	orgProfiles     string
	refreshIdle     time.Duration
	userOrder       string
	membershipChurn float64
}

// defaultSimFlags are the simulators' settings unless a command says otherwise: a small org
// paced like a real Skilljar key.
func defaultSimFlags() simFlags {
	return simFlags{
		skilljarAddr: "127.0.0.1:8081", salesforceAddr: "127.0.0.1:8082",
		seed: 1, domains: 3, users: 1000, courses: 20,
		perMinute: 600, perHour: 5000, throttleWindow: skilljarsim.ThrottleSliding,
		dailyLimit: 100000, sessionTTL: 2 * time.Hour, userOrder: skilljarsim.OrderCreated,
	}
}

// register defines the flags with d's values as their defaults, so each command's help
// shows the defaults it really uses.
func (f *simFlags) register(fs *pflag.FlagSet, d simFlags) {
	fs.StringVar(&f.skilljarAddr, "skilljar-addr", d.skilljarAddr, "listen address of the Skilljar simulator")
	fs.StringVar(&f.salesforceAddr, "salesforce-addr", d.salesforceAddr, "listen address of the Salesforce login host (the instance gets its own port)")
	fs.Int64Var(&f.seed, "seed", d.seed, "generator seed: the same seed and sizes give the same org")
	fs.IntVar(&f.domains, "domains", d.domains, "Skilljar domains")
	fs.IntVar(&f.users, "users", d.users, "Skilljar learners")
	fs.IntVar(&f.courses, "courses", d.courses, "Skilljar courses")
	fs.DurationVar(&f.latency, "latency", d.latency, "added latency per response, both simulators")
	fs.Float64Var(&f.faultRate, "fault-rate", d.faultRate, "probability of a 5xx per request, both simulators")
	// Salesforce fails a record with UNABLE_TO_LOCK_ROW when another transaction holds its
	// row (or its parent's) for over 10 s; it is transient and retried per record
	// (help.salesforce.com/apex/HTViewSolution?id=000229525).
	fs.Float64Var(&f.lockErrorRate, "lock-error-rate", d.lockErrorRate, "probability of UNABLE_TO_LOCK_ROW per written Salesforce record")
	fs.IntVar(&f.perMinute, "skilljar-per-minute", d.perMinute, "Skilljar per-minute limit per key (0 = none)")
	fs.IntVar(&f.perHour, "skilljar-per-hour", d.perHour, "Skilljar hourly limit per key (0 = none)")
	fs.StringVar(&f.throttleWindow, "throttle-window", d.throttleWindow, "how the Skilljar limits count: sliding (Django REST framework's throttle) or fixed (spans from whole multiples since the epoch)")
	fs.IntVar(&f.dailyLimit, "salesforce-daily-limit", d.dailyLimit, "Salesforce DailyApiRequests maximum")
	fs.DurationVar(&f.sessionTTL, "session-ttl", d.sessionTTL, "Salesforce access-token lifetime")
	fs.StringVar(&f.orgProfiles, "org-profile", d.orgProfiles, "Salesforce org profiles, comma-separated: "+strings.Join(salesforcesim.Profiles, ", "))
	fs.DurationVar(&f.refreshIdle, "refresh-idle", d.refreshIdle, "expire a Salesforce refresh token unused this long (0 = never; partner apps: 720h)")
	fs.StringVar(&f.userOrder, "user-order", d.userOrder, "order of Skilljar's user lists: created, newest_first or unstable")
	fs.Float64Var(&f.membershipChurn, "membership-churn", d.membershipChurn, "Skilljar members leaving and rejoining domains per second during the run")
}

func (f *simFlags) skilljar() skilljarsim.Config {
	return skilljarsim.Config{
		Seed: f.seed, Domains: f.domains, Users: f.users, Courses: f.courses,
		Latency: f.latency, FaultRate: f.faultRate, PerMinute: f.perMinute, PerHour: f.perHour,
		UserOrder:      f.userOrder,
		ThrottleWindow: f.throttleWindow,
	}
}

func (f *simFlags) salesforce() (salesforcesim.Config, error) {
	profiles, err := salesforcesim.ParseProfiles(f.orgProfiles)
	if err != nil {
		return salesforcesim.Config{}, fmt.Errorf("--org-profile: %w", err)
	}
	return salesforcesim.Config{
		DailyLimit: f.dailyLimit, SessionTTL: f.sessionTTL, Latency: f.latency,
		FaultRate: f.faultRate, LockRate: f.lockErrorRate, Seed: uint64(f.seed), Profiles: profiles, RefreshIdle: f.refreshIdle,
	}, nil
}

// sims is both simulators running.
type sims struct {
	sj        *skilljarsim.Sim
	sf        *salesforcesim.Sim
	stopChurn func()
}

func startSims(f *simFlags) (*sims, error) {
	sfCfg, err := f.salesforce()
	if err != nil {
		return nil, err
	}
	sj, err := skilljarsim.Start(f.skilljar(), f.skilljarAddr)
	if err != nil {
		return nil, fmt.Errorf("start the Skilljar simulator: %w", err)
	}
	sf, err := salesforcesim.Start(sfCfg, f.salesforceAddr)
	if err != nil {
		_ = sj.Close()
		return nil, fmt.Errorf("start the Salesforce simulator: %w", err)
	}
	if slices.Contains(sfCfg.Profiles, salesforcesim.ProfileDirty) {
		// A dirty org already holds two Students for a few learners, as an earlier import
		// into a non-unique external id leaves them.
		learners := sj.Org().Learners
		for _, l := range learners[:min(dirtyLearners, len(learners))] {
			sf.SeedDuplicates("skilljar__Student__c", l.ID, 2)
		}
	}
	return &sims{sj: sj, sf: sf, stopChurn: sj.StartChurn(f.membershipChurn)}, nil
}

// dirtyLearners is how many learners the dirty profile duplicates in Salesforce.
const dirtyLearners = 3

func (s *sims) Close() {
	s.stopChurn()
	_ = s.sj.Close()
	_ = s.sf.Close()
}

func simCommand() *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "both simulators standalone, printing what to export for the production roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return status(runSim(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f.register(cmd.Flags(), defaultSimFlags())
	return cmd
}

func runSim(ctx context.Context, f simFlags, stdout, stderr io.Writer) int {
	if f.lockErrorRate < 0 || f.lockErrorRate > 1 {
		fmt.Fprintf(stderr, "backfill sim: --lock-error-rate %v is not a probability between 0 and 1\n", f.lockErrorRate)
		return exitUsage
	}
	s, err := startSims(&f)
	if err != nil {
		fmt.Fprintf(stderr, "backfill sim: %v\n", err)
		return exitFailure
	}
	defer s.Close()
	fmt.Fprintf(stdout, `Skilljar simulator     %s   (%d domains, %d learners, %d courses)
  SKILLJAR_BASE_URL=%s
  SKILLJAR_API_KEY=%s
Salesforce simulator   login %s   instance %s
  SALESFORCE_ENVIRONMENT=%s
  SALESFORCE_LOGIN_ORIGINS=%s
  SALESFORCE_CLIENT_ID=%s
  SALESFORCE_CLIENT_SECRET=%s
Press Ctrl-C to stop.
`, s.sj.URL(), f.domains, f.users, f.courses, s.sj.URL(), s.sj.APIKey(),
		s.sf.LoginURL(), s.sf.InstanceURL(), s.sf.LoginURL(), s.sf.LoginURL(), s.sf.ClientID(), s.sf.ClientSecret())
	<-ctx.Done()
	return exitOK
}
