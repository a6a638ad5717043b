package fedcommittee

import (
	"fmt"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// SubmitVerdict records the caller's verdict on a pending update. input is a
// VerdictInput JSON document: {"score": number, "accept": bool, "reason": ""}.
// Only members of the update's model committee may vote, once each, and not
// on their own update. The verdict that reaches quorum finalizes the update.
func (c *Contract) SubmitVerdict(ctx contractapi.TransactionContextInterface, updateID, input string) error {
	t, err := newTx(ctx)
	if err != nil {
		return err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return err
	}
	if err := checkUpdateID("updateId", updateID); err != nil {
		return err
	}
	u, err := t.loadUpdate(updateID)
	if err != nil {
		return err
	}
	m, err := t.loadModel(u.ModelID)
	if err != nil {
		return err
	}
	if err := t.requireMember(who, m); err != nil {
		return err
	}
	if who.Key == u.Provider {
		return fmt.Errorf("access denied: %s cannot judge its own update", who.Key)
	}
	var in VerdictInput
	if err := decodeStrict("SubmitVerdict input", input, &in); err != nil {
		return err
	}
	if in.Score == nil {
		return fmt.Errorf("score: required")
	}
	if in.Accept == nil {
		return fmt.Errorf("accept: required")
	}
	if err := checkScoreInRange(m, "score", *in.Score); err != nil {
		return err
	}
	if err := checkText("reason", in.Reason); err != nil {
		return err
	}
	if u.Status != UpdatePending {
		return fmt.Errorf("update %s is %s, not pending: verdicts are closed", u.ID, u.Status)
	}
	vk, err := t.absentKey(
		fmt.Errorf("member %s has already submitted a verdict on update %s", who.Key, u.ID),
		keyVerdict, u.ID, who.Key)
	if err != nil {
		return err
	}
	// Read the earlier verdicts now: reads see committed state only.
	prior, err := t.verdicts(u.ID)
	if err != nil {
		return err
	}
	v := Verdict{UpdateID: u.ID, ModelID: m.ID, Member: who.Key, Score: *in.Score, Accept: *in.Accept,
		Reason: in.Reason, TxID: t.txID, Timestamp: t.now}
	if err := t.putJSON(vk, &v); err != nil {
		return err
	}
	if err := t.credit(m, who.Key, func(a *Account, e *RewardEntry) {
		a.Verdicts++
		e.Verdicts++
		a.Rewards += m.RewardRules.VerdictReward
		e.Rewards += m.RewardRules.VerdictReward
	}); err != nil {
		return err
	}
	u.VerdictCount++
	if v.Accept {
		u.AcceptVotes++
	}
	if u.VerdictCount < m.Quorum {
		if err := t.saveUpdate(u); err != nil {
			return err
		}
		return t.emit(Event{Type: EvVerdictSubmitted, ModelID: m.ID, Mode: m.Mode, Round: u.Round, UpdateID: u.ID,
			Status: u.Status, Count: u.VerdictCount, Quorum: m.Quorum, Provider: u.Provider,
			CID: u.CID, SHA256: u.SHA256}, who.Key)
	}
	if err := t.finalize(m, u, append(prior, v)); err != nil {
		return err
	}
	return t.emit(Event{Type: EvUpdateFinalized, ModelID: m.ID, Mode: m.Mode, Round: u.Round, UpdateID: u.ID,
		Status: u.Status, Score: u.MedianScore, Count: u.VerdictCount, Quorum: m.Quorum, Provider: u.Provider,
		CID: u.CID, SHA256: u.SHA256, Parents: u.Parents, Reward: u.Reward, Penalty: u.Penalty}, who.Key)
}

// finalize decides an update from its quorum of verdicts, credits the
// provider, and indexes accepted updates for round closing / parent choice.
func (t *txCtx) finalize(m *Model, u *Update, vs []Verdict) error {
	scores := make([]float64, len(vs))
	for i, v := range vs {
		scores[i] = v.Score
	}
	med := median(scores)
	u.MedianScore = &med
	accepted := decide(m, u, med)
	u.FinalizedAt, u.FinalizedTx = t.now, t.txID
	if accepted {
		u.Status, u.Reward = UpdateAccepted, m.RewardRules.AcceptReward
	} else {
		// Rejected updates (free riders included) earn nothing and may pay a penalty.
		u.Status, u.Penalty = UpdateRejected, m.RewardRules.RejectPenalty
	}
	if err := t.saveUpdate(u); err != nil {
		return err
	}
	if accepted {
		ak, err := t.key(keyAccepted, m.ID, roundAttr(u.Round), u.ID)
		if err != nil {
			return err
		}
		if err := t.putJSON(ak, u); err != nil {
			return err
		}
	}
	return t.credit(m, u.Provider, func(a *Account, e *RewardEntry) {
		if accepted {
			a.Accepted++
			e.Accepted++
		} else {
			a.Rejected++
			e.Rejected++
		}
		a.Rewards += u.Reward
		e.Rewards += u.Reward
		a.Penalties += u.Penalty
		e.Penalties += u.Penalty
	})
}

// decide applies the model's acceptance rule to the median score.
func decide(m *Model, u *Update, med float64) bool {
	a := m.Acceptance
	switch a.Rule {
	case RuleThreshold:
		return med == *a.Threshold || better(m, med, *a.Threshold)
	case RuleImprovement:
		base := a.ScoreMin
		if !m.Metric.HigherIsBetter {
			base = a.ScoreMax
		}
		if u.Baseline != nil {
			base = *u.Baseline
		}
		if m.Metric.HigherIsBetter {
			return med >= base+*a.MinDelta
		}
		return med <= base-*a.MinDelta
	default: // RuleMajority
		return u.AcceptVotes*2 > u.VerdictCount
	}
}

// credit applies f to identity's account and its per-model reward entry and
// recomputes reputation.
func (t *txCtx) credit(m *Model, identity string, f func(*Account, *RewardEntry)) error {
	a, _, err := t.loadAccount(identity)
	if err != nil {
		return err
	}
	ek, err := t.key(keyReward, m.ID, identity)
	if err != nil {
		return err
	}
	var e RewardEntry
	found, err := t.getJSON(ek, &e)
	if err != nil {
		return err
	}
	if !found {
		e = RewardEntry{DocType: "reward", ModelID: m.ID, Identity: identity}
	}
	f(a, &e)
	a.Reputation = reputation(a.Accepted, a.Rejected)
	e.Reputation = reputation(e.Accepted, e.Rejected)
	e.Net = e.Rewards - e.Penalties
	if err := t.saveAccount(a); err != nil {
		return err
	}
	return t.putJSON(ek, &e)
}

func (t *txCtx) saveUpdate(u *Update) error {
	k, err := t.key(keyUpdate, u.ID)
	if err != nil {
		return err
	}
	return t.putJSON(k, u)
}

// verdicts returns the committed verdicts of an update in member order
// (bounded by the committee size).
func (t *txCtx) verdicts(updateID string) ([]Verdict, error) {
	entries, err := t.scan(keyVerdict, []string{updateID}, MaxCommittee)
	if err != nil {
		return nil, err
	}
	out := make([]Verdict, 0, len(entries))
	for _, e := range entries {
		var v Verdict
		if err := jsonUnmarshal(e.Value, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
