package fedcommittee

import (
	"fmt"
	"slices"
	"strings"
)

// Checks of the PublishModel spec: every field bounded, every rule coherent.

func validateSpec(s *ModelSpec) error {
	if err := checkModelID(s.ModelID); err != nil {
		return err
	}
	if err := checkName("architecture.name", s.Architecture.Name); err != nil {
		return err
	}
	if err := checkName("architecture.version", s.Architecture.Version); err != nil {
		return err
	}
	if err := checkSHA256("specSha256", s.SpecSHA256); err != nil {
		return err
	}
	if err := checkObjectRef("initialWeights", s.InitialWeights); err != nil {
		return err
	}
	if err := checkName("metric.name", s.Metric.Name); err != nil {
		return err
	}
	if err := validateAcceptance(&s.Acceptance); err != nil {
		return err
	}
	if n := len(s.Committee); n < 1 || n > MaxCommittee {
		return fmt.Errorf("committee: %d members, must be 1..%d", n, MaxCommittee)
	}
	seen := map[string]bool{}
	for i, seat := range s.Committee {
		f := fmt.Sprintf("committee[%d]", i)
		if _, err := checkIdentityKey(f+".member", seat.Member); err != nil {
			return err
		}
		if seen[seat.Member] {
			return fmt.Errorf("%s.member: %s is listed twice", f, seat.Member)
		}
		seen[seat.Member] = true
		if err := checkCID(f+".shardCid", seat.ShardCID); err != nil {
			return err
		}
		if err := checkSHA256(f+".shardSha256", seat.ShardSHA256); err != nil {
			return err
		}
	}
	if err := checkRange("quorum", s.Quorum, 1, int64(len(s.Committee))); err != nil {
		return err
	}
	r := s.RoundRules
	switch s.Mode {
	case ModeFederated:
		if err := checkRange("roundRules.minAccepted", r.MinAccepted, 1, MaxMinAccepted); err != nil {
			return err
		}
		if err := checkRange("roundRules.deadlineSeconds", r.DeadlineSeconds, 1, MaxDeadlineSeconds); err != nil {
			return err
		}
		if err := checkRange("roundRules.maxRounds", r.MaxRounds, 1, MaxRounds); err != nil {
			return err
		}
		if r.MaxParents != 0 {
			return fmt.Errorf("roundRules.maxParents: must be 0 in federated mode")
		}
	case ModeGossip:
		if err := checkRange("roundRules.maxParents", r.MaxParents, 1, MaxParents); err != nil {
			return err
		}
		if r.MinAccepted != 0 || r.DeadlineSeconds != 0 || r.MaxRounds != 0 {
			return fmt.Errorf("roundRules: minAccepted, deadlineSeconds and maxRounds must be 0 in gossip mode")
		}
	default:
		return fmt.Errorf("mode: %q is not one of federated, gossip", s.Mode)
	}
	w := s.RewardRules
	if err := checkRange("rewardRules.acceptReward", w.AcceptReward, 0, MaxRewardValue); err != nil {
		return err
	}
	if err := checkRange("rewardRules.rejectPenalty", w.RejectPenalty, 0, MaxRewardValue); err != nil {
		return err
	}
	return checkRange("rewardRules.verdictReward", w.VerdictReward, 0, MaxRewardValue)
}

func validateAcceptance(a *Acceptance) error {
	if err := checkFinite("acceptance.scoreMin", a.ScoreMin); err != nil {
		return err
	}
	if err := checkFinite("acceptance.scoreMax", a.ScoreMax); err != nil {
		return err
	}
	if a.ScoreMin >= a.ScoreMax {
		return fmt.Errorf("acceptance: scoreMin %v must be below scoreMax %v", a.ScoreMin, a.ScoreMax)
	}
	switch a.Rule {
	case RuleThreshold:
		if a.Threshold == nil {
			return fmt.Errorf("acceptance.threshold: required by rule threshold")
		}
		if *a.Threshold < a.ScoreMin || *a.Threshold > a.ScoreMax {
			return fmt.Errorf("acceptance.threshold: %v is outside [scoreMin, scoreMax]", *a.Threshold)
		}
		if a.MinDelta != nil {
			return fmt.Errorf("acceptance.minDelta: not used by rule threshold")
		}
	case RuleImprovement:
		if a.MinDelta == nil {
			return fmt.Errorf("acceptance.minDelta: required by rule improvement")
		}
		if err := checkFinite("acceptance.minDelta", *a.MinDelta); err != nil {
			return err
		}
		if *a.MinDelta < 0 || *a.MinDelta > a.ScoreMax-a.ScoreMin {
			return fmt.Errorf("acceptance.minDelta: %v must be in [0, scoreMax-scoreMin]", *a.MinDelta)
		}
		if a.Threshold != nil {
			return fmt.Errorf("acceptance.threshold: not used by rule improvement")
		}
	case RuleMajority:
		if a.Threshold != nil || a.MinDelta != nil {
			return fmt.Errorf("acceptance: rule majority takes no threshold or minDelta")
		}
	default:
		return fmt.Errorf("acceptance.rule: %q is not one of threshold, improvement, majority", a.Rule)
	}
	return nil
}

