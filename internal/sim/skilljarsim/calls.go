package skilljarsim

import (
	"cmp"
	"slices"
	"sync"
)

// CallStat counts the calls to one endpoint pattern that got one status.
type CallStat struct {
	Endpoint string // e.g. "GET /v1/users/{id}/published-courses"
	Status   int
	Count    int
}

type callKey struct {
	endpoint string
	status   int
}

type callLog struct {
	mu     sync.Mutex
	counts map[callKey]int
}

func (c *callLog) record(endpoint string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[callKey]int{}
	}
	c.counts[callKey{endpoint, status}]++
}

// Calls returns the calls recorded so far, by endpoint pattern and status, sorted. Every
// request is recorded before its response is written, unauthenticated and throttled ones
// included; paths that match no endpoint count under "GET (unmatched)".
func (s *Sim) Calls() []CallStat {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	out := make([]CallStat, 0, len(s.calls.counts))
	for k, n := range s.calls.counts {
		out = append(out, CallStat{Endpoint: k.endpoint, Status: k.status, Count: n})
	}
	slices.SortFunc(out, func(a, b CallStat) int {
		return cmp.Or(cmp.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.Status, b.Status))
	})
	return out
}

// CallCount is the number of calls to an endpoint pattern, whatever their status.
func (s *Sim) CallCount(endpoint string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Endpoint == endpoint {
			n += c.Count
		}
	}
	return n
}

// TotalCalls is the number of calls recorded.
func (s *Sim) TotalCalls() int {
	n := 0
	for _, c := range s.Calls() {
		n += c.Count
	}
	return n
}
