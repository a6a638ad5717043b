package fedcommittee

import (
	"errors"
	"fmt"
	"strings"

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
	var in VerdictInput
	p, err := t.checkVerdict(who, updateID, func(*Model) error {
		return decodeStrict("SubmitVerdict input", input, &in)
	}, &in)
	if err != nil {
		return err
	}
	ev, err := t.applyVerdict(who, p)
	if err != nil {
		return err
	}
	return t.emit(ev, who.Key)
}

// maxBatchVerdicts bounds one SubmitVerdicts transaction (its read/write set
// grows with every verdict).
const maxBatchVerdicts = 256

// BatchVerdictInput is SubmitVerdicts' input: one member's verdicts on
// several updates of one model, e.g. every candidate of a round.
type BatchVerdictInput struct {
	Verdicts []BatchVerdict `json:"verdicts"`
}

// BatchVerdict is one verdict of a batch: VerdictInput plus the update it judges.
type BatchVerdict struct {
	UpdateID string   `json:"updateId"`
	Score    *float64 `json:"score"`
	Accept   *bool    `json:"accept"`
	Reason   string   `json:"reason"`
}

// BatchVerdictResult says what SubmitVerdicts did with each verdict.
type BatchVerdictResult struct {
	Recorded []string       `json:"recorded"`
	Skipped  []SkippedEntry `json:"skipped"`
}

// SkippedEntry is a verdict a batch left out, and why.
type SkippedEntry struct {
	UpdateID string `json:"updateId"`
	Reason   string `json:"reason"`
}

// SubmitVerdicts records several verdicts of the caller in one transaction,
// each under exactly SubmitVerdict's rules, so a member judging a round of n
// candidates commits once instead of n times. All updates must belong to one
// model and be distinct. A verdict that lost a race (the update was finalized
// by the other members' quorum meanwhile, or this member's verdict on it is
// already recorded) is skipped and named in the result; any other refusal
// fails the whole transaction, naming the verdict's index. One event,
// VerdictsSubmitted, carries the model, the count and the finalized updates.
func (c *Contract) SubmitVerdicts(ctx contractapi.TransactionContextInterface, input string) (*BatchVerdictResult, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return nil, err
	}
	var in BatchVerdictInput
	if err := decodeStrict("SubmitVerdicts input", input, &in); err != nil {
		return nil, err
	}
	if len(in.Verdicts) == 0 || len(in.Verdicts) > maxBatchVerdicts {
		return nil, fmt.Errorf("verdicts: need 1 to %d, got %d", maxBatchVerdicts, len(in.Verdicts))
	}
	// Check every verdict before writing any: a refused batch changes nothing.
	res := &BatchVerdictResult{Recorded: []string{}, Skipped: []SkippedEntry{}}
	seen := map[string]bool{}
	batch := Event{Type: EvVerdictsSubmitted}
	var todo []*pendingVerdict
	for i, bv := range in.Verdicts {
		if seen[bv.UpdateID] {
			return nil, fmt.Errorf("verdicts[%d]: update %s appears twice", i, bv.UpdateID)
		}
		seen[bv.UpdateID] = true
		v := VerdictInput{Score: bv.Score, Accept: bv.Accept, Reason: bv.Reason}
		p, err := t.checkVerdict(who, bv.UpdateID, func(m *Model) error {
			if batch.ModelID != "" && m.ID != batch.ModelID {
				return fmt.Errorf("update %s belongs to model %s, not %s: one model per batch", bv.UpdateID, m.ID, batch.ModelID)
			}
			batch.ModelID, batch.Mode = m.ID, m.Mode
			return nil
		}, &v)
		var race raceError
		if errors.As(err, &race) {
			res.Skipped = append(res.Skipped, SkippedEntry{UpdateID: bv.UpdateID, Reason: race.Error()})
			continue
		}
		if err != nil && strings.HasPrefix(err.Error(), "access denied") {
			// Access decisions read the same as SubmitVerdict's ("access denied: ..."), index last.
			return nil, fmt.Errorf("%w (verdicts[%d])", err, i)
		}
		if err != nil {
			return nil, fmt.Errorf("verdicts[%d]: %w", i, err)
		}
		todo = append(todo, p)
	}
	if len(todo) == 0 {
		return res, nil // every verdict lost its race: nothing changed, nothing to announce
	}
	for _, p := range todo {
		ev, err := t.applyVerdict(who, p)
		if err != nil {
			return nil, err
		}
		res.Recorded = append(res.Recorded, p.u.ID)
		if ev.Type == EvUpdateFinalized {
			batch.Finalized = append(batch.Finalized, p.u.ID)
		}
		if batch.Round == 0 || ev.Round < batch.Round {
			batch.Round = ev.Round
		}
	}
	batch.Count = int64(len(res.Recorded))
	return res, t.emit(batch, who.Key)
}

