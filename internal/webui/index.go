package webui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/doctor"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
)

// domainsTimeout bounds asking Skilljar for its domains while rendering. The call waits for
// the shared rate limit, which a busy backfill can hold; the page then lists only the saved
// domains rather than hang.
const domainsTimeout = 5 * time.Second

// Choices of the environment radio group that are not a settings value themselves.
const envMyDomain = "mydomain"

// indexView is the main page.
type indexView struct {
	Layout   layout
	Status   statusView
	Webhooks *webhooksView
	Form     settingsForm
	Saved    settings.Settings
	Notice   string
	Alert    *pageError
	Runs     runsTable
	// IdempotencyKey makes a double-clicked or resubmitted Backfill start one run.
	IdempotencyKey string
	// CanTest shows the Test connections button; Doctor is its result, once pressed.
	CanTest bool
	Doctor  *doctor.Report
}

// statusView is the "Authentication status" block.
type statusView struct {
	Configured bool
	Err        string
	connection.Status
	// LapsesAt is when the grant expires if nothing uses it meanwhile.
	LapsesAt *time.Time
}

// settingsForm is the settings form as shown: saved values, or submitted ones with the
// problems found in them.
type settingsForm struct {
	Domains []choice
	// DomainsNote says why Skilljar's domains could not be listed.
	DomainsNote    string
	Environment    string // "", "production", "sandbox" or envMyDomain
	MyDomainURL    string
	LinkContacts   bool
	CreateContacts bool
	ContactMatch   string
	Objects        []choice
	SinkMode       string
	SinkModes      []string
	// Problems maps a settings field to what is wrong with it.
	Problems map[string]string
}

// choice is one checkbox.
type choice struct {
	Value, Label string
	Checked      bool
	// Unknown marks a saved value Skilljar no longer lists, so it can be unchecked.
	Unknown bool
}

// runsTable is the live runs table.
type runsTable struct {
	Runs []*runstore.Run
	Err  string
}

// indexState is what a request adds to the main page: a submitted form with its problems,
// or a failure to show.
type indexState struct {
	status    int
	submitted *settings.Settings
	envChoice string
	problems  []settings.FieldError
	alert     error
	doctor    *doctor.Report
}

func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	h.renderIndex(w, r, indexState{status: http.StatusOK})
}

// notices are the banners a redirect back to the page may ask for; the text is ours, never
// the query's.
var notices = map[string]string{
	"saved":     "Settings saved.",
	"connected": "Salesforce connected.",
	"started":   "Backfill started: follow it in the runs table below.",
}

// renderAlert shows the index page with pe as its alert and status. Callers classify the
// error once and pass the result, so an internal error is logged once.
func (h *Handler) renderAlert(w http.ResponseWriter, r *http.Request, pe *pageError) {
	h.renderIndex(w, r, indexState{status: pe.Status, alert: pe})
}

func (h *Handler) renderIndex(w http.ResponseWriter, r *http.Request, s indexState) {
	ctx := r.Context()
	v := indexView{Layout: h.layout("Skilljar → Salesforce backfill"), IdempotencyKey: newKey()}
	if r.Method == http.MethodGet {
		for key, text := range notices {
			if r.URL.Query().Get(key) == "1" {
				v.Notice = text
			}
		}
	}
	if s.alert != nil {
		v.Alert = h.classify(r, s.alert)
	}
	saved, err := h.d.Settings.Get(ctx)
	if err != nil && v.Alert == nil {
		v.Alert = h.classify(r, err)
	}
	v.Saved = saved
	shown, envChoice := saved, ""
	if s.submitted != nil {
		shown, envChoice = *s.submitted, s.envChoice
	}
	v.Form = h.settingsForm(ctx, shown, envChoice, s.problems)
	v.Status = h.status(ctx)
	v.Webhooks = h.webhooks(ctx)
	v.Runs = h.runsTable(ctx)
	v.CanTest, v.Doctor = h.d.Doctor != nil, s.doctor
	h.render(w, s.status, "index", v)
}

