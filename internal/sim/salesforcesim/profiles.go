package salesforcesim

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"
)

// Org profiles give the simulated org a shape real orgs have and the default org lacks
// (reference/salesforce.md §8 "Field realities"). Their names are a contract: `backfill sim`,
// `dev` and `demo` take them in --org-profile.
const (
	// ProfileMasterDetail makes Course Progress → Student and Published Course → Course
	// master-detail without "Allow reparenting": describe reports them createable but not
	// updateable, and an update that writes them is refused (§8.1; Salesforce KB 000385552).
	ProfileMasterDetail = "master-detail"
	// ProfileAutoNumber makes Course Progress Name an auto-number: describe says autoNumber,
	// neither createable nor updateable, and writing it is refused (§8.2).
	ProfileAutoNumber = "autonumber"
	// ProfileSparse drops the optional mapped fields no public source names (§8.3) from the
	// org: describe lacks them and a write naming one is refused with INVALID_FIELD.
	ProfileSparse = "sparse"
	// ProfilePicklist makes Success Status a restricted picklist whose values are not
	// Skilljar's PASSED and FAILED (§8.3: the package's values are unknown).
	ProfilePicklist = "picklist"
	// ProfileAutomation runs customer automation on the package's objects (§8.4): a
	// validation rule and a trigger fail specific records, and a request or bulk batch of
	// more than CPULimitRecords records exhausts the Apex CPU limit, failing all its records.
	ProfileAutomation = "automation"
	// ProfileLocks makes Course Progress → Student and Published Course → Course lock their
	// parent while the writing transaction lasts (LockWindow), so concurrent writes under one
	// parent fail with UNABLE_TO_LOCK_ROW, and a bulk job's batches run in parallel (§8.5).
	ProfileLocks = "locks"
	// ProfileDeveloperEdition allows 5 concurrent long-running requests, not 25 (§8.6).
	ProfileDeveloperEdition = "developer-edition"
	// ProfileDirty makes the package's external id fields non-unique, so SeedDuplicates can
	// leave two records under one external id and an upsert matching both fails, and another
	// writer creates Contacts between a caller's query and its create (§8.7, raceQuery).
	ProfileDirty = "dirty"
)

// Profiles lists every org profile name.
var Profiles = []string{
	ProfileMasterDetail, ProfileAutoNumber, ProfileSparse, ProfilePicklist, ProfileAutomation,
	ProfileLocks, ProfileDeveloperEdition, ProfileDirty,
}

// ParseProfiles reads a comma-separated profile list; "" is the default org.
func ParseProfiles(list string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
		case !slices.Contains(Profiles, p):
			return nil, fmt.Errorf("unknown org profile %q; known: %s", p, strings.Join(Profiles, ", "))
		case !slices.Contains(out, p):
			out = append(out, p)
		}
	}
	return out, nil
}

// The profiles' settings where Config leaves them zero.
const (
	// defaultCPULimitRecords is about where the adversarial run of issue 10 saw requests
	// fail whole; a real org's threshold depends on its triggers.
	defaultCPULimitRecords = 120
	// defaultLockWindow is how long a writing transaction holds its parents' locks. Real
	// transactions hold them until commit and a waiter gives up after 10 s (§8.5); the
	// simulator fails a waiter at once, as if the holder outlasted the wait.
	defaultLockWindow = 200 * time.Millisecond
	// developerEditionConcurrency is the concurrent long-running request limit of Developer
	// Edition and trial orgs (§8.6, §4.2).
	developerEditionConcurrency = 5
	// bulkTransactionRecords is how many records of a bulk batch one trigger invocation
	// sees; Salesforce runs bulk data through triggers 200 records at a time.
	bulkTransactionRecords = 200
)

// PicklistProfileValues are Success Status's values under ProfilePicklist: an org whose admin
// labelled outcomes in words (UNCONFIRMED: the package's own values are not public).
var PicklistProfileValues = []string{"Passed", "Failed", "Incomplete"}

// sparseFields are the mapped optional fields ProfileSparse removes: names no public source
// confirms (reference/skilljar.md §6.2).
var sparseFields = map[string][]string{
	"skilljar__Course__c":           {"skilljar__Short_Description__c"},
	"skilljar__Published_Course__c": {"skilljar__Course_Url__c"},
	"skilljar__Course_Progress__c":  {"skilljar__Latest_Activity__c", "skilljar__Enrollment_Id__c", "skilljar__Active__c"},
}

