package fedcommittee

import (
	"fmt"
	"slices"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// PublishModel records a model proposal (status "proposed"). input is a
// ModelSpec JSON document. The committee must approve it before any update
// can be submitted.
func (c *Contract) PublishModel(ctx contractapi.TransactionContextInterface, input string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return "", err
	}
	if err := t.requireRole(who, RolePublisher); err != nil {
		return "", err
	}
	var spec ModelSpec
	if err := decodeStrict("PublishModel input", input, &spec); err != nil {
		return "", err
	}
	if err := validateSpec(&spec); err != nil {
		return "", err
	}
	if err := validateRules(&spec); err != nil {
		return "", err
	}
	// Every seat must be held by a current committee role holder.
	for i, s := range spec.Committee {
		ok, err := t.hasRole(s.Member, RoleCommittee)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("committee[%d].member: %s does not hold the committee role", i, s.Member)
		}
	}
	if spec.Rotation != nil {
		for i, s := range spec.Rotation.Candidates {
			ok, err := t.hasRole(s.Member, RoleCommittee)
			if err != nil {
				return "", err
			}
			if !ok {
				return "", fmt.Errorf("rotation.candidates[%d].member: %s does not hold the committee role", i, s.Member)
			}
		}
	}
	mk, err := t.absentKey(fmt.Errorf("modelId: model %s already exists", spec.ModelID), keyModel, spec.ModelID)
	if err != nil {
		return "", err
	}
	m := Model{
		DocType: "model", ID: spec.ModelID, Publisher: who.Key,
		Architecture: spec.Architecture, SpecSHA256: spec.SpecSHA256,
		InitialWeights: spec.InitialWeights, Metric: spec.Metric,
		Acceptance: spec.Acceptance, Quorum: spec.Quorum, Committee: spec.Committee,
		Mode: spec.Mode, RoundRules: spec.RoundRules, RewardRules: spec.RewardRules,
		Status: ModelProposed, CreatedTx: t.txID, CreatedAt: t.now, UpdatedAt: t.now,
		Allocation: spec.Allocation, Stopping: spec.Stopping, Governance: spec.Governance, Rotation: spec.Rotation,
		Profile: spec.Profile,
	}
	if m.Allocation != nil && m.Allocation.Rule == AllocRandom {
		m.AllocationSeed = t.txID
	}
	if err := t.putJSON(mk, &m); err != nil {
		return "", err
	}
	if err := t.emit(Event{Type: EvModelProposed, ModelID: m.ID, Mode: m.Mode, Status: m.Status,
		CID: m.InitialWeights.CID, SHA256: m.InitialWeights.SHA256,
		Committee: committeeKeys(&m), Quorum: m.Quorum}, who.Key); err != nil {
		return "", err
	}
	return toJSON(&m)
}

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

// ApproveModel records the caller's approval of a proposed model. score is
// the member's score of the initial weights on its own shard; the median of
// the approving scores becomes the baseline for the "improvement" rule.
func (c *Contract) ApproveModel(ctx contractapi.TransactionContextInterface, modelID, score string) error {
	return voteOnModel(ctx, modelID, true, score, "")
}

// RejectModel records the caller's rejection of a proposed model with a reason.
func (c *Contract) RejectModel(ctx contractapi.TransactionContextInterface, modelID, reason string) error {
	return voteOnModel(ctx, modelID, false, "", reason)
}

func voteOnModel(ctx contractapi.TransactionContextInterface, modelID string, approve bool, scoreArg, reason string) error {
	t, err := newTx(ctx)
	if err != nil {
		return err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return err
	}
	m, err := t.loadModel(modelID)
	if err != nil {
		return err
	}
	if err := t.requireMember(who, m); err != nil {
		return err
	}
	if m.Status != ModelProposed {
		return fmt.Errorf("model %s is %s, not proposed: votes are closed", m.ID, m.Status)
	}
	v := ModelVote{ModelID: m.ID, Member: who.Key, Approve: approve, TxID: t.txID, Timestamp: t.now}
	if approve {
		s, err := parseScoreArg(scoreArg)
		if err != nil {
			return err
		}
		if err := checkScoreInRange(m, "score", s); err != nil {
			return err
		}
		v.Score = &s
	} else {
		if reason == "" {
			return fmt.Errorf("reason: required when rejecting a model")
		}
		if err := checkText("reason", reason); err != nil {
			return err
		}
		v.Reason = reason
	}
	vk, err := t.absentKey(
		fmt.Errorf("member %s has already voted on model %s", who.Key, m.ID),
		keyModelVote, m.ID, who.Key)
	if err != nil {
		return err
	}
	if err := t.putJSON(vk, &v); err != nil {
		return err
	}
	ev := Event{Type: EvModelVote, ModelID: m.ID, Mode: m.Mode, Quorum: m.Quorum}
	n := int64(len(m.Committee))
	if approve {
		m.Approvals++
		ev.Count = m.Approvals
	} else {
		m.Rejections++
		ev.Count = m.Rejections
	}
	switch {
	case m.Approvals >= m.Quorum:
		// Reads see committed state only, so add this transaction's own score.
		scores, err := t.approvalScores(m.ID)
		if err != nil {
			return err
		}
		med := median(append(scores, *v.Score))
		m.Baseline = &med
		m.Status = ModelActive
		ev.Type, ev.Score = EvModelActivated, &med
		g := m.InitialWeights
		m.Global = &g
		if m.Stopping != nil {
			m.Best = &BestModel{Round: 0, CID: g.CID, SHA256: g.SHA256, Score: med}
		}
		if m.Mode == ModeFederated {
			r, err := t.openRound(m, 1, g)
			if err != nil {
				return err
			}
			ev.Round, ev.Deadline, ev.Allocated = r.Number, r.Deadline, r.Allocated
		}
		ev.CID, ev.SHA256 = g.CID, g.SHA256
	case m.Rejections >= m.Quorum || m.Rejections > n-m.Quorum:
		// Rejected once quorum rejects, or once approval can no longer reach quorum.
		m.Status = ModelRejected
		ev.Type = EvModelRejected
	}
	ev.Status = m.Status
	m.UpdatedAt = t.now
	if err := t.saveModel(m); err != nil {
		return err
	}
	return t.emit(ev, who.Key)
}

