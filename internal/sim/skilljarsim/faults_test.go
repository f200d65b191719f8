package skilljarsim_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

const throttledOneSecond = "Request was throttled. Expected available in 1 second."

func TestMinuteLimitAnswers429WithRetryAfterThenRecovers(t *testing.T) {
	now := clock.NewManual(time.Now())
	s := start(t, skilljarsim.Config{Users: 10, PerMinute: 3, TimeScale: 60, Now: now.Now}) // a "minute" is 1 s
	c := newClient(t, s)
	for i := range 3 {
		if resp, _ := c.get("/v1/domains"); resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d within the limit: %d", i+1, resp.StatusCode)
		}
	}
	resp, body := c.get("/v1/domains")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || detailOf(t, body) != throttledOneSecond {
		t.Fatalf("call over the limit: got %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	now.Advance(time.Second)
	if resp, body := c.get("/v1/domains"); resp.StatusCode != http.StatusOK {
		t.Errorf("after Retry-After: got %d %s", resp.StatusCode, body)
	}
	if got := s.CallCount("GET /v1/domains"); got != 5 {
		t.Errorf("recorded %d calls, made 5", got)
	}
}

func TestHourLimitAnswers429WithRetryAfter(t *testing.T) {
	now := clock.NewManual(time.Now())
	s := start(t, skilljarsim.Config{Users: 10, PerHour: 2, TimeScale: 3600, Now: now.Now}) // an "hour" is 1 s
	c := newClient(t, s)
	c.get("/v1/ping")
	c.get("/v1/ping")
	resp, body := c.get("/v1/ping")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || detailOf(t, body) != throttledOneSecond {
		t.Fatalf("got %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	now.Advance(time.Second)
	if resp, _ := c.get("/v1/ping"); resp.StatusCode != http.StatusOK {
		t.Errorf("after the window: %d", resp.StatusCode)
	}
}

// DRF's check_throttles asks every throttle, and each that admits a request records it: a
// call refused by the minute limit still spends the hourly budget.
func TestCallsRefusedByTheMinuteLimitSpendTheHourlyBudget(t *testing.T) {
	now := clock.NewManual(time.Now())
	s := start(t, skilljarsim.Config{Users: 10, PerMinute: 2, PerHour: 4, TimeScale: 60, Now: now.Now}) // minute 1 s, hour 60 s
	c := newClient(t, s)
	statuses := []int{}
	for range 4 {
		resp, _ := c.get("/v1/ping")
		statuses = append(statuses, resp.StatusCode)
	}
	if statuses[1] != 200 || statuses[2] != 429 || statuses[3] != 429 {
		t.Fatalf("statuses %v, want 200 200 429 429", statuses)
	}
	now.Advance(time.Second) // the minute window is clear again; the hour window holds 4
	resp, body := c.get("/v1/ping")
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || retry < 50 || !strings.Contains(detailOf(t, body), strconv.Itoa(retry)+" seconds") {
		t.Errorf("got %d Retry-After %q %s; want the hourly 429 with about 59 s to wait", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

func TestFaultRateAnswers5xxMixOnlyToAuthenticatedCalls(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 10, FaultRate: 1})
	c := newClient(t, s)
	seen := map[int]bool{}
	for range 60 {
		resp, body := c.get("/v1/domains")
		seen[resp.StatusCode] = true
		switch resp.StatusCode {
		case http.StatusInternalServerError:
			if detailOf(t, body) == "" {
				t.Errorf("500 without a detail: %s", body)
			}
		case http.StatusBadGateway, http.StatusServiceUnavailable:
			if json.Valid(body) || resp.Header.Get("Content-Type") != "text/html" {
				t.Errorf("%d should be an HTML page, got %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		default:
			t.Fatalf("FaultRate 1 answered %d", resp.StatusCode)
		}
	}
	if len(seen) != 3 {
		t.Errorf("statuses seen %v, want 500, 502 and 503", seen)
	}
	resp, err := http.Get(s.URL() + "/v1/domains")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated call got %d, want 401 untouched by faults", resp.StatusCode)
	}
}

func TestGarbleRateBreaksJSONBodiesBothWays(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 10, GarbleRate: 1})
	c := newClient(t, s)
	truncated, garbled := 0, 0
	for range 40 {
		resp, body, err := c.do("/v1/domains")
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			truncated++
		case err != nil:
			t.Fatalf("unexpected transport error: %v", err)
		case resp.StatusCode != http.StatusOK:
			t.Fatalf("status %d", resp.StatusCode)
		case json.Valid(body):
			t.Fatalf("GarbleRate 1 sent valid JSON: %s", body)
		default:
			garbled++
		}
	}
	if truncated == 0 || garbled == 0 {
		t.Errorf("%d truncated, %d garbled; want both", truncated, garbled)
	}
	if resp, body, err := c.do("/v1/ping"); err != nil || resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("ping has no JSON body to break: %v %v %q", err, resp, body)
	}
}

func TestSlowRateHoldsResponsesPastClientTimeouts(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 10, SlowRate: 1, SlowDelay: 300 * time.Millisecond})
	c := newClient(t, s)
	c.hc = &http.Client{Timeout: 50 * time.Millisecond}
	_, _, err := c.do("/v1/domains")
	var timeout interface{ Timeout() bool }
	if !errors.As(err, &timeout) || !timeout.Timeout() {
		t.Errorf("a 50 ms client got %v, want a timeout", err)
	}
	c.hc = &http.Client{}
	began := time.Now()
	if resp, _ := c.get("/v1/domains"); resp.StatusCode != http.StatusOK {
		t.Errorf("a patient client got %d", resp.StatusCode)
	}
	if waited := time.Since(began); waited < 300*time.Millisecond {
		t.Errorf("answered after %v, before SlowDelay", waited)
	}
}

