package salesforcesim

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// BenchmarkCollectionsUpsert600k stores what a full backfill of a 100,000-learner org leaves
// in Salesforce: 100,000 students and 500,000 course-progress rows (each naming its student,
// course and published course by external id, with the fields the default mapping writes),
// upserted through PATCH composite/sobjects over HTTP, 200 per request. It reports the
// throughput, the whole heap afterwards and the heap each stored row costs.
func BenchmarkCollectionsUpsert600k(b *testing.B) {
	const (
		students, progressPerStudent = 100000, 5
		courses, perRequest          = 100, 200
		rows                         = students * (1 + progressPerStudent)
	)
	for range b.N {
		b.StopTimer()
		s := startSim(b, Config{DailyLimit: 1 << 30})
		c := newClient(b, s)
		var courseRows, publishedRows []map[string]any
		for i := range courses {
			courseRows = append(courseRows, map[string]any{ObfuscatedID: benchID("c", i), "Name": benchTitle(i)})
			publishedRows = append(publishedRows, map[string]any{ObfuscatedID: benchID("pc", i), "Name": benchTitle(i),
				"skilljar__Course__r": map[string]any{ObfuscatedID: benchID("c", i)}})
		}
		c.upsert("skilljar__Course__c", false, courseRows...)
		c.upsert("skilljar__Published_Course__c", false, publishedRows...)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()

		var elapsed time.Duration
		send := func(object string, n int, record func(i int, buf *bytes.Buffer)) {
			url := s.InstanceURL() + "/services/data/" + testVersion + "/composite/sobjects/" + object + "/" + ObfuscatedID
			var body bytes.Buffer
			for i := 0; i < n; i += perRequest {
				body.Reset()
				fmt.Fprintf(&body, `{"allOrNone":false,"records":[`)
				for j := i; j < i+perRequest; j++ {
					if j > i {
						body.WriteByte(',')
					}
					fmt.Fprintf(&body, `{"attributes":{"type":%q},`, object)
					record(j, &body)
					body.WriteByte('}')
				}
				body.WriteString("]}")
				req, _ := http.NewRequest("PATCH", url, bytes.NewReader(body.Bytes()))
				req.Header.Set("Authorization", "Bearer "+c.token)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck // drained only to reuse the connection
				resp.Body.Close()
				elapsed += time.Since(start)
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		}
		send(objStudent, students, func(i int, buf *bytes.Buffer) {
			fmt.Fprintf(buf, `%q:%q,"Name":"Learner Número %d","skilljar__Email__c":"Learner.%d+sj@Example.com",`+
				`"skilljar__First_Name__c":"Learner","skilljar__Last_Name__c":"Número %d"`,
				ObfuscatedID, benchID("u", i), i, i, i)
		})
		send(objProgress, students*progressPerStudent, func(i int, buf *bytes.Buffer) {
			course := i % courses
			fmt.Fprintf(buf, `%q:%q,"Name":%q,"skilljar__Student__r":%s,"skilljar__Course__r":%s,`+
				`"skilljar__Published_Course__r":%s,"skilljar__Enrolled_At__c":"2024-03-01T09:00:00.000Z",`+
				`"skilljar__Latest_Activity__c":"2024-05-01T10:%02d:00.000Z","skilljar__Enrollment_Id__c":%q,`+
				`"skilljar__Active__c":true`,
				ObfuscatedID, benchID("p", i), benchTitle(course), benchRef("u", i/progressPerStudent),
				benchRef("c", course), benchRef("pc", course), i%60, benchID("e", i))
			if i%2 == 0 { // half completed, with a score
				fmt.Fprintf(buf, `,"skilljar__Completed_At__c":"2024-05-01T10:00:00.000Z","skilljar__Success_Status__c":"PASSED",`+
					`"skilljar__Score__c":%d,"skilljar__Max_Score__c":100`, i%100)
			}
		})

		b.StopTimer()
		if n := s.Count(objStudent) + s.Count(objProgress); n != rows {
			b.Fatalf("stored %d rows, want %d", n, rows)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(rows)/elapsed.Seconds(), "records/s")
		b.ReportMetric(float64(elapsed.Milliseconds())/float64(rows/perRequest), "ms/request")
		b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "heap-MiB")
		b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/rows, "heap-B/row")
		runtime.KeepAlive(s)
		s.Close()
		b.StartTimer()
	}
}

// benchID is a 13-character lower-case id, shaped like Skilljar's.
func benchID(kind string, i int) string { return fmt.Sprintf("%s%0*d", kind, 13-len(kind), i) }

// benchRef names a parent by its external id.
func benchRef(kind string, i int) string {
	return fmt.Sprintf(`{%q:%q}`, ObfuscatedID, benchID(kind, i))
}

func benchTitle(i int) string { return fmt.Sprintf("Course %d: Getting Started with the Platform", i) }