func (h *Handler) status(ctx context.Context) statusView {
	if h.d.Connection == nil {
		return statusView{}
	}
	st, err := h.d.Connection.Status(ctx)
	if err != nil {
		return statusView{Configured: true, Err: h.hidden(ctx, "settings page could not read the connection's status", err)}
	}
	return statusView{Configured: true, Status: st, LapsesAt: st.LapsesAt(h.cfg.IdleLimit)}
}

func (h *Handler) runsTable(ctx context.Context) runsTable {
	runs, err := h.d.Runs.List(ctx, h.cfg.RunsShown)
	if err != nil {
		return runsTable{Err: "The runs could not be read; " + h.hidden(ctx, "settings page could not list runs", err) + "."}
	}
	return runsTable{Runs: runs}
}

func (h *Handler) serveRunsTable(w http.ResponseWriter, r *http.Request) {
	h.render(w, http.StatusOK, "runs-table", h.runsTable(r.Context()))
}

// settingsForm builds the form for the settings st. envChoice, when set, is the radio the
// operator picked, which st cannot say when the My Domain URL was left empty.
func (h *Handler) settingsForm(ctx context.Context, st settings.Settings, envChoice string, problems []settings.FieldError) settingsForm {
	f := settingsForm{
		Environment: st.Environment, LinkContacts: st.LinkContacts, CreateContacts: st.CreateContacts,
		ContactMatch: st.ContactMatch, SinkMode: st.SinkMode, SinkModes: pipeline.SinkModes(),
		Problems: map[string]string{},
	}
	switch st.Environment {
	case "", "production", "sandbox":
	default:
		f.Environment, f.MyDomainURL = envMyDomain, st.Environment
	}
	if envChoice != "" {
		f.Environment = envChoice
	}
	for _, p := range problems {
		f.Problems[p.Field] = strings.TrimPrefix(f.Problems[p.Field]+"; "+p.Message, "; ")
	}

	var listed []string
	if h.d.Domains == nil {
		f.DomainsNote = "No Skilljar API key is configured, so only the saved domains are listed."
	} else {
		ctx, cancel := context.WithTimeout(ctx, domainsTimeout)
		defer cancel()
		domains, err := h.d.Domains.Domains(ctx)
		if err != nil {
			f.DomainsNote = "Skilljar's domains could not be listed (" + err.Error() + "); only the saved domains are shown."
		}
		for _, d := range domains {
			label := d.Name
			if d.CatalogTitle != "" {
				label += " — " + d.CatalogTitle
			}
			listed = append(listed, d.Name)
			f.Domains = append(f.Domains, choice{Value: d.Name, Label: label, Checked: slices.Contains(st.Domains, d.Name)})
		}
	}
	for _, name := range st.Domains {
		if !slices.Contains(listed, name) {
			f.Domains = append(f.Domains, choice{Value: name, Label: name, Checked: true, Unknown: h.d.Domains != nil && f.DomainsNote == ""})
		}
	}
	for _, o := range h.cfg.Objects {
		f.Objects = append(f.Objects, choice{Value: o, Label: o, Checked: slices.Contains(st.Objects, o)})
	}
	for _, o := range st.Objects {
		if !slices.Contains(h.cfg.Objects, o) {
			f.Objects = append(f.Objects, choice{Value: o, Label: o, Checked: true, Unknown: true})
		}
	}
	return f
}

// The forms on this page carry no CSRF token of their own: httpapi, which this handler is
// mounted behind, refuses state-changing requests that a browser sends from another origin
// (Sec-Fetch-Site and Origin checks) before they get here.

