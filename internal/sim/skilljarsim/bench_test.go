package skilljarsim

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// BenchmarkLargeOrg holds a 100,000-learner org (about 500,000 progress rows) and serves
// 1,000-row domain user pages and per-learner progress arrays from it over HTTP.
func BenchmarkLargeOrg(b *testing.B) {
	heapBefore := heapInUse()
	began := time.Now()
	s, err := Start(Config{Seed: 1, Users: 100_000}, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	generated := time.Since(began)
	heap := heapInUse() - heapBefore
	if heap >= 1<<30 {
		b.Errorf("the org holds %d MiB, over the 1 GiB budget", heap>>20)
	}

	get := func(path string) {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+path, nil)
		req.SetBasicAuth(s.APIKey(), "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
	}
	const pages, learners = 20, 200
	var pageTime, progressTime time.Duration
	for b.Loop() { // b.Loop restarts the timer: generation is reported on its own
		t0 := time.Now()
		for p := 1; p <= pages; p++ {
			get(fmt.Sprintf("/v1/domains/learn.example.com/users?page_size=1000&page=%d", p))
		}
		t1 := time.Now()
		for i := range learners {
			get("/v1/users/" + s.org.Learners[i*(len(s.org.Learners)/learners)].ID + "/published-courses")
		}
		pageTime += t1.Sub(t0)
		progressTime += time.Since(t1)
	}
	b.ReportMetric(float64(len(s.org.Learners)), "learners")
	b.ReportMetric(float64(len(s.org.Progress)), "progress-rows")
	b.ReportMetric(float64(heap), "heap-bytes")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	b.ReportMetric(generated.Seconds(), "generate-s")
	b.ReportMetric(float64(pageTime.Microseconds())/1000/float64(b.N*pages), "ms/1000-row-page")
	b.ReportMetric(float64(progressTime.Microseconds())/1000/float64(b.N*learners), "ms/progress-call")
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
