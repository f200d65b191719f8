// Package config reads the backfill's settings from the environment, validates them for
// the role being started, and documents every variable for `backfill help`.
package config

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/sjbackfill/backfill/internal/ratelimit"
)

// Roles a process can run.
const (
	RoleAPI       = "api"
	RoleWorker    = "worker"
	RoleScheduler = "scheduler"
)

// Var documents one environment variable.
type Var struct {
	Name    string
	Roles   []string // roles that read it; nil = all
	Default string
	Doc     string
	// Required is the roles for which it must be set.
	Required []string
}

var all = []string{RoleAPI, RoleWorker, RoleScheduler}

// Vars lists every variable, in the order `backfill help` and the README show them.
var Vars = []Var{
	{Name: "REDIS_URL", Required: all, Doc: "Redis for queues, runs and checkpoints: redis://[:password@]host:6379/0, rediss:// for TLS, or redis-sentinel://host1:26379,host2:26379,host3:26379?master=mymaster (database 0; the password in this form is the sentinels'). Use appendonly yes and maxmemory-policy noeviction."},
	{Name: "SKILLJAR_API_KEY", Roles: []string{RoleAPI, RoleWorker}, Required: []string{RoleAPI, RoleWorker}, Doc: "Skilljar API key (Organization settings → API Credentials); a read-only key is enough."},
	{Name: "SKILLJAR_BASE_URL", Roles: []string{RoleAPI, RoleWorker}, Default: "https://api.skilljar.com", Doc: "Skilljar API root, without /v1."},
	{Name: "SKILLJAR_RATE_LIMIT", Roles: []string{RoleAPI, RoleWorker}, Default: "600/1m,5000/1h", Doc: "Skilljar call budget shared by every process, as count/period pairs. Skilljar publishes no limit; 600/min and 5,000/hour come from a third-party connector."},
	{Name: "SKILLJAR_RATE_WINDOW", Roles: []string{RoleAPI, RoleWorker}, Default: "sliding", Doc: "How Skilljar counts calls against each limit: sliding (any span of the period, as Django REST framework's throttle does) or fixed (periods starting at whole multiples since the Unix epoch). Skilljar documents neither; sliding is safe against both, fixed spends a fresh allowance the moment a period starts."},
	{Name: "SKILLJAR_RATE_MARGIN", Roles: []string{RoleAPI, RoleWorker}, Default: "auto", Doc: "How far a call's arrival at Skilljar may lie from the moment the shared limiter granted it: clock skew between Redis and Skilljar plus the spread of request latency, as a duration such as 500ms. Each window is widened (sliding) or guarded at its edges (fixed) by this much; shorter than the shortest limit period. auto is 500ms, or 2% of the shortest period when that is less."},
	{Name: "SALESFORCE_CLIENT_ID", Roles: []string{RoleAPI, RoleWorker}, Required: []string{RoleAPI, RoleWorker}, Doc: "Consumer key of the connected app or External Client App."},
	{Name: "SALESFORCE_CLIENT_SECRET", Roles: []string{RoleAPI, RoleWorker}, Required: []string{RoleAPI, RoleWorker}, Doc: "Consumer secret of the connected app or External Client App."},
	{Name: "SALESFORCE_ENVIRONMENT", Roles: []string{RoleAPI, RoleWorker}, Default: "production", Doc: "Login host: production (login.salesforce.com), sandbox (test.salesforce.com) or a My Domain URL such as https://acme.my.salesforce.com."},
	{Name: "SALESFORCE_LOGIN_ORIGINS", Roles: []string{RoleAPI, RoleWorker}, Doc: "Login origins an environment may name besides Salesforce's own (login.salesforce.com, test.salesforce.com, <name>.my.salesforce.com and <name>.sandbox.my.salesforce.com, over https), comma-separated, such as http://127.0.0.1:8082 for the simulator or another My Domain form. The next connect sends the client secret there."},
	{Name: "SALESFORCE_REDIRECT_URL", Roles: []string{RoleAPI}, Required: []string{RoleAPI}, Doc: "OAuth callback registered on the External Client App or connected app: https://<this host>/salesforce/callback."},
	{Name: "SALESFORCE_API_VERSION", Roles: []string{RoleAPI, RoleWorker}, Default: "62.0", Doc: "Salesforce REST API version (46.0 or later)."},
	{Name: "SALESFORCE_IDLE_REFRESH", Roles: []string{RoleAPI, RoleWorker}, Default: "168h", Doc: "How long the Salesforce grant may go unused before a worker refreshes it, so its refresh token never sits idle until it expires; a duration such as 168h, shorter than SALESFORCE_IDLE_LIMIT."},
	{Name: "SALESFORCE_IDLE_LIMIT", Roles: []string{RoleAPI, RoleWorker}, Default: "720h", Doc: "How long an unused refresh token lives: Salesforce expires those of partner apps after 30 days unused from May 2026, and an org's own policy may be shorter. The page shows the date the grant would lapse from it."},
	{Name: "BACKFILL_API_TOKEN", Roles: []string{RoleAPI}, Required: []string{RoleAPI}, Doc: "Bearer token for /v1/*, and the password (any user name) for the page and /monitoring. At least 16 characters."},
	{Name: "BACKFILL_SECRET_KEY", Roles: []string{RoleAPI, RoleWorker}, Required: []string{RoleAPI, RoleWorker}, Doc: "32-byte key, hex or base64, that encrypts the stored Salesforce tokens (AES-256-GCM). Generate one with: openssl rand -hex 32."},
	{Name: "BACKFILL_HTTP_ADDR", Roles: []string{RoleAPI}, Default: ":8080", Doc: "Address the API and page listen on."},
	{Name: "BACKFILL_CATCHUP_CRON", Roles: []string{RoleScheduler}, Default: "0 */6 * * *", Doc: "When catch-up runs start: a 5-field cron expression (UTC) or a descriptor such as @every 6h; \"off\" disables them."},
	{Name: "BACKFILL_MAPPING_FILE", Roles: []string{RoleAPI, RoleWorker}, Doc: "Field mapping file replacing the embedded default for the Skilljar managed package."},
	{Name: "BACKFILL_WORKER_CONCURRENCY", Roles: []string{RoleWorker}, Default: "4", Doc: "Slices one worker process runs at once."},
	{Name: "BACKFILL_SLICE_SECONDS", Roles: []string{RoleWorker}, Default: "60", Doc: "How long a slice works before it checkpoints and hands over."},
	{Name: "BACKFILL_RUN_LEASE_SECONDS", Roles: []string{RoleWorker}, Default: "15", Doc: "How long a slice holds its run without renewing the lease (it renews five times as often); when a worker dies, another takes the run over this long after the last renewal, plus up to two seconds."},
	{Name: "BACKFILL_METRICS_ADDR", Roles: []string{RoleWorker}, Doc: "Address a worker serves its own /metrics on (its Skilljar and Salesforce calls and rate-limit waits); empty serves none. The api serves the queues and runs at /metrics."},
	{Name: "BACKFILL_MONITORING_READONLY", Roles: []string{RoleAPI}, Default: "false", Doc: "true makes the asynq UI at /monitoring read-only."},
	{Name: "PROMETHEUS_URL", Roles: []string{RoleAPI}, Doc: "Prometheus server the asynq UI reads time series from."},
	{Name: "LOG_LEVEL", Default: "info", Doc: "debug, info, warn or error."},
}