// raceError marks a verdict that arrived too late (its update is no longer
// pending, or this member already judged it): an outcome of concurrency, not
// bad input, so a batch skips it.
type raceError struct{ error }

// pendingVerdict is a verdict that passed every check, ready to be written.
type pendingVerdict struct {
	u     *Update
	m     *Model
	key   string
	in    *VerdictInput
	prior []Verdict
}

// checkVerdict checks one verdict of who on updateID against committed state
// and writes nothing. decode fills in (it runs after the update and model are
// loaded and who's membership checked, so access errors come before input
// errors). A verdict that lost a race comes back as a raceError.
func (t *txCtx) checkVerdict(who *caller, updateID string, decode func(*Model) error, in *VerdictInput) (*pendingVerdict, error) {
	if err := checkUpdateID("updateId", updateID); err != nil {
		return nil, err
	}
	u, err := t.loadUpdate(updateID)
	if err != nil {
		return nil, err
	}
	m, err := t.loadModel(u.ModelID)
	if err != nil {
		return nil, err
	}
	if err := t.requireMember(who, m); err != nil {
		return nil, err
	}
	if who.Key == u.Provider {
		return nil, fmt.Errorf("access denied: %s cannot judge its own update", who.Key)
	}
	if err := decode(m); err != nil {
		return nil, err
	}
	if in.Score == nil {
		return nil, fmt.Errorf("score: required")
	}
	if in.Accept == nil {
		return nil, fmt.Errorf("accept: required")
	}
	if err := checkScoreInRange(m, "score", *in.Score); err != nil {
		return nil, err
	}
	if err := checkText("reason", in.Reason); err != nil {
		return nil, err
	}
	if u.Status != UpdatePending {
		return nil, raceError{fmt.Errorf("update %s is %s, not pending: verdicts are closed", u.ID, u.Status)}
	}
	vk, err := t.absentKey(
		raceError{fmt.Errorf("member %s has already submitted a verdict on update %s", who.Key, u.ID)},
		keyVerdict, u.ID, who.Key)
	if err != nil {
		return nil, err
	}
	// Read the earlier verdicts now: reads see committed state only.
	prior, err := t.verdicts(u.ID)
	if err != nil {
		return nil, err
	}
	return &pendingVerdict{u: u, m: m, key: vk, in: in, prior: prior}, nil
}

// applyVerdict writes a checked verdict, credits the member, finalizes the
// update at quorum, and returns the event that announces it.
func (t *txCtx) applyVerdict(who *caller, p *pendingVerdict) (Event, error) {
	u, m, in := p.u, p.m, p.in
	v := Verdict{UpdateID: u.ID, ModelID: m.ID, Member: who.Key, Score: *in.Score, Accept: *in.Accept,
		Reason: in.Reason, TxID: t.txID, Timestamp: t.now}
	if err := t.putJSON(p.key, &v); err != nil {
		return Event{}, err
	}
	if err := t.credit(m, who.Key, func(a *Account, e *RewardEntry) {
		a.Verdicts++
		e.Verdicts++
		a.Rewards += m.RewardRules.VerdictReward
		e.Rewards += m.RewardRules.VerdictReward
	}); err != nil {
		return Event{}, err
	}
	u.VerdictCount++
	if v.Accept {
		u.AcceptVotes++
	}
	if u.VerdictCount < m.Quorum {
		if err := t.saveUpdate(u); err != nil {
			return Event{}, err
		}
		return Event{Type: EvVerdictSubmitted, ModelID: m.ID, Mode: m.Mode, Round: u.Round, UpdateID: u.ID,
			Status: u.Status, Count: u.VerdictCount, Quorum: m.Quorum, Provider: u.Provider,
			CID: u.CID, SHA256: u.SHA256}, nil
	}
	if err := t.finalize(m, u, append(p.prior, v)); err != nil {
		return Event{}, err
	}
	return Event{Type: EvUpdateFinalized, ModelID: m.ID, Mode: m.Mode, Round: u.Round, UpdateID: u.ID,
		Status: u.Status, Score: u.MedianScore, Count: u.VerdictCount, Quorum: m.Quorum, Provider: u.Provider,
		CID: u.CID, SHA256: u.SHA256, Parents: u.Parents, Reward: u.Reward, Penalty: u.Penalty}, nil
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
