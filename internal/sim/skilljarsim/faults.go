package skilljarsim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// FaultKind is a failure the simulator can put on a response.
type FaultKind int

// The zero FaultKind is no fault.
const (
	// Fault5xx answers 500 with a JSON body, or 502/503 with an HTML one, as a load balancer
	// in front of the service does.
	Fault5xx FaultKind = iota + 1
	// FaultTruncated announces the whole 200 body, sends part of it and drops the
	// connection: the client reads an unexpected EOF.
	FaultTruncated
	// FaultGarbled sends a complete 200 body with corrupt bytes in it: valid HTTP, invalid JSON.
	FaultGarbled
	// FaultSlow holds the response back for Config.SlowDelay, then sends it normally.
	FaultSlow
	// Fault429 answers as the throttle does, with Retry-After: 1.
	Fault429
)

func (k FaultKind) String() string {
	switch k {
	case 0:
		return "none"
	case Fault5xx:
		return "5xx"
	case FaultTruncated:
		return "truncated"
	case FaultGarbled:
		return "garbled"
	case FaultSlow:
		return "slow"
	case Fault429:
		return "429"
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Fault is a targeted failure: the next Times authenticated calls whose path starts with
// PathPrefix get Kind (a throttled call is not one of them). Times defaults to 1.
// FaultTruncated and FaultGarbled break only 200 JSON bodies; a call they land on that has
// none (a 404, the empty ping) is answered unharmed and still uses the fault up.
type Fault struct {
	PathPrefix string
	Kind       FaultKind
	Times      int
	// Status picks the Fault5xx status: 500, 502 or 503. Defaults to 503.
	Status int
}

// InjectFault queues a fault. Faults are consumed in the order they were injected; a call
// that consumes one gets no random fault.
func (s *Sim) InjectFault(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	if f.Kind == Fault5xx && f.Status == 0 {
		f.Status = http.StatusServiceUnavailable
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.queue = append(s.faults.queue, f)
}

type faultQueue struct {
	mu    sync.Mutex
	queue []Fault
}

// take consumes the first injected fault matching path.
func (q *faultQueue) take(path string) (Fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.queue {
		f := &q.queue[i]
		if !strings.HasPrefix(path, f.PathPrefix) {
			continue
		}
		got := *f
		if f.Times--; f.Times == 0 {
			q.queue = append(q.queue[:i], q.queue[i+1:]...)
		}
		return got, true
	}
	return Fault{}, false
}

// faultFor decides a call's fault: an injected one, else at most one drawn from the rates
// (5xx before slow before a broken body).
func (s *Sim) faultFor(path string) Fault {
	if f, ok := s.faults.take(path); ok {
		return f
	}
	s.diceMu.Lock()
	defer s.diceMu.Unlock()
	switch {
	case s.dice.Float64() < s.cfg.FaultRate:
		return Fault{Kind: Fault5xx, Status: []int{500, 502, 503}[s.dice.IntN(3)]}
	case s.dice.Float64() < s.cfg.SlowRate:
		return Fault{Kind: FaultSlow}
	case s.dice.Float64() < s.cfg.GarbleRate:
		return Fault{Kind: []FaultKind{FaultTruncated, FaultGarbled}[s.dice.IntN(2)]}
	}
	return Fault{}
}

// response is the answer that replaces the view's for Fault5xx and Fault429.
func (f Fault) response() response {
	switch {
	case f.Kind == Fault429:
		return throttled(1)
	case f.Status == http.StatusInternalServerError:
		return detail(f.Status, "A server error occurred.")
	}
	text := fmt.Sprintf("%d %s", f.Status, http.StatusText(f.Status))
	return response{
		status:      f.Status,
		contentType: "text/html",
		body:        []byte("<html>\r\n<head><title>" + text + "</title></head>\r\n<body>\r\n<center><h1>" + text + "</h1></center>\r\n</body>\r\n</html>\r\n"),
	}
}

// writeTruncated promises the whole body, sends half and aborts the connection.
func writeTruncated(w http.ResponseWriter, resp response) {
	writeHeader(w, resp)
	_, _ = w.Write(resp.body[:len(resp.body)/2])
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	panic(http.ErrAbortHandler) // net/http closes the connection without logging
}

// garble overwrites bytes in the middle of a body with control and invalid UTF-8 bytes,
// which no JSON decoder accepts anywhere in a document.
func garble(body []byte) []byte {
	out := []byte(string(body))
	junk := []byte{0x00, 0xff, 0x1b, '<'}
	at := max(0, len(out)/2-len(junk)/2)
	for i, b := range junk {
		if at+i < len(out) {
			out[at+i] = b
		} else {
			out = append(out, b)
		}
	}
	return out
}