// masterDetailFields are the relationships ProfileMasterDetail and ProfileLocks make
// master-detail. Which package relationships are master-detail is UNCONFIRMED (§8.1).
var masterDetailFields = map[string][]string{
	"skilljar__Course_Progress__c":  {"skilljar__Student__c"},
	"skilljar__Published_Course__c": {"skilljar__Course__c"},
}

// Automation's customer code. Its texts are an admin's own, so they are invented; the codes
// are the platform's (§8.4).
const (
	validationMessage = "Completed progress needs a Contact on its Student (validation rule Progress_Needs_Contact)"
	triggerMessage    = "StudentAccountRollup: execution of AfterInsert\n\ncaused by: System.DmlException: Update failed. " +
		"First exception on row 0; first error: ENTITY_IS_LOCKED, the entity is locked for editing: []\n\n" +
		"Trigger.StudentAccountRollup: line 18, column 1"
	cpuLimitMessage = "ProgressRollup: System.LimitException: Apex CPU time limit exceeded"
	// automationEvery picks the records the rule and the trigger fail: one in 200 by a hash of
	// the external id (0.5%, the share the adversarial run of issue 10 used).
	automationEvery = 200
)

func (s *Sim) has(profile string) bool { return slices.Contains(s.cfg.Profiles, profile) }

// applyProfiles reshapes the schema and fills in the profiles' settings.
func applyProfiles(c Config) Config {
	has := func(p string) bool { return slices.Contains(c.Profiles, p) }
	schema := make([]SObject, len(c.Schema))
	for i, o := range c.Schema {
		o.Fields = slices.Clone(o.Fields)
		if has(ProfileSparse) {
			o.Fields = slices.DeleteFunc(o.Fields, func(f Field) bool { return slices.Contains(sparseFields[o.Name], f.Name) })
		}
		for j := range o.Fields {
			f := &o.Fields[j]
			md := slices.Contains(masterDetailFields[o.Name], f.Name)
			if md && (has(ProfileMasterDetail) || has(ProfileLocks)) {
				f.MasterDetail, f.Nillable = true, false
			}
			if md && has(ProfileMasterDetail) {
				f.Updateable = false // "Allow reparenting" off, the default
			}
			switch {
			case has(ProfileAutoNumber) && o.Name == "skilljar__Course_Progress__c" && f.Name == "Name":
				f.AutoNumber, f.Createable, f.Updateable, f.DefaultedOnCreate = true, false, false, true
			case has(ProfilePicklist) && f.Name == "skilljar__Success_Status__c":
				f.PicklistValues = PicklistProfileValues
			case has(ProfileDirty) && f.Name == ObfuscatedID:
				f.Unique = false
			}
		}
		schema[i] = o
	}
	c.Schema = schema
	if has(ProfileAutomation) && c.CPULimitRecords == 0 {
		c.CPULimitRecords = defaultCPULimitRecords
	}
	if has(ProfileLocks) && c.LockWindow == 0 {
		c.LockWindow = defaultLockWindow
	}
	if has(ProfileDeveloperEdition) && c.ConcurrentLimit == 0 {
		c.ConcurrentLimit = developerEditionConcurrency
	}
	return c
}

// automationError is the customer automation's verdict on one record, if it fails it.
func (s *Sim) automationError(t *table, extID string) (recordErr, bool) {
	if !s.has(ProfileAutomation) || extID == "" || !slices.Contains(triggered, t.obj.Name) {
		return recordErr{}, false
	}
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(extID)))
	if h.Sum32()%automationEvery != 0 {
		return recordErr{}, false
	}
	switch t.obj.Name {
	case "skilljar__Course_Progress__c":
		return newRecordErr("FIELD_CUSTOM_VALIDATION_EXCEPTION", validationMessage), true
	case "skilljar__Student__c":
		return newRecordErr("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", triggerMessage), true
	}
	return recordErr{}, false
}

// triggered are the objects public orgs run triggers on (§8.4).
var triggered = []string{"skilljar__Student__c", "skilljar__Course_Progress__c"}

// cpuLimited reports whether a transaction's records exhaust the Apex CPU limit in the
// triggers of their objects; every record then fails and nothing is written (§8.4: "fails
// every record of the request").
func (s *Sim) cpuLimited(ops []writeOp) bool {
	if s.cfg.CPULimitRecords <= 0 || len(ops) <= s.cfg.CPULimitRecords {
		return false
	}
	return slices.ContainsFunc(ops, func(op writeOp) bool { return slices.Contains(triggered, op.table.obj.Name) })
}

