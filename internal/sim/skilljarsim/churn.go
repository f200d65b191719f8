package skilljarsim

import (
	"slices"
	"sync"
	"time"
)

// Membership churn. Skilljar documents no order for domain user lists, and they are
// page-number (LIMIT/OFFSET) paged, so members joining, leaving or moving shift every later
// page under a crawl that resumes from page=N (reference/skilljar.md §12). StartChurn makes
// that happen at a set rate.

// StartChurn changes domain memberships at ratePerSecond until stop is called or the
// simulator closes: a new learner joins a domain, a member leaves a domain's list, or a
// member who left rejoins it at the end, in equal shares. A member who left is still a member
// in Org (their records are part of the source); only the list omits them until they rejoin,
// as while a membership is moved or re-created. stop waits for the change in flight and brings
// every member who left back, so the lists end complete.
func (s *Sim) StartChurn(ratePerSecond float64) (stop func()) {
	if ratePerSecond <= 0 {
		return func() {}
	}
	return s.every(ratePerSecond, s.churnStep, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for len(s.away) > 0 {
			s.rejoin()
		}
	})
}

// away is a member missing from a domain's list until they rejoin.
type away struct {
	learner int32
	domain  int
}

func (s *Sim) churnStep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch u := s.liveDice.IntN(3); {
	case u == 0 || len(s.org.Learners) == 0:
		s.addLearner([]string{s.org.Domains[s.liveDice.IntN(len(s.org.Domains))].Name})
	case u == 2 && len(s.away) > 0:
		s.rejoin()
	default:
		s.leave()
	}
}

// leave takes a random member off a random domain's list; the caller holds s.mu.
func (s *Sim) leave() {
	d := s.liveDice.IntN(len(s.org.Domains))
	members := s.org.idx.members[d]
	if len(members) == 0 {
		return
	}
	i := s.liveDice.IntN(len(members))
	s.away = append(s.away, away{learner: members[i], domain: d})
	s.org.idx.members[d] = slices.Delete(members, i, i+1)
}

// rejoin brings back the member who left first, joining now, so they list last; the caller
// holds s.mu.
func (s *Sim) rejoin() {
	a := s.away[0]
	s.away = s.away[1:]
	s.org.membership(a.learner, s.org.Domains[a.domain].Name).EnrolledAt = s.now()
	s.org.idx.members[a.domain] = append(s.org.idx.members[a.domain], a.learner)
}

// every runs step at ratePerSecond until the returned stop is called or the simulator
// closes, then last once; stop waits for both.
func (s *Sim) every(ratePerSecond float64, step, last func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	s.live.Add(1)
	go func() {
		defer s.live.Done()
		defer close(done)
		defer last()
		t := time.NewTicker(time.Duration(float64(time.Second) / ratePerSecond))
		defer t.Stop()
		for {
			select {
			case <-t.C:
				step()
			case <-quit:
				return
			case <-s.closing:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}
