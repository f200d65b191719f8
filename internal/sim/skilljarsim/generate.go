package skilljarsim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The generated history spans these dates; live changes happen after it.
var (
	historyStart   = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	generatedUntil = time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC)
)

// Field limits that generated data probes right up to: Skilljar's name fields take 50
// characters (reference §3.2) and Salesforce text fields 255 (§6.1).
const (
	maxNameLen  = 50
	maxTitleLen = 255
)

// idSource hands out Skilljar-shaped ids: 13 lowercase alphanumerics. Each id is a bijective
// mix of a counter, so ids never collide and depend only on the seed and the order of
// creation.
type idSource struct {
	key uint64
	n   uint64
}

func (s *idSource) next() string {
	s.n++
	v := mix64(s.n ^ s.key)
	var b [13]byte
	for i := len(b) - 1; i >= 0; i-- { // 36^13 > 2^64, so 13 digits hold any uint64
		b[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[v%36]
		v /= 36
	}
	return string(b[:])
}

// mix64 is the SplitMix64 finaliser: a bijection on uint64 that scatters neighbours.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// name is a display name with the ASCII spelling used to build email addresses.
type name struct{ display, ascii string }

var (
	firstNames = []name{
		{"Ana", "ana"}, {"José", "jose"}, {"Zoë", "zoe"}, {"Łukasz", "lukasz"}, {"Søren", "soren"},
		{"Chloé", "chloe"}, {"Mohammed", "mohammed"}, {"Aiko", "aiko"}, {"Björn", "bjorn"},
		{"Núria", "nuria"}, {"Siobhán", "siobhan"}, {"Dmitri", "dmitri"}, {"Priya", "priya"},
		{"Ngozi", "ngozi"}, {"François", "francois"}, {"Mateo", "mateo"}, {"Émilie", "emilie"},
		{"Jürgen", "jurgen"}, {"Анна", "anna"}, {"伟", "wei"}, {"محمد", "mohamed"}, {"Kai", "kai"},
		{"Bob", "bob"}, {"Mary-Jane", "mary-jane"},
	}
	lastNames = []name{
		{"García", "garcia"}, {"O'Brien", "o'brien"}, {"Müller", "muller"}, {"Nguyễn", "nguyen"},
		{"Smith", "smith"}, {"Kowalski", "kowalski"}, {"Øvergård", "overgard"}, {"D'Angelo", "d'angelo"},
		{"Tanaka", "tanaka"}, {"van der Berg", "vanderberg"}, {"Іваненко", "ivanenko"}, {"Okafor", "okafor"},
		{"Fernández", "fernandez"}, {"Černý", "cerny"}, {"Johansson", "johansson"}, {"Lefèvre", "lefevre"},
		{"Schmidt-Weiß", "schmidt-weiss"}, {"王", "wang"}, {"Al-Sayed", "al-sayed"}, {"User", "user"},
	}
	emailDomains = []string{"example.com", "Example.org", "mail.example.net", "ACME.io", "corp.example.co.uk"}
	emailTags    = []string{"skilljar", "learn", "test", "q3"}
	companies    = []string{"Acme Corp", "Globex", "Initech", "Umbrella GmbH", "Société Générale", "株式会社サンプル", "O'Neil & Sons"}
	jobTitles    = []string{"Administrator", "Developer", "Solutions Architect", "Directeur commercial", "Analyst"}

	courseTopics = []string{
		"Getting Started with the Platform", "Administración avanzada", "Sicherheit & Compliance: Grundlagen",
		"データ分析入門", "Partner Sales Certification", "Développement d'intégrations", "Reporting & Dashboards",
		"Onboarding for Admins", "Zarządzanie użytkownikami", "Troubleshooting Workflows", "API Fundamentals",
		"Ürün Eğitimi — Temel",
	}
	courseLabels = []string{"onboarding", "admin", "partner", "certification", "développeur"}
	lessonNames  = []string{"Welcome", "Overview", "Hands-on lab", "Deep dive", "Knowledge check", "Résumé", "Next steps"}
	lessonTypes  = []string{"ASSET", "HTML", "WEB_PACKAGE", "QUIZ", "VILT", "MODULAR", "SECTION"}
)

// generator builds an org from one random stream; live changes reuse it to create learners
// and rows that look like generated ones.
type generator struct {
	r   *rand.Rand
	ids *idSource
	org *Org
}

func generate(cfg Config) (Org, idSource) {
	ids := idSource{key: mix64(uint64(cfg.Seed))}
	var org Org
	g := generator{r: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)), ids: &ids, org: &org}
	g.domains(cfg.Domains)
	g.courses(cfg.Courses)
	g.publish()
	org.idx = buildIndex(&org) // domain and catalogue lookups for what follows
	g.learners(cfg.Users)
	g.progress()
	org.idx = buildIndex(&org)
	return org, ids
}

