package skilljarsim

import (
	"reflect"
	"testing"
)

// Live changes extend the index in place; it must stay what rebuilding from the data gives,
// or the API and Org() copies would disagree on list order.
func TestLiveChangesKeepTheIndexEqualToARebuild(t *testing.T) {
	s := New(Config{Seed: 5, Users: 300})
	defer s.Close()
	s.ChangeLearners(0.5)
	for range 200 {
		s.liveStep()
	}
	l := s.AddLearner("internal.example.com", "learn.example.com")
	s.Enroll(l.ID, s.org.PublishedCourses[0].ID)
	s.Enroll(l.ID, s.org.PublishedCourses[0].ID)

	s.mu.RLock()
	defer s.mu.RUnlock()
	if !reflect.DeepEqual(s.org.idx, buildIndex(&s.org)) {
		t.Error("the live index differs from a rebuild")
	}
}