func cpuLimitResults(n int) []writeResult {
	out := make([]writeResult, n)
	for i := range out {
		out[i] = writeResult{errors: []recordErr{newRecordErr("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", cpuLimitMessage)}}
	}
	return out
}

// lockHold is a parent record's lock: the transaction holding it, until when.
type lockHold struct {
	txn   uint64
	until time.Time
}

// lockParents takes the locks a child's write needs: its master-detail parents, as resolved
// for this write or as stored. A parent another transaction holds fails the record with
// UNABLE_TO_LOCK_ROW. The caller holds s.mu.
func (s *Sim) lockParents(txn uint64, t *table, r *row, resolved map[*Field]any) (recordErr, bool) {
	if s.cfg.LockWindow <= 0 {
		return recordErr{}, false
	}
	now := time.Now()
	var take []string
	for i := range t.obj.Fields {
		f := &t.obj.Fields[i]
		if !f.MasterDetail {
			continue
		}
		id, _ := resolved[f].(string)
		if _, written := resolved[f]; !written && r != nil {
			id = t.text(r.values, f.Name)
		}
		if id == "" {
			continue
		}
		if h, ok := s.locks[id]; ok && h.txn != txn && now.Before(h.until) {
			return newRecordErr("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records: "+id), true
		}
		take = append(take, id)
	}
	for _, id := range take {
		s.locks[id] = lockHold{txn: txn, until: now.Add(s.cfg.LockWindow)}
	}
	return recordErr{}, false
}

// holding reports whether transaction txn holds any lock; the caller holds s.mu.
func (s *Sim) holding(txn uint64) bool {
	for _, h := range s.locks {
		if h.txn == txn {
			return true
		}
	}
	return false
}

// releaseLocks ends a transaction's hold on its parents; the caller holds s.mu.
func (s *Sim) releaseLocks(txn uint64) {
	for id, h := range s.locks {
		if h.txn == txn || time.Now().After(h.until) {
			delete(s.locks, id)
		}
	}
}

// SeedDuplicates stores n more records of sobject under an external id that may already be
// taken, as an org whose external id is not unique can hold (ProfileDirty). It panics when
// the field is unique, a programming error in the test that asks.
func (s *Sim) SeedDuplicates(sobject, externalID string, n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.table(sobject)
	key := t.obj.externalID()
	if key.Unique {
		panic("salesforcesim: SeedDuplicates needs a non-unique external id (ProfileDirty)")
	}
	var ids []string
	for range n {
		var undo []func()
		res := s.writeOne(0, writeOp{table: t, mode: modeInsert, org: true, changes: []change{{field: key, value: externalID}}}, &undo)
		ids = append(ids, res.id)
	}
	return ids
}

// raceEvery paces the other writer of ProfileDirty: one query in this many loses the race.
const raceEvery = 2

// raceQuery plays another writer racing the caller in a dirty org (§8.7: "another writer may
// create the same record between a read and a write"), e.g. Skilljar's own sync: after a
// query of Contacts by Email that found no Contact for some address, the other writer creates
// one for the first such address, every raceEvery-th time, so that a caller who creates what
// the query did not find makes a duplicate. The caller holds s.mu.
func (s *Sim) raceQuery(q *query, found []*row) {
	c, ok := q.where.(*comparison)
	if !s.has(ProfileDirty) || !ok || q.table.obj.Name != "Contact" || c.path.rel != nil ||
		c.path.field.Name != "Email" || (c.op != "IN" && c.op != "=") {
		return
	}
	if s.raced++; s.raced%raceEvery != 0 {
		return
	}
	for _, v := range c.values {
		email, _ := v.(string)
		if email == "" || slices.ContainsFunc(found, func(r *row) bool { return strings.EqualFold(q.table.text(r.values, "Email"), email) }) {
			continue
		}
		var undo []func()
		t := q.table
		s.writeOne(s.nextSeq(), writeOp{table: t, mode: modeInsert, org: true, changes: []change{
			{field: t.obj.field("Email"), value: email}, {field: t.obj.field("LastName"), value: "Created elsewhere"},
		}}, &undo)
		return
	}
}