func (g *generator) domains(n int) {
	titles := []string{"All Courses", "Partner Academy", "Internal Training"}
	access := []string{"PUBLIC", "PRIVATE_CODE", "PRIVATE"}
	for i := range n {
		d := Domain{ID: g.ids.next(), Access: access[i%len(access)]}
		switch i {
		case 0:
			d.Name = "learn.example.com"
		case 1:
			d.Name = "partners.example.com"
		case 2:
			d.Name = "internal.example.com"
		default:
			d.Name = fmt.Sprintf("academy-%d.example.com", i+1)
		}
		if i < len(titles) {
			d.CatalogTitle = titles[i]
		} else {
			d.CatalogTitle = fmt.Sprintf("Academy %d", i+1)
		}
		d.SignupFields = []SignupField{{ID: g.ids.next(), Label: "Company"}}
		if i%2 == 1 {
			d.SignupFields = append(d.SignupFields, SignupField{ID: g.ids.next(), Label: "Job Title"})
		}
		g.org.Domains = append(g.org.Domains, d)
	}
}

func (g *generator) courses(n int) {
	for i := range n {
		topic := courseTopics[i%len(courseTopics)]
		c := Course{
			ID:               g.ids.next(),
			Title:            topic,
			ShortDescription: "Learn the essentials: " + topic,
		}
		if i >= len(courseTopics) {
			c.Title += fmt.Sprintf(" %d", i/len(courseTopics)+1)
		}
		if i == 1 { // one title at exactly the 255-character limit
			c.Title = fitRunes(strings.Repeat(topic+" · ", maxTitleLen), maxTitleLen)
		}
		for _, l := range courseLabels {
			if g.r.IntN(4) == 0 {
				c.Labels = append(c.Labels, l)
			}
		}
		c.CreatedAt = g.stamp(historyStart, historyStart.AddDate(2, 0, 0))
		c.ModifiedAt = g.stamp(c.CreatedAt, generatedUntil)
		if g.r.IntN(10) < 3 {
			c.Credits = []string{"0.5", "1.0", "1.5", "2"}[g.r.IntN(4)]
			c.CreditUnitPlural = []string{"CPE credits", "CEUs"}[g.r.IntN(2)]
		}
		for order := range 3 + g.r.IntN(8) {
			c.Lessons = append(c.Lessons, Lesson{
				ID:          g.ids.next(),
				Title:       fmt.Sprintf("%d. %s", order+1, lessonNames[g.r.IntN(len(lessonNames))]),
				Type:        lessonTypes[g.r.IntN(len(lessonTypes))],
				Order:       order,
				Optional:    order > 0 && g.r.IntN(100) < 15,
				TimeSeconds: 60 * (1 + g.r.IntN(30)),
			})
		}
		g.org.Courses = append(g.org.Courses, c)
	}
}

