package fedcommittee

import (
	"fmt"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// PublishModel records a model proposal (status "proposed"). input is a
// ModelSpec JSON document. The committee must approve it before any update
// can be submitted.
func (c *Contract) PublishModel(ctx contractapi.TransactionContextInterface, input string) (string, error) {
	var spec ModelSpec
	return runJSON(ctx, opening{holds(RolePublisher), decoded("PublishModel input", input, &spec)},
		func(t *txCtx) (any, error) { return t.publishModel(&spec) })
}

func (t *txCtx) publishModel(spec *ModelSpec) (*Model, error) {
	if err := validateSpec(spec); err != nil {
		return nil, err
	}
	if err := validateRules(spec); err != nil {
		return nil, err
	}
	// Every seat must be held by a current committee role holder.
	if err := t.seatsHeld("committee", spec.Committee); err != nil {
		return nil, err
	}
	if spec.Rotation != nil {
		if err := t.seatsHeld("rotation.candidates", spec.Rotation.Candidates); err != nil {
			return nil, err
		}
	}
	if err := t.absent(modelKey(spec.ModelID), duplicate("modelId: model %s already exists", spec.ModelID)); err != nil {
		return nil, err
	}
	m := Model{DocType: "model", ID: spec.ModelID, Publisher: t.who.Key,
		ModelTerms: spec.ModelTerms, ModelRules: spec.ModelRules,
		Status: ModelProposed, CreatedTx: t.txID, CreatedAt: t.now, UpdatedAt: t.now}
	if m.Allocation != nil && m.Allocation.Rule == AllocRandom {
		m.AllocationSeed = t.txID
	}
	if err := t.saveModel(&m); err != nil {
		return nil, err
	}
	return &m, t.emit(Event{Type: EvModelProposed, ModelID: m.ID, Mode: m.Mode, Status: m.Status,
		CID: m.InitialWeights.CID, SHA256: m.InitialWeights.SHA256,
		Committee: committeeKeys(&m), Quorum: m.Quorum})
}

// seatsHeld refuses a seat whose member does not hold the committee role.
func (t *txCtx) seatsHeld(field string, seats []CommitteeSeat) error {
	for i, s := range seats {
		ok, err := t.hasRole(s.Member, RoleCommittee)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s[%d].member: %s does not hold the committee role", field, i, s.Member)
		}
	}
	return nil
}

// ApproveModel records the caller's approval of a proposed model. score is
// the member's score of the initial weights on its own shard; the median of
// the approving scores becomes the baseline for the "improvement" rule.
func (c *Contract) ApproveModel(ctx contractapi.TransactionContextInterface, modelID, score string) error {
	return voteOnModel(ctx, modelID, func(t *txCtx, v *ModelVote) error {
		s, err := parseScoreArg(score)
		if err != nil {
			return err
		}
		if err := checkScoreInRange(t.model, "score", s); err != nil {
			return err
		}
		v.Approve, v.Score = true, &s
		return nil
	})
}

// RejectModel records the caller's rejection of a proposed model with a reason.
func (c *Contract) RejectModel(ctx contractapi.TransactionContextInterface, modelID, reason string) error {
	return voteOnModel(ctx, modelID, func(_ *txCtx, v *ModelVote) error {
		if reason == "" {
			return fmt.Errorf("reason: required when rejecting a model")
		}
		v.Reason = reason
		return checkText("reason", reason)
	})
}

// voteOnModel records one member's vote (fill sets approve/score/reason)
// and decides the model once approval or rejection is certain.
//
// A vote that decides nothing writes only its own key, not the model record:
// every provider's RegisterData reads the model record, so a vote that
// rewrote it (a running count) invalidated every registration ordered into
// the same block (740 MVCC conflicts in the set-up of 1,000 providers on
// Fabric). The counts are derived from the vote records instead
// (withVoteCounts) and stored in the model when the vote decides it.
func voteOnModel(ctx contractapi.TransactionContextInterface, modelID string, fill func(*txCtx, *ModelVote) error) error {
	return run(ctx, opening{onModel(modelID), onCommittee, modelIs(", not proposed: votes are closed", ModelProposed)},
		func(t *txCtx) error {
			m, who := t.model, t.who
			v := ModelVote{ModelID: m.ID, Member: who.Key, TxID: t.txID, Timestamp: t.now}
			if err := fill(t, &v); err != nil {
				return err
			}
			if err := t.absent(modelVoteKey(m.ID, who.Key),
				duplicate("member %s has already voted on model %s", who.Key, m.ID)); err != nil {
				return err
			}
			before, err := t.modelVotes(m.ID) // read before this vote's write: committed votes only
			if err != nil {
				return err
			}
			if err := t.saveModelVote(&v); err != nil {
				return err
			}
			ev, decided, err := t.tallyModelVote(m, append(before, v))
			if err != nil {
				return err
			}
			ev.Status = m.Status
			if decided {
				m.UpdatedAt = t.now
				if err := t.saveModel(m); err != nil {
					return err
				}
			}
			return t.emit(ev)
		})
}