// Config is the validated configuration of one process.
type Config struct {
	Role                   string
	RedisURL               string
	SkilljarAPIKey         string
	SkilljarBaseURL        string
	SkilljarRateLimit      []ratelimit.Limit
	SkilljarRateWindow     ratelimit.Window
	SkilljarRateMargin     time.Duration
	SalesforceClientID     string
	SalesforceClientSecret string
	// SalesforceLoginURL is the login host derived from SALESFORCE_ENVIRONMENT.
	SalesforceLoginURL    string
	SalesforceEnvironment string
	SalesforceRedirectURL string
	SalesforceAPIVersion  string
	// SalesforceIdleRefresh and SalesforceIdleLimit: SALESFORCE_IDLE_REFRESH and
	// SALESFORCE_IDLE_LIMIT.
	SalesforceIdleRefresh time.Duration
	SalesforceIdleLimit   time.Duration
	APIToken              string
	SecretKey             []byte
	HTTPAddr              string
	CatchupCron           string
	MappingFile           string
	WorkerConcurrency     int
	MetricsAddr           string
	SliceDuration         time.Duration
	RunLease              time.Duration
	MonitoringReadOnly    bool
	PrometheusURL         string
	LogLevel              string

	// SalesforceLoginOrigins are the origins SALESFORCE_LOGIN_ORIGINS allows besides
	// Salesforce's own login hosts.
	SalesforceLoginOrigins []string
	Webhook                Webhook
}

