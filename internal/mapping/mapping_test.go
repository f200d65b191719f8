package mapping_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

func TestDefaultMapsEveryObjectInDependencyOrder(t *testing.T) {
	t.Parallel()
	m := mapping.Default()
	for _, name := range mapping.Order {
		o, ok := m.Object(name)
		if !ok {
			t.Fatalf("default mapping lacks %s", name)
		}
		if o.ExternalID != "skilljar__Obfuscated_Id__c" {
			t.Fatalf("%s upserts on %s, want skilljar__Obfuscated_Id__c", name, o.ExternalID)
		}
	}
}

func TestProgressRowReferencesParentsByExternalIDAndFormatsValues(t *testing.T) {
	t.Parallel()
	completed := time.Date(2023, 2, 3, 16, 41, 9, 512345000, time.UTC)
	passed, score := "PASSED", 18.0
	p := skilljar.UserCourseProgress{
		PublishedCourseID: "pc1", DomainName: "learn.example.com", EnrollmentID: "en2",
		Course: skilljar.CourseSummary{ID: "c1", Title: strings.Repeat("é", 90)},
		CourseProgress: skilljar.CourseProgress{
			CourseProgressID: "cp2", CompletedAt: &completed, SuccessStatus: &passed, Score: &score,
		},
		AllEnrollments: []skilljar.EnrollmentRef{
			{CourseProgressID: "cp1", EnrollmentID: "en1", Active: false},
			{CourseProgressID: "cp2", EnrollmentID: "en2", Active: true},
		},
	}
	srcs := mapping.ProgressSources("u1", p)
	if len(srcs) != 2 {
		t.Fatalf("a re-enrollment with its own progress id must give 2 records, got %d", len(srcs))
	}
	o, _ := mapping.Default().Object(mapping.CourseProgress)
	row, ext, err := o.Row(srcs[0])
	if err != nil || ext != "cp2" {
		t.Fatalf("row: ext %q err %v", ext, err)
	}
	student := row["skilljar__Student__r"].(map[string]any)
	if student["skilljar__Obfuscated_Id__c"] != "u1" {
		t.Fatalf("student reference %v", row["skilljar__Student__r"])
	}
	if row["skilljar__Completed_At__c"] != "2023-02-03T16:41:09.512Z" {
		t.Fatalf("completed at %v", row["skilljar__Completed_At__c"])
	}
	if row["skilljar__Max_Score__c"] != nil {
		t.Fatalf("a null max score must clear the field, got %v", row["skilljar__Max_Score__c"])
	}
	if _, ok := row["skilljar__Max_Score__c"]; !ok {
		t.Fatal("a null max score must be sent as null, not left out")
	}
	if n := []rune(row["Name"].(string)); len(n) != 80 {
		t.Fatalf("Name truncated to %d characters, want 80 (by character, not byte)", len(n))
	}
	if row["skilljar__Active__c"] != true {
		t.Fatalf("active from the matching enrollment: %v", row["skilljar__Active__c"])
	}

	hist, ext, err := o.Row(srcs[1])
	if err != nil || ext != "cp1" {
		t.Fatalf("history row: %q %v", ext, err)
	}
	for _, field := range []string{"skilljar__Completed_At__c", "skilljar__Success_Status__c", "skilljar__Score__c"} {
		if _, ok := hist[field]; ok {
			t.Fatalf("the history row must leave %s as Salesforce has it, but sends %v", field, hist[field])
		}
	}
	if hist["skilljar__Active__c"] != false || hist["skilljar__Enrollment_Id__c"] != "en1" {
		t.Fatalf("history row %v", hist)
	}
}