// countVotes counts approvals and rejections.
func countVotes(votes []ModelVote) (approvals, rejections int64) {
	for _, v := range votes {
		if v.Approve {
			approvals++
		} else {
			rejections++
		}
	}
	return approvals, rejections
}

// tallyModelVote counts the votes (the last one is the new vote) into m and
// activates or rejects the model when they decide it: rejected once quorum
// rejects, or once approval can no longer reach quorum. decided reports
// whether m changed.
func (t *txCtx) tallyModelVote(m *Model, votes []ModelVote) (Event, bool, error) {
	v := votes[len(votes)-1]
	m.Approvals, m.Rejections = countVotes(votes)
	ev := Event{Type: EvModelVote, ModelID: m.ID, Mode: m.Mode, Quorum: m.Quorum, Count: m.Rejections}
	if v.Approve {
		ev.Count = m.Approvals
	}
	switch {
	case m.Approvals >= m.Quorum:
		ev, err := t.activate(m, votes, ev)
		return ev, true, err
	case m.Rejections >= m.Quorum || m.Rejections > int64(len(m.Committee))-m.Quorum:
		m.Status = ModelRejected
		ev.Type = EvModelRejected
		return ev, true, nil
	}
	return ev, false, nil
}

// withVoteCounts fills a proposed model's approval and rejection counts from
// its vote records (the stored record holds them once the vote decides), so
// that readers see the vote's progress.
func (t *txCtx) withVoteCounts(m *Model) (*Model, error) {
	if m.Status != ModelProposed {
		return m, nil
	}
	votes, err := t.modelVotes(m.ID)
	if err != nil {
		return nil, err
	}
	m.Approvals, m.Rejections = countVotes(votes)
	return m, nil
}

// activate makes an approved model active: its baseline is the median
// approval score (votes includes the deciding vote), its global model the
// initial weights, and a federated model opens round 1.
func (t *txCtx) activate(m *Model, votes []ModelVote, ev Event) (Event, error) {
	scores := []float64{}
	for _, v := range votes {
		if v.Approve && v.Score != nil {
			scores = append(scores, *v.Score)
		}
	}
	med := median(scores)
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
			return ev, err
		}
		ev.Round, ev.Deadline, ev.Allocated = r.Number, r.Deadline, r.Allocated
	}
	ev.CID, ev.SHA256 = g.CID, g.SHA256
	return ev, nil
}

// FinishModel ends a gossip model: the publisher names the accepted update
// that is the final model. (Federated models finish after their last round.)
func (c *Contract) FinishModel(ctx contractapi.TransactionContextInterface, modelID, updateID string) error {
	return run(ctx, opening{onModel(modelID), publisherOnly("finish it"),
		inMode(ModeGossip, "is federated: it finishes after its last round"),
		modelIs(", not active", ModelActive), notFinishing, updateIDArg("updateId", updateID)},
		func(t *txCtx) error {
			m := t.model
			u, err := t.acceptedUpdate(updateID)
			if err != nil {
				return err
			}
			m.FinalUpdate = u.ID
			return t.finishGossip(ObjectRef{CID: u.CID, SHA256: u.SHA256},
				Event{UpdateID: u.ID, Score: u.MedianScore})
		})
}

// finishGossip ends the model with final as its weights and announces it
// (ev carries what names the final model).
func (t *txCtx) finishGossip(final ObjectRef, ev Event) error {
	m := t.model
	m.Status, m.Final, m.Global, m.UpdatedAt = ModelFinished, &final, &final, t.now
	m.StopReason = StopPublisher
	if err := t.saveModel(m); err != nil {
		return err
	}
	ev.Type, ev.ModelID, ev.Mode, ev.Status, ev.Reason = EvModelFinished, m.ID, m.Mode, m.Status, m.StopReason
	ev.CID, ev.SHA256 = final.CID, final.SHA256
	return t.emit(ev)
}