// saveSettings saves the settings form whole or not at all. With action=connect it then
// sends the browser on to authenticate with Salesforce.
func (h *Handler) saveSettings(w http.ResponseWriter, r *http.Request) {
	if err := h.parseForm(w, r); err != nil {
		h.renderAlert(w, r, h.classify(r, err))
		return
	}
	st, envChoice, problems := settingsFromForm(r.PostForm)
	var err error
	if len(problems) == 0 {
		_, err = h.d.Settings.Put(r.Context(), st)
	} else {
		// Nothing is saved, but the operator should see every problem at once.
		_, err = h.d.Settings.Validate(r.Context(), st)
	}
	var invalid *settings.ValidationError
	if errors.As(err, &invalid) {
		problems, err = append(problems, invalid.Problems...), nil
	}
	if err != nil || len(problems) > 0 {
		state := indexState{status: http.StatusBadRequest, submitted: &st, envChoice: envChoice, problems: problems}
		if err != nil {
			pe := h.classify(r, err) // once: an internal error is logged when it is classified
			state.status, state.alert = pe.Status, pe
		}
		h.renderIndex(w, r, state)
		return
	}
	if r.PostForm.Get("action") == "connect" {
		// 307 has the browser repeat the POST there: a connect starts only from a POST.
		http.Redirect(w, r, "/salesforce/connect", http.StatusTemporaryRedirect)
		return
	}
	http.Redirect(w, r, "/?saved=1", http.StatusSeeOther)
}

// settingsFromForm reads the settings form. It reports the problems only the form can have;
// the settings store checks everything else.
func settingsFromForm(f url.Values) (st settings.Settings, envChoice string, problems []settings.FieldError) {
	st = settings.Settings{
		Domains: f["domains"], Objects: f["objects"],
		LinkContacts: f.Get("link_contacts") != "", CreateContacts: f.Get("create_contacts") != "",
		ContactMatch: f.Get("contact_match"), SinkMode: f.Get("sink_mode"),
	}
	envChoice = f.Get("environment")
	st.Environment = envChoice
	if envChoice == envMyDomain {
		st.Environment = strings.TrimSpace(f.Get("my_domain_url"))
		if st.Environment == "" {
			problems = append(problems, settings.FieldError{Field: "environment",
				Message: "enter your My Domain URL, such as https://acme.my.salesforce.com, or choose Production or Sandbox"})
		}
	}
	return st, envChoice, problems
}

// idempotencyKeyPattern is what newKey makes.
var idempotencyKeyPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func newKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// startBackfill starts a run over everything the saved settings allow.
func (h *Handler) startBackfill(w http.ResponseWriter, r *http.Request) {
	if err := h.parseForm(w, r); err != nil {
		h.renderAlert(w, r, h.classify(r, err))
		return
	}
	key := r.PostForm.Get("idempotency_key")
	if key != "" && !idempotencyKeyPattern.MatchString(key) {
		err := &pageError{Status: http.StatusBadRequest, Message: "The Backfill form was altered (its idempotency key is malformed); reload the page and try again."}
		h.renderIndex(w, r, indexState{status: err.Status, alert: err})
		return
	}
	if key != "" {
		key = "page:" + key // never the same as a key an API client chose
	}
	st, err := h.d.Settings.Get(r.Context())
	if err == nil {
		_, _, err = h.d.Runs.Start(r.Context(), pipeline.StartRequest{
			Kind: runstore.KindBackfill, Scope: backfillScope(st, r.PostForm.Get("dry_run") != ""),
			Trigger: "page", IdempotencyKey: key,
		})
	}
	if err != nil {
		h.renderAlert(w, r, h.classify(r, err))
		return
	}
	http.Redirect(w, r, "/?started=1#runs", http.StatusSeeOther)
}

// backfillScope is what a Backfill click covers: everything the saved settings allow.
func backfillScope(st settings.Settings, dryRun bool) runstore.Scope {
	sc := st.Scope()
	sc.DryRun = dryRun
	return sc
}

// testConnections shows the doctor's report for the saved settings on the page.
func (h *Handler) testConnections(w http.ResponseWriter, r *http.Request) {
	if h.d.Doctor == nil {
		h.renderAlert(w, r, &pageError{Status: http.StatusServiceUnavailable, Message: "This server has no Skilljar or Salesforce client to test."})
		return
	}
	st, err := h.d.Settings.Get(r.Context())
	var rep *doctor.Report
	if err == nil {
		rep, err = h.d.Doctor.Check(r.Context(), st.Scope())
	}
	if err != nil {
		h.renderAlert(w, r, h.classify(r, err))
		return
	}
	h.renderIndex(w, r, indexState{status: http.StatusOK, doctor: rep})
}