func TestParseListsEveryProblemWithTheFieldAndTheFix(t *testing.T) {
	t.Parallel()
	_, err := mapping.Parse([]byte(`{"version": 1, "objects": [
	  {"name": "course_progress", "sobject": "X__c", "external_id": "Ext__c", "fields": [
	    {"field": "Ext__c", "source": "id"},
	    {"field": "Email__c", "source": "user.emial"},
	    {"relationship": "Student__r", "parent": "student", "source": "user_id"}
	  ]},
	  {"name": "student", "sobject": "", "external_id": "Ext__c", "fields": [
	    {"field": "Name", "source": "full_name"},
	    {"relationship": "Progress__r", "parent": "course_progress", "source": "id"}
	  ]}
	]}`))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{
		`objects[0].fields[1].source: "user.emial" is not a field of course_progress records`,
		"objects[1].fields[1].parent: course_progress is written after student",
		"objects[1].sobject: missing",
		"objects[1].fields: no field maps the external id Ext__c",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestParseRejectsUnknownKeysSoATypoIsNotSilentlyIgnored(t *testing.T) {
	t.Parallel()
	_, err := mapping.Parse([]byte(`{"version": 1, "objects": [{"name": "course", "sobject": "C__c", "external_id": "E__c",
	  "fields": [{"field": "E__c", "source": "id", "trunkate": 5}]}]}`))
	if err == nil || !strings.Contains(err.Error(), "trunkate") {
		t.Fatalf("got %v, want an error naming the unknown key", err)
	}
}

func TestLoadReadsAFileAndNamesItInErrors(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "mapping.json")
	if err := os.WriteFile(path, []byte(`{"version": 2, "objects": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := mapping.Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "version: 2 is not supported") {
		t.Fatalf("got %v", err)
	}
}

func TestValueMapReplacesNamedValuesAndPassesOthers(t *testing.T) {
	t.Parallel()
	m, err := mapping.Parse([]byte(`{"version": 1, "objects": [{"name": "course_progress", "sobject": "P__c", "external_id": "E__c",
	  "fields": [{"field": "E__c", "source": "id"},
	    {"field": "Status__c", "source": "success_status", "value_map": {"PASSED": "Passed", "FAILED": "Failed"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	o, _ := m.Object(mapping.CourseProgress)
	for src, want := range map[any]any{"PASSED": "Passed", "FAILED": "Failed", "PENDING": "PENDING", nil: nil} {
		row, _, err := o.Row(mapping.Source{"id": "cp1", "success_status": src})
		if err != nil || row["Status__c"] != want {
			t.Errorf("success_status %v → %v (%v), want %v", src, row["Status__c"], err, want)
		}
	}
}

func TestValueMapOnlyMapsTextFields(t *testing.T) {
	t.Parallel()
	_, err := mapping.Parse([]byte(`{"version": 1, "objects": [{"name": "course_progress", "sobject": "P__c", "external_id": "E__c",
	  "fields": [{"field": "E__c", "source": "id"},
	    {"field": "Score__c", "source": "score", "type": "number", "value_map": {"1": "2"}}]}]}`))
	if err == nil || !strings.Contains(err.Error(), "objects[0].fields[1].value_map: maps text values only") {
		t.Fatalf("got %v", err)
	}
}

func TestWithParentsAddsWhatTheRelationshipsReferToInDependencyOrder(t *testing.T) {
	t.Parallel()
	m := mapping.Default()
	for _, tc := range []struct {
		requested, objects, added []string
	}{
		{nil, mapping.Order, nil},
		{[]string{mapping.Student}, []string{mapping.Student}, nil},
		// Course progress refers to all three; a published course to its course.
		{[]string{mapping.CourseProgress}, mapping.Order, []string{mapping.Course, mapping.PublishedCourse, mapping.Student}},
		{[]string{mapping.PublishedCourse, mapping.Student}, []string{mapping.Course, mapping.PublishedCourse, mapping.Student}, []string{mapping.Course}},
	} {
		objects, added := m.WithParents(tc.requested)
		if !slices.Equal(objects, tc.objects) || !slices.Equal(added, tc.added) {
			t.Errorf("WithParents(%v) = %v, added %v; want %v, added %v", tc.requested, objects, added, tc.objects, tc.added)
		}
	}

	// The parents come from the mapping's relationships: a mapping whose published course
	// has no lookup to its course does not drag the course in, and one that maps no
	// published course lists only what it maps.
	custom, err := mapping.Parse([]byte(`{"version": 1, "objects": [
		{"name": "course", "sobject": "C__c", "external_id": "E__c", "fields": [{"field": "E__c", "source": "id"}]},
		{"name": "published_course", "sobject": "P__c", "external_id": "E__c", "fields": [{"field": "E__c", "source": "id"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if objects, added := custom.WithParents([]string{mapping.PublishedCourse}); !slices.Equal(objects, []string{mapping.PublishedCourse}) || added != nil {
		t.Errorf("without the lookup, WithParents(published_course) = %v, added %v", objects, added)
	}
	if names := custom.Names(); !slices.Equal(names, []string{mapping.Course, mapping.PublishedCourse}) {
		t.Errorf("Names() = %v", names)
	}
}