// publish puts every course on one domain, some on a second, and the first course on all
// of them, so each domain has a catalogue and one course has a publication per domain.
func (g *generator) publish() {
	nd := len(g.org.Domains)
	slugs := map[string]bool{}
	for i, c := range g.org.Courses {
		doms := []int{i % nd}
		switch {
		case i == 0:
			doms = doms[:0]
			for d := range nd {
				doms = append(doms, d)
			}
		case nd > 1 && g.r.IntN(100) < 35:
			doms = append(doms, (i%nd+1+g.r.IntN(nd-1))%nd)
		}
		for _, d := range doms {
			domain := g.org.Domains[d].Name
			slug := slugify(c.Title)
			for n := 2; slugs[domain+"/"+slug]; n++ {
				slug = fmt.Sprintf("%s-%d", slugify(c.Title), n)
			}
			slugs[domain+"/"+slug] = true
			g.org.PublishedCourses = append(g.org.PublishedCourses, PublishedCourse{
				ID:                          g.ids.next(),
				CourseID:                    c.ID,
				Domain:                      domain,
				Slug:                        slug,
				CourseURL:                   "https://" + domain + "/" + slug,
				Hidden:                      g.r.IntN(10) == 0,
				RegistrationRequired:        g.r.IntN(5) != 0,
				AllowSelfServiceReenroll:    g.r.IntN(10) < 3,
				UniqueProgressPerEnrollment: len(g.org.PublishedCourses)%5 == 2, // a steady 20%
			})
		}
	}
}

// learners spreads sign-ups over the history with strictly increasing times, the key the
// cursor-paged /v1/users list orders by.
func (g *generator) learners(n int) {
	if n == 0 {
		return
	}
	step := generatedUntil.Sub(historyStart) / time.Duration(n)
	var prev time.Time
	for i := range n {
		from := historyStart.Add(time.Duration(i) * step)
		at := g.stamp(from, from.Add(step-1))
		if !at.After(prev) {
			at = prev.Add(time.Microsecond)
		}
		prev = at
		g.org.Learners = append(g.org.Learners, g.learner(at, g.pickDomains()...))
	}
}

// pickDomains chooses a learner's domains: mostly the first, about 15% in several.
func (g *generator) pickDomains() []string {
	ds := g.org.Domains
	primary := 0
	if len(ds) > 1 && g.r.IntN(10) >= 6 {
		primary = 1 + g.r.IntN(len(ds)-1)
	}
	out := []string{ds[primary].Name}
	if len(ds) > 1 && g.r.IntN(100) < 15 {
		extra := 1
		if len(ds) > 2 && g.r.IntN(10) < 3 {
			extra = 2
		}
		for _, d := range g.r.Perm(len(ds)) {
			if len(out) > extra {
				break
			}
			if d != primary {
				out = append(out, ds[d].Name)
			}
		}
	}
	return out
}

// learner creates a learner who signed up at `at`, a member of the given domains (the first
// joined at sign-up, the others later, at the latest at the later of `at` and the end of
// the generated history).
func (g *generator) learner(at time.Time, domains ...string) Learner {
	serial := len(g.org.Learners)
	first, last := firstNames[g.r.IntN(len(firstNames))], lastNames[g.r.IntN(len(lastNames))]
	l := Learner{ID: g.ids.next(), FirstName: first.display, LastName: last.display, SignedUpAt: at}
	switch g.r.IntN(100) {
	case 0, 1:
		l.FirstName = g.longName(firstNames)
	case 2:
		l.LastName = g.longName(lastNames)
	}
	l.Email = g.email(first.ascii, last.ascii, serial)
	if g.r.IntN(100) < 3 && at.Before(generatedUntil) { // some past learners were deactivated
		t := g.stamp(at, generatedUntil)
		l.InactiveAt = &t
	}
	for i, name := range domains {
		joined := at
		if i > 0 {
			joined = g.stamp(at, maxTime(at, generatedUntil))
		}
		l.Memberships = append(l.Memberships, g.membership(name, joined))
	}
	return l
}

