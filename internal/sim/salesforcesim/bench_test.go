package salesforcesim

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkUpsert600k stores what a full backfill of a 100,000-learner org leaves in
// Salesforce: 100,000 students and 500,000 course-progress rows (each naming its student,
// course and published course by external id, with the fields the default mapping writes).
// It loads them over HTTP both ways the engine writes, 200 records per collections request
// or 10,000 per bulk job, and reports the throughput, the whole heap afterwards and the
// heap each stored row costs. Finished bulk jobs stay, with their results, as the engine
// leaves them for Salesforce to delete after 7 days.
func BenchmarkUpsert600k(b *testing.B) {
	b.Run("collections", func(b *testing.B) { benchmarkStore(b, loadByCollections) })
	b.Run("bulk", func(b *testing.B) { benchmarkStore(b, loadByBulk) })
}

const (
	benchStudents           = 100000
	benchProgressPerStudent = 5
	benchCourses            = 100
)

// benchColumn is one field of a benchmark record; a raw value is a JSON number or boolean.
type benchColumn struct {
	name string
	raw  bool
}

var studentColumns = []benchColumn{
	{name: ObfuscatedID}, {name: "Name"}, {name: studentEmail},
	{name: "skilljar__First_Name__c"}, {name: "skilljar__Last_Name__c"},
}

func studentCells(i int) []string {
	return []string{benchID("u", i), fmt.Sprintf("Learner Número %d", i), fmt.Sprintf("Learner.%d+sj@Example.com", i),
		"Learner", fmt.Sprintf("Número %d", i)}
}

var progressColumns = []benchColumn{
	{name: ObfuscatedID}, {name: "Name"},
	{name: studentRel + "." + ObfuscatedID}, {name: "skilljar__Course__r." + ObfuscatedID},
	{name: "skilljar__Published_Course__r." + ObfuscatedID},
	{name: "skilljar__Enrolled_At__c"}, {name: "skilljar__Latest_Activity__c"}, {name: "skilljar__Enrollment_Id__c"},
	{name: "skilljar__Active__c", raw: true},
	{name: "skilljar__Completed_At__c"}, {name: "skilljar__Success_Status__c"},
	{name: "skilljar__Score__c", raw: true}, {name: "skilljar__Max_Score__c", raw: true},
}

// progressCells is one progress row; half are completed, and an empty cell is not written.
func progressCells(i int) []string {
	course := i % benchCourses
	cells := []string{benchID("p", i), benchTitle(course),
		benchID("u", i/benchProgressPerStudent), benchID("c", course), benchID("pc", course),
		"2024-03-01T09:00:00.000Z", fmt.Sprintf("2024-05-01T10:%02d:00.000Z", i%60), benchID("e", i), "true",
		"", "", "", ""}
	if i%2 == 0 {
		copy(cells[9:], []string{"2024-05-01T10:00:00.000Z", "PASSED", strconv.Itoa(i % 100), "100"})
	}
	return cells
}

// benchID is a 13-character lower-case id, shaped like Skilljar's.
func benchID(kind string, i int) string { return fmt.Sprintf("%s%0*d", kind, 13-len(kind), i) }

func benchTitle(i int) string { return fmt.Sprintf("Course %d: Getting Started with the Platform", i) }

// loader upserts records n rows [0, n) of an object by its external id.
type loader func(b *testing.B, c *client, object string, columns []benchColumn, n int, cells func(int) []string)

func benchmarkStore(b *testing.B, load loader) {
	const rows = benchStudents * (1 + benchProgressPerStudent)
	for range b.N {
		b.StopTimer()
		s := startSim(b, Config{DailyLimit: 1 << 30})
		c := newClient(b, s)
		var courses, published []map[string]any
		for i := range benchCourses {
			courses = append(courses, map[string]any{ObfuscatedID: benchID("c", i), "Name": benchTitle(i)})
			published = append(published, map[string]any{ObfuscatedID: benchID("pc", i), "Name": benchTitle(i),
				"skilljar__Course__r": map[string]any{ObfuscatedID: benchID("c", i)}})
		}
		c.upsert(objCourse, false, courses...)
		c.upsert("skilljar__Published_Course__c", false, published...)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()

		start := time.Now()
		load(b, c, objStudent, studentColumns, benchStudents, studentCells)
		load(b, c, objProgress, progressColumns, benchStudents*benchProgressPerStudent, progressCells)
		elapsed := time.Since(start)

		b.StopTimer()
		if n := s.Count(objStudent) + s.Count(objProgress); n != rows {
			b.Fatalf("stored %d rows, want %d", n, rows)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(rows)/elapsed.Seconds(), "records/s")
		b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "heap-MiB")
		b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/rows, "heap-B/row")
		runtime.KeepAlive(s)
		s.Close()
		b.StartTimer()
	}
}

func loadByCollections(b *testing.B, c *client, object string, columns []benchColumn, n int, cells func(int) []string) {
	const perRequest = 200
	var body bytes.Buffer
	for i := 0; i < n; i += perRequest {
		body.Reset()
		body.WriteString(`{"allOrNone":false,"records":[`)
		for j := i; j < min(i+perRequest, n); j++ {
			if j > i {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"attributes":{"type":%q}`, object)
			for k, cell := range cells(j) {
				col := columns[k]
				rel, field, isRel := strings.Cut(col.name, ".")
				switch {
				case cell == "":
				case isRel:
					fmt.Fprintf(&body, `,%q:{%q:%q}`, rel, field, cell)
				case col.raw:
					fmt.Fprintf(&body, `,%q:%s`, col.name, cell)
				default:
					fmt.Fprintf(&body, `,%q:%q`, col.name, cell)
				}
			}
			body.WriteByte('}')
		}
		body.WriteString("]}")
		r := c.do("PATCH", "composite/sobjects/"+object+"/"+ObfuscatedID, json.RawMessage(body.Bytes()))
		if r.status != http.StatusOK {
			b.Fatalf("upsert %s = %d %s", object, r.status, r.body)
		}
	}
}

func loadByBulk(b *testing.B, c *client, object string, columns []benchColumn, n int, cells func(int) []string) {
	const perJob = 10000
	header := make([]string, len(columns))
	for k, col := range columns {
		header[k] = col.name
	}
	var data bytes.Buffer
	for i := 0; i < n; i += perJob {
		data.Reset()
		w := csv.NewWriter(&data)
		w.Write(header) //nolint:errcheck // a bytes.Buffer never fails; Flush reports any error
		for j := i; j < min(i+perJob, n); j++ {
			w.Write(cells(j)) //nolint:errcheck // as above
		}
		if w.Flush(); w.Error() != nil {
			b.Fatal(w.Error())
		}
		job := c.createJob(upsertJob(object))
		if r := c.do("PUT", "jobs/ingest/"+job.ID+"/batches", data.String()); r.status != http.StatusCreated {
			b.Fatalf("upload = %d %s", r.status, r.body)
		}
		if r := c.do("PATCH", "jobs/ingest/"+job.ID, map[string]string{"state": stateUploadComplete}); r.status != http.StatusOK {
			b.Fatalf("close = %d %s", r.status, r.body)
		}
		if info, _ := c.waitJob(job.ID); info.State != stateJobComplete || info.NumberRecordsFailed != 0 {
			b.Fatalf("job ended %+v", info)
		}
	}
}