// approvalScores reads the approving votes (bounded by the committee size).
func (t *txCtx) approvalScores(modelID string) ([]float64, error) {
	entries, err := t.scan(keyModelVote, []string{modelID}, MaxCommittee)
	if err != nil {
		return nil, err
	}
	var scores []float64
	for _, e := range entries {
		var v ModelVote
		if err := jsonUnmarshal(e.Value, &v); err != nil {
			return nil, err
		}
		if v.Approve && v.Score != nil {
			scores = append(scores, *v.Score)
		}
	}
	return scores, nil
}

// FinishModel ends a gossip model: the publisher names the accepted update
// that is the final model. (Federated models finish after their last round.)
func (c *Contract) FinishModel(ctx contractapi.TransactionContextInterface, modelID, updateID string) error {
	t, err := newTx(ctx)
	if err != nil {
		return err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return err
	}
	m, err := t.loadModel(modelID)
	if err != nil {
		return err
	}
	if who.Key != m.Publisher {
		return fmt.Errorf("access denied: only the publisher of model %s may finish it", m.ID)
	}
	if m.Mode != ModeGossip {
		return fmt.Errorf("model %s is federated: it finishes after its last round", m.ID)
	}
	if m.Status != ModelActive {
		return fmt.Errorf("model %s is %s, not active", m.ID, m.Status)
	}
	if err := checkUpdateID("updateId", updateID); err != nil {
		return err
	}
	u, err := t.loadUpdate(updateID)
	if err != nil {
		return err
	}
	if u.ModelID != m.ID || u.Status != UpdateAccepted {
		return fmt.Errorf("update %s is not an accepted update of model %s", u.ID, m.ID)
	}
	final := ObjectRef{CID: u.CID, SHA256: u.SHA256}
	m.Status, m.Final, m.FinalUpdate, m.Global, m.UpdatedAt = ModelFinished, &final, u.ID, &final, t.now
	m.StopReason = StopPublisher
	if err := t.saveModel(m); err != nil {
		return err
	}
	return t.emit(Event{Type: EvModelFinished, ModelID: m.ID, Mode: m.Mode, Status: m.Status,
		UpdateID: u.ID, CID: final.CID, SHA256: final.SHA256, Score: u.MedianScore, Reason: m.StopReason}, who.Key)
}

func (t *txCtx) loadModel(modelID string) (*Model, error) {
	if err := checkModelID(modelID); err != nil {
		return nil, err
	}
	return mustLoad[Model](t, "model "+modelID, keyModel, modelID)
}

func (t *txCtx) saveModel(m *Model) error {
	k, err := t.key(keyModel, m.ID)
	if err != nil {
		return err
	}
	return t.putJSON(k, m)
}

func committeeKeys(m *Model) []string {
	out := make([]string, len(m.Committee))
	for i, s := range m.Committee {
		out[i] = s.Member
	}
	return out
}

func isMember(m *Model, identity string) bool {
	return slices.ContainsFunc(m.Committee, func(s CommitteeSeat) bool { return s.Member == identity })
}

// requireMember: the caller must sit on this model's committee and still
// hold the committee role.
func (t *txCtx) requireMember(who *caller, m *Model) error {
	if !isMember(m, who.Key) {
		return fmt.Errorf("access denied: caller %s is not on the committee of model %s", who.Key, m.ID)
	}
	return t.requireRole(who, RoleCommittee)
}

// median of a non-empty list: the middle value, or the mean of the two
// middle values; the input is sorted in place, so the result is the same on
// every peer.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