// Error names the variable at fault and what it expects, in one line.
type Error struct {
	Var    string
	Expect string
}

func (e *Error) Error() string { return e.Var + ": " + e.Expect }

// Errors is every problem Load found, each an *Error naming its variable, so an operator
// fixes them all in one go rather than one per restart.
type Errors []error

func (es Errors) Error() string {
	if len(es) == 1 {
		return es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d configuration problems:", len(es))
	for _, e := range es {
		b.WriteString("\n  " + e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	return es
}

// Load reads the variables role uses through getenv and validates them. The error, when
// there is one, is Errors: every variable at fault, not only the first.
func Load(role string, getenv func(string) string) (Config, error) {
	get := func(name string) string {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			for _, d := range Vars {
				if d.Name == name {
					return d.Default
				}
			}
		}
		return v
	}
	var errs Errors
	// check records a failed validation; a nil error is fine.
	check := func(err error) bool {
		if err == nil {
			return true
		}
		errs = append(errs, err)
		return false
	}
	for _, v := range Vars {
		if slices.Contains(v.Required, role) && strings.TrimSpace(getenv(v.Name)) == "" {
			errs = append(errs, &Error{v.Name, "is required for the " + role + " role; " + v.Doc})
		}
	}
	c := Config{
		Role: role, RedisURL: get("REDIS_URL"), SkilljarAPIKey: get("SKILLJAR_API_KEY"),
		SkilljarBaseURL:    strings.TrimRight(get("SKILLJAR_BASE_URL"), "/"),
		SalesforceClientID: get("SALESFORCE_CLIENT_ID"), SalesforceClientSecret: get("SALESFORCE_CLIENT_SECRET"),
		SalesforceEnvironment: get("SALESFORCE_ENVIRONMENT"), SalesforceRedirectURL: get("SALESFORCE_REDIRECT_URL"),
		SalesforceAPIVersion: get("SALESFORCE_API_VERSION"), APIToken: get("BACKFILL_API_TOKEN"),
		HTTPAddr: get("BACKFILL_HTTP_ADDR"), CatchupCron: get("BACKFILL_CATCHUP_CRON"),
		MappingFile: get("BACKFILL_MAPPING_FILE"), PrometheusURL: get("PROMETHEUS_URL"), LogLevel: get("LOG_LEVEL"),
		MetricsAddr: get("BACKFILL_METRICS_ADDR"),
	}
	var err error
	if c.RedisURL != "" {
		check(checkRedisURL(c.RedisURL))
	}
	if c.SkilljarBaseURL != "" {
		check(checkHTTPURL("SKILLJAR_BASE_URL", c.SkilljarBaseURL))
	}
	if c.SkilljarRateLimit, err = ratelimit.ParseLimits(get("SKILLJAR_RATE_LIMIT")); err != nil {
		check(&Error{"SKILLJAR_RATE_LIMIT", err.Error()})
	} else {
		// The margin is checked against the limits' periods: only once they parsed.
		c.SkilljarRateMargin, err = rateMargin(get("SKILLJAR_RATE_MARGIN"), c.SkilljarRateLimit)
		check(err)
	}
	if c.SkilljarRateWindow, err = ratelimit.ParseWindow(get("SKILLJAR_RATE_WINDOW")); err != nil {
		check(&Error{"SKILLJAR_RATE_WINDOW", fmt.Sprintf("%q is not sliding or fixed", get("SKILLJAR_RATE_WINDOW"))})
	}
	if c.SalesforceLoginOrigins, err = ParseLoginOrigins(get("SALESFORCE_LOGIN_ORIGINS")); check(err) {
		// An environment may name a listed origin: only judged once the list parsed.
		c.SalesforceLoginURL, err = LoginURL(c.SalesforceEnvironment, c.SalesforceLoginOrigins)
		check(err)
	}
	if c.SalesforceRedirectURL != "" {
		check(checkHTTPURL("SALESFORCE_REDIRECT_URL", c.SalesforceRedirectURL))
	}
	if v, err := strconv.ParseFloat(c.SalesforceAPIVersion, 64); err != nil || v < 46 || !strings.Contains(c.SalesforceAPIVersion, ".") {
		check(&Error{"SALESFORCE_API_VERSION", fmt.Sprintf("%q is not a REST API version of 46.0 or later, such as 62.0", c.SalesforceAPIVersion)})
	}
	if c.APIToken != "" && len(c.APIToken) < 16 {
		check(&Error{"BACKFILL_API_TOKEN", "must be at least 16 characters; generate one with: openssl rand -hex 24"})
	}
	if raw := getenv("BACKFILL_SECRET_KEY"); strings.TrimSpace(raw) != "" {
		c.SecretKey, err = ParseSecretKey(raw)
		check(err)
	}
	if c.CatchupCron != "off" {
		if _, err := ParseSchedule(c.CatchupCron); err != nil {
			check(&Error{"BACKFILL_CATCHUP_CRON", fmt.Sprintf("%q is not a cron expression (%v); use 5 fields such as \"0 */6 * * *\", a descriptor such as @every 6h, or off", c.CatchupCron, err)})
		}
	}
	c.WorkerConcurrency, err = positiveInt("BACKFILL_WORKER_CONCURRENCY", get("BACKFILL_WORKER_CONCURRENCY"))
	check(err)
	if secs, err := positiveInt("BACKFILL_SLICE_SECONDS", get("BACKFILL_SLICE_SECONDS")); check(err) {
		c.SliceDuration = time.Duration(secs) * time.Second
	}
	refresh, errRefresh := positiveDuration("SALESFORCE_IDLE_REFRESH", get("SALESFORCE_IDLE_REFRESH"))
	limit, errLimit := positiveDuration("SALESFORCE_IDLE_LIMIT", get("SALESFORCE_IDLE_LIMIT"))
	c.SalesforceIdleRefresh, c.SalesforceIdleLimit = refresh, limit
	refreshOK, limitOK := check(errRefresh), check(errLimit)
	if refreshOK && limitOK && refresh >= limit {
		check(&Error{"SALESFORCE_IDLE_REFRESH", fmt.Sprintf("%s must be shorter than SALESFORCE_IDLE_LIMIT (%s), or the grant lapses before it is refreshed", refresh, limit)})
	}
	if secs, err := positiveInt("BACKFILL_RUN_LEASE_SECONDS", get("BACKFILL_RUN_LEASE_SECONDS")); check(err) {
		c.RunLease = time.Duration(secs) * time.Second
	}
	if c.MonitoringReadOnly, err = strconv.ParseBool(get("BACKFILL_MONITORING_READONLY")); err != nil {
		check(&Error{"BACKFILL_MONITORING_READONLY", "must be true or false"})
	}
	if c.PrometheusURL != "" {
		check(checkHTTPURL("PROMETHEUS_URL", c.PrometheusURL))
	}
	c.Webhook = loadWebhook(get, check)
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		check(&Error{"LOG_LEVEL", fmt.Sprintf("%q is not a level; use debug, info, warn or error", c.LogLevel)})
	}
	if len(errs) > 0 {
		return c, errs
	}
	return c, nil
}

// ParseSchedule reads BACKFILL_CATCHUP_CRON: five fields (an optional leading sixth for
// seconds) or a descriptor such as @every 6h.
func ParseSchedule(spec string) (cron.Schedule, error) {
	p := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	return p.Parse(spec)
}

// LoginURL maps an environment (SALESFORCE_ENVIRONMENT, or the settings page's choice) to
// the OAuth login host: production, sandbox, a My Domain URL over https
// (<name>.my.salesforce.com or <name>.sandbox.my.salesforce.com), or one of the extra
// origins. Nothing else: the next connect sends the client secret to that host.
func LoginURL(env string, extra []string) (string, error) {
	switch strings.ToLower(env) {
	case "", "production":
		return "https://login.salesforce.com", nil
	case "sandbox":
		return "https://test.salesforce.com", nil
	}
	origin := strings.TrimRight(env, "/")
	if slices.Contains(extra, origin) || salesforceLoginOrigin(origin) {
		return origin, nil
	}
	return "", &Error{"SALESFORCE_ENVIRONMENT", fmt.Sprintf("%q is not production, sandbox or a My Domain URL such as https://acme.my.salesforce.com; other login origins must be listed in SALESFORCE_LOGIN_ORIGINS", env)}
}

// salesforceLoginOrigin reports an https origin, without port, path or credentials, on one
// of Salesforce's login hosts.
func salesforceLoginOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if host == "login.salesforce.com" || host == "test.salesforce.com" {
		return true
	}
	name, ok := strings.CutSuffix(host, ".my.salesforce.com")
	if !ok {
		return false
	}
	name = strings.TrimSuffix(name, ".sandbox")
	return dnsLabel(name)
}

