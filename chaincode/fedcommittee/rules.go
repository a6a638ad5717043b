package fedcommittee

import (
	"fmt"
	"slices"
	"strings"
)

// Optional protocol rules fixed at publication. Each is a pointer in the
// ModelSpec and the Model: absent means the behaviour the contract had
// without the rule (any provider may submit, stop at maxRounds, no run-time
// changes, fixed committee).

// Allocation rules.
const (
	AllocAll        = "all"        // any provider may submit (default)
	AllocRandom     = "random"     // k registered providers drawn from the on-chain seed
	AllocReputation = "reputation" // top-k registered providers by reputation
)

// Governance policies.
const (
	PolicyMajority = "majority" // more than half of the listed orgs
	PolicyAll      = "all"      // every listed org
)

// Stop reasons recorded on a finished model.
const (
	StopTarget    = "target"
	StopPatience  = "patience"
	StopMaxRounds = "maxRounds"
	StopPublisher = "publisher"
)

// Rule limits.
const (
	MaxAllocation      = MaxScan // k and registered providers per model
	MaxGovernanceOrgs  = 16
	MaxHistogramBins   = 64
	MaxRotationPool    = MaxCommittee
	MaxDataRegistrants = MaxScan
)

// AllocationRule chooses which providers may submit to a round.
type AllocationRule struct {
	Rule string `json:"rule"`
	K    int64  `json:"k,omitempty"`
}

// StoppingRule ends a federated model before maxRounds. Target: the
// committee's median ConfirmAggregate score reaches it (>= when higher is
// better, <= otherwise). Patience: that many consecutive rounds without
// improving the best confirmed score by more than minDelta.
type StoppingRule struct {
	Target   *float64 `json:"target,omitempty"`
	Patience int64    `json:"patience,omitempty"`
	MinDelta float64  `json:"minDelta,omitempty"`
}

// GovernanceRule lists the orgs whose admins vote on run-time rule changes.
type GovernanceRule struct {
	Policy string   `json:"policy"`
	Orgs   []string `json:"orgs"`
}

// RotationRule draws the next round's committee from the best-scoring
// providers of the round just done, among the candidates listed (with their
// shards) at publication.
type RotationRule struct {
	Size       int64           `json:"size"`
	Candidates []CommitteeSeat `json:"candidates"`
}

// ModelProfile is what a publisher declares about a model so that the
// committee can judge it before approving it: what it is for, the kind of
// data it needs, how much training data it expects and how large the
// architecture is. Members compare it with the registry and with the data
// providers registered (RegisterData); the contract only bounds it.
type ModelProfile struct {
	Purpose         string `json:"purpose"`
	DataType        string `json:"dataType"`
	DataFormat      string `json:"dataFormat,omitempty"`
	TrainingSamples int64  `json:"trainingSamples"`
	Parameters      int64  `json:"parameters"`
}

// MaxParameters bounds a declared architecture size.
const MaxParameters = 1_000_000_000_000

// BestModel is the best committee-confirmed global model of a model.
type BestModel struct {
	Round  int64   `json:"round"`
	CID    string  `json:"cid"`
	SHA256 string  `json:"sha256"`
	Score  float64 `json:"score"`
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
		switch a.Rule {
		case AllocAll:
			if a.K != 0 {
				return fmt.Errorf("allocation.k: not used by rule all")
			}
		case AllocRandom, AllocReputation:
			if err := checkRange("allocation.k", a.K, 1, MaxAllocation); err != nil {
				return err
			}
		default:
			return fmt.Errorf("allocation.rule: %q is not one of all, random, reputation", a.Rule)
		}
	}
	if st := s.Stopping; st != nil {
		if !fed {
			return fmt.Errorf("stopping: only federated models stop by rule (gossip: FinishModel)")
		}
		if st.Target == nil && st.Patience == 0 {
			return fmt.Errorf("stopping: give a target, a patience, or both")
		}
		if st.Target != nil {
			if err := checkFinite("stopping.target", *st.Target); err != nil {
				return err
			}
			if *st.Target < s.Acceptance.ScoreMin || *st.Target > s.Acceptance.ScoreMax {
				return fmt.Errorf("stopping.target: %v is outside [scoreMin, scoreMax]", *st.Target)
			}
		}
		if err := checkRange("stopping.patience", st.Patience, 0, MaxRounds); err != nil {
			return err
		}
		if err := checkFinite("stopping.minDelta", st.MinDelta); err != nil {
			return err
		}
		if st.MinDelta < 0 || st.MinDelta > s.Acceptance.ScoreMax-s.Acceptance.ScoreMin {
			return fmt.Errorf("stopping.minDelta: %v must be in [0, scoreMax-scoreMin]", st.MinDelta)
		}
	}
	if g := s.Governance; g != nil {
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
		if err := checkSeats("rotation.candidates", r.Candidates); err != nil {
			return err
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

// reached reports whether score s meets the stopping target.
func reached(m *Model, s, target float64) bool {
	if m.Metric.HigherIsBetter {
		return s >= target
	}
	return s <= target
}

// improves reports whether score s beats best by more than minDelta.
func improves(m *Model, s, best, minDelta float64) bool {
	if m.Metric.HigherIsBetter {
		return s > best+minDelta
	}
	return s < best-minDelta
}
