package fedcommittee

import (
	"fmt"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// A gossip model ends in two steps, so that its final model is the best one
// by the committee's measure and not the publisher's pick:
//
//  1. ProposeFinal (publisher): a mix (the mean of several accepted updates,
//     e.g. every provider's best, stored as one object) and the accepted
//     updates it competes with, once no update is pending. New updates are
//     refused from then on.
//  2. JudgeFinal (members): each member's quality of the mix and of every
//     candidate, measured on its own shard. The judgment that reaches quorum
//     finishes the model on the entry with the highest median quality, the
//     mix on a tie.
//
// The contract checks who proposes and judges, that the updates named are
// accepted ones of the model, and applies the choice; the mix's bytes and
// the members' measures are checked off chain (fedcommittee verify).

// ProposeFinalInput is ProposeFinal's input: the mix's updates and object,
// and the candidates (accepted updates) judged beside it.
type ProposeFinalInput struct {
	Mix        []string `json:"mix"`
	CID        string   `json:"cid"`
	SHA256     string   `json:"sha256"`
	Candidates []string `json:"candidates"`
}

// JudgeFinalInput is JudgeFinal's input: the member's quality in [0, 1] of
// the mix first, then of each candidate in the proposal's order.
type JudgeFinalInput struct {
	Qualities []float64 `json:"qualities"`
}

// ProposeFinal puts a gossip model's possible ends before its committee.
func (c *Contract) ProposeFinal(ctx contractapi.TransactionContextInterface, modelID, input string) error {
	var in ProposeFinalInput
	return run(ctx, opening{onModel(modelID), publisherOnly("propose its final model"),
		inMode(ModeGossip, "is federated: it finishes after its last round"),
		modelIs(", not active", ModelActive), notFinishing,
		decoded("ProposeFinal input", input, &in), valid(in.check)},
		func(t *txCtx) error {
			m := t.model
			if err := t.requireNonePending(); err != nil {
				return err
			}
			if err := t.requireAccepted("mix", in.Mix); err != nil {
				return err
			}
			if err := t.requireAccepted("candidates", in.Candidates); err != nil {
				return err
			}
			m.FinalProposal = &FinalProposal{Mix: in.Mix, CID: in.CID, SHA256: in.SHA256,
				Candidates: in.Candidates, Judgments: []FinalJudgment{}, ProposedAt: t.now}
			m.UpdatedAt = t.now
			if err := t.saveModel(m); err != nil {
				return err
			}
			return t.emit(Event{Type: EvFinalProposed, ModelID: m.ID, Mode: m.Mode, CID: in.CID,
				SHA256: in.SHA256, Parents: in.Mix, Count: int64(len(in.Candidates)), Quorum: m.Quorum})
		})
}

func (in *ProposeFinalInput) check() error {
	if n := len(in.Mix); n == 0 || n > MaxFinalMix {
		return fmt.Errorf("mix: need 1 to %d updates, got %d", MaxFinalMix, n)
	}
	if err := checkUpdateIDs("mix", in.Mix); err != nil {
		return err
	}
	if n := len(in.Candidates); n > MaxFinalCandidates {
		return fmt.Errorf("candidates: at most %d, got %d", MaxFinalCandidates, n)
	}
	if err := checkUpdateIDs("candidates", in.Candidates); err != nil {
		return err
	}
	return checkObjectRef("mix", ObjectRef{CID: in.CID, SHA256: in.SHA256})
}

// requireAccepted: every update of ids (named field[i]) is an accepted
// update of the transaction's model.
func (t *txCtx) requireAccepted(field string, ids []string) error {
	for i, id := range ids {
		if _, err := t.acceptedUpdate(id); err != nil {
			return fmt.Errorf("%s[%d]: %w", field, i, err)
		}
	}
	return nil
}

// acceptedUpdate loads an update that must be an accepted update of the
// transaction's model (FinishModel, ProposeFinal).
func (t *txCtx) acceptedUpdate(id string) (*Update, error) {
	u, err := t.loadUpdate(id)
	if err != nil {
		return nil, err
	}
	if u.ModelID != t.model.ID || u.Status != UpdateAccepted {
		return nil, wrongState("update %s is not an accepted update of model %s", u.ID, t.model.ID)
	}
	return u, nil
}

// requireNonePending: no update of the gossip model awaits verdicts. The
// scan and the reads of each update fail the proposal's validation if an
// update arrives or is decided meanwhile (phantom and MVCC checks), so the
// accepted set it was proposed on is the model's last.
func (t *txCtx) requireNonePending() error {
	entries, err := t.scan(recordKey{keyRoundUpd, []string{t.model.ID, roundAttr(0)}}, MaxGossipUpdates)
	if err != nil {
		return err
	}
	for _, e := range entries {
		u, err := t.loadUpdate(string(e.Value)) // the index entry holds the update's id (everyoneFinal)
		if err != nil {
			return err
		}
		if u.Status == UpdatePending {
			return wrongState("update %s of model %s is pending: propose the final model once every update is judged", u.ID, t.model.ID)
		}
	}
	return nil
}

// notFinishing: no final model may be proposed yet.
func notFinishing(t *txCtx) error {
	if t.model.FinalProposal != nil {
		return wrongState("model %s is finishing: its final model is before the committee", t.model.ID)
	}
	return nil
}

// JudgeFinal records a member's measures of the proposed final models; at
// quorum the best by median quality becomes the model's final model.
func (c *Contract) JudgeFinal(ctx contractapi.TransactionContextInterface, modelID, input string) error {
	var in JudgeFinalInput
	return run(ctx, opening{onModel(modelID), onCommittee,
		inMode(ModeGossip, "is federated: it finishes after its last round"),
		modelIs(", not active", ModelActive), finishing,
		decoded("JudgeFinal input", input, &in), valid(in.check)},
		func(t *txCtx) error {
			m, p := t.model, t.model.FinalProposal
			if want := 1 + len(p.Candidates); len(in.Qualities) != want {
				return fmt.Errorf("qualities: need %d (the mix, then %d candidates), got %d",
					want, len(p.Candidates), len(in.Qualities))
			}
			for _, j := range p.Judgments {
				if j.Member == t.who.Key {
					return duplicate("member %s has already judged the final model of %s", t.who.Key, m.ID)
				}
			}
			p.Judgments = append(p.Judgments, FinalJudgment{Member: t.who.Key, Qualities: in.Qualities,
				TxID: t.txID, Timestamp: t.now})
			if int64(len(p.Judgments)) >= m.Quorum {
				return t.finishOnJudgments()
			}
			m.UpdatedAt = t.now
			if err := t.saveModel(m); err != nil {
				return err
			}
			return t.emit(Event{Type: EvFinalJudged, ModelID: m.ID, Mode: m.Mode,
				Count: int64(len(p.Judgments)), Quorum: m.Quorum})
		})
}

func (in *JudgeFinalInput) check() error {
	if len(in.Qualities) == 0 {
		return fmt.Errorf("qualities: required (the mix first)")
	}
	for i, q := range in.Qualities {
		if !(q >= 0 && q <= 1) { // NaN fails both
			return fmt.Errorf("qualities[%d]: %v is outside [0, 1]", i, q)
		}
	}
	return nil
}

// finishing: a final model must have been proposed.
func finishing(t *txCtx) error {
	if t.model.FinalProposal == nil {
		return wrongState("model %s has no proposed final model to judge", t.model.ID)
	}
	return nil
}

// finishOnJudgments ends the model on the proposal's entry with the highest
// median quality over the judgments (the mix on a tie, then the earlier
// candidate).
func (t *txCtx) finishOnJudgments() error {
	m, p := t.model, t.model.FinalProposal
	p.Medians = medianQualities(p.Judgments, 1+len(p.Candidates))
	best := 0
	for i, q := range p.Medians {
		if q > p.Medians[best] {
			best = i
		}
	}
	if best == 0 {
		m.FinalMix = p.Mix
		return t.finishGossip(ObjectRef{CID: p.CID, SHA256: p.SHA256},
			Event{Parents: p.Mix, Score: &p.Medians[0]})
	}
	u, err := t.loadUpdate(p.Candidates[best-1])
	if err != nil {
		return err
	}
	m.FinalUpdate = u.ID
	return t.finishGossip(ObjectRef{CID: u.CID, SHA256: u.SHA256},
		Event{UpdateID: u.ID, Score: &p.Medians[best]})
}

// medianQualities is, for each of n entries, the median of the judgments'
// qualities.
func medianQualities(js []FinalJudgment, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		qs := make([]float64, len(js))
		for k, j := range js {
			qs[k] = j.Qualities[i]
		}
		out[i] = median(qs)
	}
	return out
}