// dnsLabel reports one DNS label: letters, digits and inner hyphens (My Domain names of
// sandboxes hold "--").
func dnsLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// ParseLoginOrigins reads SALESFORCE_LOGIN_ORIGINS: comma-separated http(s) origins.
func ParseLoginOrigins(raw string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(raw, ",") {
		o := strings.TrimRight(strings.TrimSpace(part), "/")
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" {
			return nil, &Error{"SALESFORCE_LOGIN_ORIGINS", fmt.Sprintf("%q is not an http(s) origin such as http://127.0.0.1:8082", o)}
		}
		out = append(out, o)
	}
	return out, nil
}

// ParseSecretKey decodes a 32-byte key given as hex or base64.
func ParseSecretKey(raw string) ([]byte, error) {
	raw = strings.TrimSpace(raw)
	if b, err := hex.DecodeString(raw); err == nil && len(b) == 32 {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(raw); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, &Error{"BACKFILL_SECRET_KEY", "must be 32 bytes as 64 hex characters or base64; generate one with: openssl rand -hex 32"}
}

func checkRedisURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// The value may hold a password: do not echo it.
		return &Error{"REDIS_URL", "is not a URL; use the form redis://[:password@]host:6379/0"}
	}
	if u.Host == "" {
		return &Error{"REDIS_URL", fmt.Sprintf("%q has no host; use the form redis://[:password@]host:6379/0", redact(raw))}
	}
	switch u.Scheme {
	case "redis", "rediss", "redis-sentinel", "unix":
		return nil
	}
	return &Error{"REDIS_URL", fmt.Sprintf("scheme %q is not redis, rediss or redis-sentinel", u.Scheme)}
}