func TestLatencyDelaysEveryAuthenticatedResponse(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 10, Latency: 80 * time.Millisecond, Jitter: 40 * time.Millisecond})
	c := newClient(t, s)
	for range 3 {
		began := time.Now()
		c.get("/v1/ping")
		if waited := time.Since(began); waited < 80*time.Millisecond {
			t.Errorf("answered after %v, before the 80 ms latency", waited)
		}
	}
}

func TestInjectedFaultsHitTheNextMatchingCallsOnly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault skilljarsim.Fault
		check func(t *testing.T, resp *http.Response, body []byte, err error)
	}{
		{"502 page", skilljarsim.Fault{Kind: skilljarsim.Fault5xx, Status: 502}, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 502 || json.Valid(body) {
				t.Errorf("got %v %v %s, want a 502 HTML page", err, resp, body)
			}
		}},
		{"500 json", skilljarsim.Fault{Kind: skilljarsim.Fault5xx, Status: 500}, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 500 || detailOf(t, body) != "A server error occurred." {
				t.Errorf("got %v %v %s, want a JSON 500", err, resp, body)
			}
		}},
		{"429", skilljarsim.Fault{Kind: skilljarsim.Fault429}, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || detailOf(t, body) != throttledOneSecond {
				t.Errorf("got %v %v %s, want DRF's 429", err, resp, body)
			}
		}},
		{"truncated", skilljarsim.Fault{Kind: skilljarsim.FaultTruncated}, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("got %v, want an unexpected EOF", err)
			}
		}},
		{"garbled", skilljarsim.Fault{Kind: skilljarsim.FaultGarbled}, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || json.Valid(body) {
				t.Errorf("got %v %v, want a 200 with a broken body", err, resp)
			}
		}},
		{"slow", skilljarsim.Fault{Kind: skilljarsim.FaultSlow}, func(t *testing.T, resp *http.Response, body []byte, err error) {
			var timeout interface{ Timeout() bool }
			if !errors.As(err, &timeout) {
				t.Errorf("got %v, want the client to time out", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, skilljarsim.Config{Users: 10, SlowDelay: time.Second})
			c := newClient(t, s)
			c.hc.Timeout = 250 * time.Millisecond
			tc.fault.PathPrefix, tc.fault.Times = "/v1/users", 2
			s.InjectFault(tc.fault)

			if resp, _, err := c.do("/v1/domains"); err != nil || resp.StatusCode != 200 {
				t.Errorf("a call outside the prefix was hit: %v %v", err, resp)
			}
			for range 2 {
				resp, body, err := c.do("/v1/users")
				tc.check(t, resp, body, err)
			}
			if resp, _, err := c.do("/v1/users"); err != nil || resp.StatusCode != 200 {
				t.Errorf("the fault outlived Times: %v %v", err, resp)
			}
		})
	}
}
