package fedcommittee

import (
	"errors"
	"fmt"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// SubmitVerdict records the caller's verdict on a pending update. input is a
// VerdictInput JSON document: {"score": number, "accept": bool, "reason": ""}.
// Only members of the update's model committee may vote, once each, and not
// on their own update. The verdict that reaches quorum finalizes the update.
func (c *Contract) SubmitVerdict(ctx contractapi.TransactionContextInterface, updateID, input string) error {
	return run(ctx, nil, func(t *txCtx) error {
		var in VerdictInput
		p, err := t.checkVerdict(updateID, func(*Model) error {
			return decodeStrict("SubmitVerdict input", input, &in)
		}, &in)
		if err != nil {
			return err
		}
		ev, err := t.applyVerdict(p)
		if err != nil {
			return err
		}
		return t.emit(ev)
	})
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
	Quality  *float64 `json:"quality,omitempty"`
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
	var in BatchVerdictInput
	return perform(ctx, true, opening{decoded("SubmitVerdicts input", input, &in), valid(func() error {
		if n := len(in.Verdicts); n == 0 || n > maxBatchVerdicts {
			return fmt.Errorf("verdicts: need 1 to %d, got %d", maxBatchVerdicts, n)
		}
		return nil
	})}, func(t *txCtx) (*BatchVerdictResult, error) { return t.submitVerdicts(in.Verdicts) })
}

func (t *txCtx) submitVerdicts(verdicts []BatchVerdict) (*BatchVerdictResult, error) {
	res := &BatchVerdictResult{Recorded: []string{}, Skipped: []SkippedEntry{}}
	batch := Event{Type: EvVerdictsSubmitted}
	todo, err := t.checkBatch(verdicts, res, &batch)
	if err != nil || len(todo) == 0 {
		return res, err // every verdict lost its race: nothing changed, nothing to announce
	}
	for _, p := range todo {
		ev, err := t.applyVerdict(p)
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
	return res, t.emit(batch)
}

// checkBatch checks every verdict of a batch before any is written, so a
// refused batch changes nothing. Verdicts that lost a race go to
// res.Skipped; the model of the batch goes to batch.
func (t *txCtx) checkBatch(verdicts []BatchVerdict, res *BatchVerdictResult, batch *Event) ([]*pendingVerdict, error) {
	seen := map[string]bool{}
	var todo []*pendingVerdict
	for i, bv := range verdicts {
		if seen[bv.UpdateID] {
			return nil, fmt.Errorf("verdicts[%d]: update %s appears twice", i, bv.UpdateID)
		}
		seen[bv.UpdateID] = true
		v := VerdictInput{Score: bv.Score, Accept: bv.Accept, Reason: bv.Reason, Quality: bv.Quality}
		p, err := t.checkVerdict(bv.UpdateID, func(m *Model) error {
			if batch.ModelID != "" && m.ID != batch.ModelID {
				return fmt.Errorf("update %s belongs to model %s, not %s: one model per batch", bv.UpdateID, m.ID, batch.ModelID)
			}
			batch.ModelID, batch.Mode = m.ID, m.Mode
			return nil
		}, &v)
		switch {
		case lostRace(err):
			res.Skipped = append(res.Skipped, SkippedEntry{UpdateID: bv.UpdateID, Reason: err.Error()})
			continue
		case errors.Is(err, errDenied):
			// Access decisions read the same as SubmitVerdict's ("access denied: ..."), index last.
			return nil, fmt.Errorf("%w (verdicts[%d])", err, i)
		case err != nil:
			return nil, fmt.Errorf("verdicts[%d]: %w", i, err)
		}
		todo = append(todo, p)
	}
	return todo, nil
}

// lostRace reports a verdict that arrived too late: checkVerdict's only
// state and duplicate refusals are "the update is no longer pending" and
// "this member already judged it", outcomes of concurrency rather than bad
// input, so a batch skips them.
func lostRace(err error) bool {
	return errors.Is(err, errState) || errors.Is(err, errDuplicate)
}

// pendingVerdict is a verdict that passed every check, ready to be written.
type pendingVerdict struct {
	u     *Update
	m     *Model
	in    *VerdictInput
	prior []Verdict
}

// checkVerdict checks one verdict of the caller on updateID against
// committed state and writes nothing. decode fills in (it runs after the
// update and model are loaded and the caller's membership checked, so access
// errors come before input errors).
func (t *txCtx) checkVerdict(updateID string, decode func(*Model) error, in *VerdictInput) (*pendingVerdict, error) {
	who := t.who
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
		return nil, denied("%s cannot judge its own update", who.Key)
	}
	if err := decode(m); err != nil {
		return nil, err
	}
	if err := in.check(m); err != nil {
		return nil, err
	}
	if u.Status != UpdatePending {
		return nil, wrongState("update %s is %s, not pending: verdicts are closed", u.ID, u.Status)
	}
	if err := t.absent(verdictKey(u.ID, who.Key),
		duplicate("member %s has already submitted a verdict on update %s", who.Key, u.ID)); err != nil {
		return nil, err
	}
	// Read the earlier verdicts now: reads see committed state only.
	prior, err := t.verdicts(u.ID)
	if err != nil {
		return nil, err
	}
	return &pendingVerdict{u: u, m: m, in: in, prior: prior}, nil
}

func (in *VerdictInput) check(m *Model) error {
	if in.Score == nil {
		return fmt.Errorf("score: required")
	}
	if in.Accept == nil {
		return fmt.Errorf("accept: required")
	}
	if err := checkScoreInRange(m, "score", *in.Score); err != nil {
		return err
	}
	if q := in.Quality; q != nil && !(*q >= 0 && *q <= 1) { // NaN fails both
		return fmt.Errorf("quality: %v is outside [0, 1]", *q)
	}
	return checkText("reason", in.Reason)
}

// applyVerdict writes a checked verdict, credits the member, finalizes the
// update at quorum (round.go), and returns the event that announces it.
func (t *txCtx) applyVerdict(p *pendingVerdict) (Event, error) {
	u, m, in := p.u, p.m, p.in
	v := Verdict{UpdateID: u.ID, ModelID: m.ID, Member: t.who.Key, Score: *in.Score, Accept: *in.Accept,
		Reason: in.Reason, TxID: t.txID, Timestamp: t.now, Quality: in.Quality}
	if err := t.saveVerdict(&v); err != nil {
		return Event{}, err
	}
	if err := t.credit(m, v.Member, func(a *Account, e *RewardEntry) {
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