func checkHTTPURL(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &Error{name, fmt.Sprintf("%q is not an http(s) URL", raw)}
	}
	return nil
}

// rateMargin reads SKILLJAR_RATE_MARGIN: a margin as long as a limit's period would leave
// that limit no time to grant anything.
func rateMargin(raw string, limits []ratelimit.Limit) (time.Duration, error) {
	if raw == "auto" {
		return ratelimit.DefaultMargin(limits), nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		return 0, &Error{"SKILLJAR_RATE_MARGIN", fmt.Sprintf("%q is not auto or a duration such as 500ms", raw)}
	}
	for _, l := range limits {
		if d >= l.Period {
			return 0, &Error{"SKILLJAR_RATE_MARGIN", fmt.Sprintf("%s is not shorter than the period of the limit %s", d, l)}
		}
	}
	return d, nil
}

func positiveInt(name, raw string) (int, error) {
	n, err := strconv.Atoi(raw)
	if err != nil || n <= 0 {
		return 0, &Error{name, fmt.Sprintf("%q is not a positive whole number", raw)}
	}
	return n, nil
}

// redact hides a password in a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Help renders the variable table for `backfill help`: every variable, or those the named
// roles read.
func Help(roles ...string) string {
	var b strings.Builder
	for _, v := range Vars {
		if len(roles) > 0 && v.Roles != nil && !slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(v.Roles, r) }) {
			continue
		}
		roles := "all roles"
		if v.Roles != nil {
			roles = strings.Join(v.Roles, ", ")
		}
		req := ""
		if len(v.Required) > 0 {
			req = "required for " + strings.Join(v.Required, ", ")
		} else if v.Default != "" {
			req = "default " + v.Default
		} else {
			req = "optional"
		}
		fmt.Fprintf(&b, "  %-30s %s (%s)\n      %s\n", v.Name, req, roles, v.Doc)
	}
	return b.String()
}

func positiveDuration(name, raw string) (time.Duration, error) {
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 {
		return 0, &Error{name, fmt.Sprintf("%q is not a positive duration such as 168h", raw)}
	}
	return d, nil
}
