package salesforcesim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// BenchmarkCollectionsUpsert100k upserts 100,000 course-progress rows (each naming its
// student by external id) through PATCH composite/sobjects over HTTP, 200 per request, and
// reports the throughput and the heap the simulator holds for them.
func BenchmarkCollectionsUpsert100k(b *testing.B) {
	const total, perRequest = 100000, 200
	for range b.N {
		b.StopTimer()
		s := startSim(b, Config{})
		c := newClient(b, s)
		var students []map[string]any
		for i := range 1000 {
			students = append(students, student(fmt.Sprintf("stu-%d", i), studentEmail, fmt.Sprintf("s%d@example.com", i)))
		}
		for i := 0; i < len(students); i += perRequest {
			c.upsert(objStudent, false, students[i:i+perRequest]...)
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		bodies := make([][]byte, 0, total/perRequest)
		for i := 0; i < total; i += perRequest {
			var records []map[string]any
			for j := i; j < i+perRequest; j++ {
				records = append(records, map[string]any{
					ObfuscatedID:                  fmt.Sprintf("prog-%d", j),
					studentRel:                    map[string]any{ObfuscatedID: fmt.Sprintf("stu-%d", j%1000)},
					"skilljar__Completed_At__c":   "2024-05-01T10:00:00.000Z",
					"skilljar__Success_Status__c": "PASSED",
					"skilljar__Score__c":          j % 100,
				})
			}
			body, _ := json.Marshal(upsertBody(false, objProgress, records...))
			bodies = append(bodies, body)
		}
		url := s.InstanceURL() + "/services/data/" + testVersion + "/composite/sobjects/" + objProgress + "/" + ObfuscatedID
		b.StartTimer()

		start := time.Now()
		for _, body := range bodies {
			req, _ := http.NewRequest("PATCH", url, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+c.token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck // drained only to reuse the connection
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		elapsed := time.Since(start)

		b.StopTimer()
		if n := s.Count(objProgress); n != total {
			b.Fatalf("Count = %d, want %d", n, total)
		}
		bodies = nil
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(total)/elapsed.Seconds(), "records/s")
		b.ReportMetric(float64(elapsed.Milliseconds())/float64(total/perRequest), "ms/request")
		b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "heap-MiB")
		b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/total, "heap-B/record")
		s.Close()
		b.StartTimer()
	}
}