// validateRules checks the optional rule objects of a spec.
func validateRules(s *ModelSpec) error {
	fed := s.Mode == ModeFederated
	if p := s.Profile; p != nil {
		if err := validateProfile(p); err != nil {
			return err
		}
	}
	if a := s.Allocation; a != nil {
		if !fed {
			return fmt.Errorf("allocation: only federated models have rounds to allocate")
		}
		if err := validateAllocation(a); err != nil {
			return err
		}
	}
	if st := s.Stopping; st != nil {
		if !fed {
			return fmt.Errorf("stopping: only federated models stop by rule (gossip: FinishModel)")
		}
		if err := validateStopping(st, &s.Acceptance); err != nil {
			return err
		}
	}
	if g := s.Governance; g != nil {
		if err := validateGovernance(g); err != nil {
			return err
		}
	}
	if r := s.Rotation; r != nil {
		if !fed {
			return fmt.Errorf("rotation: only federated models have rounds to rotate the committee after")
		}
		if n := len(r.Candidates); n < 1 || n > MaxRotationPool {
			return fmt.Errorf("rotation.candidates: %d candidates, must be 1..%d", n, MaxRotationPool)
		}
		if err := checkRange("rotation.size", r.Size, s.Quorum, MaxCommittee); err != nil {
			return fmt.Errorf("%v (size must be at least the quorum)", err)
		}
		return checkSeats("rotation.candidates", r.Candidates)
	}
	return nil
}

func validateAllocation(a *AllocationRule) error {
	switch a.Rule {
	case AllocAll:
		if a.K != 0 {
			return fmt.Errorf("allocation.k: not used by rule all")
		}
		return nil
	case AllocRandom, AllocReputation:
		return checkRange("allocation.k", a.K, 1, MaxAllocation)
	}
	return fmt.Errorf("allocation.rule: %q is not one of all, random, reputation", a.Rule)
}

func validateStopping(st *StoppingRule, acc *Acceptance) error {
	if st.Target == nil && st.Patience == 0 {
		return fmt.Errorf("stopping: give a target, a patience, or both")
	}
	if st.Target != nil {
		if err := checkFinite("stopping.target", *st.Target); err != nil {
			return err
		}
		if *st.Target < acc.ScoreMin || *st.Target > acc.ScoreMax {
			return fmt.Errorf("stopping.target: %v is outside [scoreMin, scoreMax]", *st.Target)
		}
	}
	if err := checkRange("stopping.patience", st.Patience, 0, MaxRounds); err != nil {
		return err
	}
	if err := checkFinite("stopping.minDelta", st.MinDelta); err != nil {
		return err
	}
	if st.MinDelta < 0 || st.MinDelta > acc.ScoreMax-acc.ScoreMin {
		return fmt.Errorf("stopping.minDelta: %v must be in [0, scoreMax-scoreMin]", st.MinDelta)
	}
	return nil
}

func validateGovernance(g *GovernanceRule) error {
	if g.Policy != PolicyMajority && g.Policy != PolicyAll {
		return fmt.Errorf("governance.policy: %q is not one of majority, all", g.Policy)
	}
	if n := len(g.Orgs); n < 1 || n > MaxGovernanceOrgs {
		return fmt.Errorf("governance.orgs: %d orgs, must be 1..%d", n, MaxGovernanceOrgs)
	}
	for i, o := range g.Orgs {
		if !mspIDRe.MatchString(o) {
			return fmt.Errorf("governance.orgs[%d]: %q is not an MSP id", i, o)
		}
		if slices.Contains(g.Orgs[:i], o) {
			return fmt.Errorf("governance.orgs[%d]: %s is listed twice", i, o)
		}
	}
	return nil
}

func validateProfile(p *ModelProfile) error {
	if strings.TrimSpace(p.Purpose) == "" {
		return fmt.Errorf("profile.purpose: must say what the model is for")
	}
	if err := checkText("profile.purpose", p.Purpose); err != nil {
		return err
	}
	if err := checkName("profile.dataType", p.DataType); err != nil {
		return err
	}
	if p.DataFormat != "" {
		if err := checkName("profile.dataFormat", p.DataFormat); err != nil {
			return err
		}
	}
	if err := checkRange("profile.trainingSamples", p.TrainingSamples, 1, MaxSamples); err != nil {
		return err
	}
	return checkRange("profile.parameters", p.Parameters, 1, MaxParameters)
}

// checkSeats validates a list of committee seats (identity keys, no
// duplicates, shard references).
func checkSeats(field string, seats []CommitteeSeat) error {
	for i, seat := range seats {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := checkSeat(f, seat); err != nil {
			return err
		}
		if slices.ContainsFunc(seats[:i], func(o CommitteeSeat) bool { return o.Member == seat.Member }) {
			return fmt.Errorf("%s.member: %s is listed twice", f, seat.Member)
		}
	}
	return nil
}

func checkSeat(f string, seat CommitteeSeat) error {
	if _, err := checkIdentityKey(f+".member", seat.Member); err != nil {
		return err
	}
	if err := checkCID(f+".shardCid", seat.ShardCID); err != nil {
		return err
	}
	return checkSHA256(f+".shardSha256", seat.ShardSHA256)
}