// email builds a unique address: names hold no dots, so the serial number between them and
// the tag or @ makes it unique even case-insensitively. Tags, apostrophes and capitals
// exercise the sink's email handling; the parts keep it well under 80 characters.
func (g *generator) email(first, last string, serial int) string {
	local := truncate(first, 20) + "." + truncate(last, 20) + "." + strconv.FormatInt(int64(serial), 36)
	if g.r.IntN(100) < 15 {
		local += "+" + emailTags[g.r.IntN(len(emailTags))]
	}
	if g.r.IntN(100) < 20 {
		parts := strings.Split(local, ".")
		for i, p := range parts {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
		local = strings.Join(parts, ".")
	}
	return local + "@" + emailDomains[g.r.IntN(len(emailDomains))]
}

// longName strings names together to exactly the 50-character limit.
func (g *generator) longName(pool []name) string {
	var b strings.Builder
	for utf8.RuneCountInString(b.String()) < maxNameLen {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(pool[g.r.IntN(len(pool))].display)
	}
	return fitRunes(b.String(), maxNameLen)
}

func (g *generator) membership(domain string, at time.Time) Membership {
	m := Membership{Domain: domain, Active: g.r.IntN(100) >= 4, EnrolledAt: at}
	if g.r.IntN(100) < 4 {
		exp := at.AddDate(1, 0, 0)
		m.ExpiresAt = &exp
	}
	d := g.org.Domains[g.org.idx.domainAt[domain]]
	for _, f := range d.SignupFields {
		pool := companies
		if f.Label == "Job Title" {
			pool = jobTitles
		}
		m.SignupFields = append(m.SignupFields, SignupValue{FieldID: f.ID, Label: f.Label, Value: pool[g.r.IntN(len(pool))]})
	}
	return m
}

// progress gives each learner 0–10 (5 on average) published courses from their domains.
func (g *generator) progress() {
	var cands []int32
	g.org.Progress = slices.Grow(g.org.Progress, len(g.org.Learners)*11/2)
	for l := range g.org.Learners {
		cands = cands[:0]
		for _, m := range g.org.Learners[l].Memberships {
			cands = append(cands, g.org.idx.pcsIn[g.org.idx.domainAt[m.Domain]]...)
		}
		k := min(g.r.IntN(11), len(cands))
		for j := range k {
			s := j + g.r.IntN(len(cands)-j)
			cands[j], cands[s] = cands[s], cands[j]
			g.org.Progress = append(g.org.Progress, g.progressRow(int32(l), cands[j]))
		}
	}
}

// progressRow enrolls learner l in published course pc somewhere in the history and draws
// an outcome: in progress, completed PASSED, FAILED or without a success status; about 10%
// of rows are re-enrollments with older enrollments in History.
func (g *generator) progressRow(l, pc int32) Progress {
	joined := g.org.membership(l, g.org.PublishedCourses[pc].Domain).EnrolledAt
	times := make([]time.Time, 1, 3)
	if g.r.IntN(10) == 0 {
		times = times[:2+g.r.IntN(2)]
	}
	for i := range times {
		times[i] = g.stamp(joined, maxTime(joined, generatedUntil))
	}
	slices.SortFunc(times, time.Time.Compare)
	p := g.enroll(l, pc, times[0])
	for i, at := range times[1:] {
		if !at.After(times[i]) {
			at = times[i].Add(time.Microsecond)
			times[i+1] = at
		}
		g.reenroll(&p, at)
	}
	course := &g.org.Courses[g.org.idx.courseAt[p.CourseID]]
	switch u := g.r.IntN(100); {
	case u < 45:
		p.CompletedLessonCount = g.r.IntN(course.LessonCount())
		p.CompletedRequiredLessonCount = min(p.CompletedLessonCount, course.RequiredLessonCount())
		p.LatestActivity = g.stamp(p.EnrolledAt, maxTime(p.EnrolledAt, generatedUntil))
	case u < 75:
		g.complete(&p, course, "PASSED", g.stamp(p.EnrolledAt, maxTime(p.EnrolledAt, generatedUntil)))
	case u < 87:
		g.complete(&p, course, "FAILED", g.stamp(p.EnrolledAt, maxTime(p.EnrolledAt, generatedUntil)))
	default:
		g.complete(&p, course, "", g.stamp(p.EnrolledAt, maxTime(p.EnrolledAt, generatedUntil)))
	}
	return p
}

// enroll creates a fresh row for learner l in published course pc, enrolled at `at`.
func (g *generator) enroll(l, pc int32, at time.Time) Progress {
	c := g.org.PublishedCourses[pc]
	p := Progress{
		CourseProgressID:  g.ids.next(),
		UserID:            g.org.Learners[l].ID,
		PublishedCourseID: c.ID,
		CourseID:          c.CourseID,
		Domain:            c.Domain,
		EnrollmentID:      g.ids.next(),
		EnrolledAt:        at,
		Active:            g.r.IntN(100) >= 3,
		LatestActivity:    at,
	}
	if g.r.IntN(100) < 4 {
		exp := at.AddDate(1, 0, 0)
		p.ExpiresAt = &exp
	}
	return p
}

// reenroll moves the current enrollment into History and starts a new one at `at`. With
// unique_progress_per_enrollment the new enrollment gets its own, empty course progress.
func (g *generator) reenroll(p *Progress, at time.Time) {
	old := p.Current()
	old.Active = false
	p.History = append(p.History, old)
	p.EnrollmentID, p.EnrolledAt, p.Active, p.ExpiresAt = g.ids.next(), at, true, nil
	p.LatestActivity = maxTime(p.LatestActivity, at)
	if g.org.PublishedCourses[g.org.idx.pcAt[p.PublishedCourseID]].UniqueProgressPerEnrollment {
		p.CourseProgressID = g.ids.next()
		p.CompletedAt, p.SuccessStatus, p.Score, p.MaxScore, p.CreditsEarned = nil, "", nil, nil, ""
		p.CompletedLessonCount, p.CompletedRequiredLessonCount = 0, 0
		p.LatestActivity = at
	}
}

// complete marks the row completed at `at` with a success status ("" for none). Courses with
// a quiz carry a score out of 20 or 100 that agrees with the status.
func (g *generator) complete(p *Progress, c *Course, status string, at time.Time) {
	markCompleted(p, c, status, at)
	if status == "" || !slices.ContainsFunc(c.Lessons, func(l Lesson) bool { return l.Type == "QUIZ" }) {
		return
	}
	maxScore := float64([]int{20, 100}[g.r.IntN(2)])
	pass := int(0.7 * maxScore)
	score := float64(g.r.IntN(pass))
	if status == "PASSED" {
		score = float64(pass + g.r.IntN(int(maxScore)-pass+1))
	}
	p.Score, p.MaxScore = &score, &maxScore
}

// markCompleted records a completion: every lesson done, credits unless FAILED.
func markCompleted(p *Progress, c *Course, status string, at time.Time) {
	p.CompletedAt = &at
	p.LatestActivity = at
	p.SuccessStatus = status
	p.CompletedLessonCount, p.CompletedRequiredLessonCount = c.LessonCount(), c.RequiredLessonCount()
	p.CreditsEarned = ""
	if status != "FAILED" {
		p.CreditsEarned = c.Credits
	}
}

// stamp draws a time in [from, to], truncated to whole seconds half of the time and to
// microseconds (the API's precision) otherwise.
func (g *generator) stamp(from, to time.Time) time.Time {
	t := from
	if span := to.Sub(from); span > 0 {
		t = from.Add(time.Duration(g.r.Int64N(int64(span) + 1)))
	}
	if g.r.IntN(2) == 0 {
		if s := t.Truncate(time.Second); !s.Before(from) {
			return s
		}
	}
	if u := t.Truncate(time.Microsecond); !u.Before(from) {
		return u
	}
	return from
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// fitRunes cuts s to exactly n characters, never ending in a space (which a sink might trim).
func fitRunes(s string, n int) string {
	r := []rune(s)[:n]
	for r[n-1] == ' ' {
		r[n-1] = 'a'
	}
	return string(r)
}

func slugify(title string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(title) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimSuffix(truncate(b.String(), 80), "-")
	// PublishedCourse.slug must match ^[a-z0-9]+(-[a-z0-9]+)+$ in the published v1 document
	// (reference/skilljar.md §12): at least two words, so a one-word title gets a suffix.
	switch {
	case s == "":
		return "untitled-course"
	case !strings.Contains(s, "-"):
		return strings.TrimSuffix(truncate(s, 80-len("-course")), "-") + "-course"
	}
	return s
}
