package salesforcesim

import (
	"fmt"
	"slices"
)

// TurnOff ends a behavioural profile on the running org, as its admin would fix what the
// profile models: ProfileAutomation's validation rule, trigger and CPU-heavy rollup are
// deactivated (Setup → Apex Triggers, Validation Rules: a trigger is switched off by its
// Active flag, help.salesforce.com "Manage Apex Triggers"), and ProfileDirty's other writer
// stops creating Contacts. The profiles that reshape the schema cannot be turned off at run
// time, nor can a CPULimitRecords the Config set itself; asking is an error.
func (s *Sim) TurnOff(profile string) error {
	if profile != ProfileAutomation && profile != ProfileDirty {
		return fmt.Errorf("salesforcesim: profile %q cannot be turned off on a running org; only %s and %s can", profile, ProfileAutomation, ProfileDirty)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.has(profile) {
		return fmt.Errorf("salesforcesim: profile %q is not on", profile)
	}
	s.cfg.Profiles = slices.DeleteFunc(slices.Clone(s.cfg.Profiles), func(p string) bool { return p == profile })
	if profile == ProfileAutomation && s.cfg.CPULimitRecords == defaultCPULimitRecords {
		s.cfg.CPULimitRecords = 0
	}
	return nil
}
