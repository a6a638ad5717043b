package fedcommittee

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// openRound writes round n of a federated model with global model g and
// sets the model's current round. The deadline counts from this
// transaction's timestamp.
func (t *txCtx) openRound(m *Model, n int64, g ObjectRef) (*Round, error) {
	r := Round{
		DocType: "round", ModelID: m.ID, Number: n, Status: RoundOpen, Global: g,
		OpenedAt: t.now, Deadline: t.now + m.RoundRules.DeadlineSeconds,
		Accepted: []string{}, OpenedTx: t.txID,
	}
	if restricted(m) {
		al, err := t.allocate(m, n)
		if err != nil {
			return nil, err
		}
		r.Allocated = al.Providers
	}
	if err := t.saveRound(&r); err != nil {
		return nil, err
	}
	m.CurrentRound = n
	m.Global = &g
	return &r, nil
}

func (t *txCtx) loadRound(modelID string, n int64) (*Round, error) {
	return mustLoad[Round](t, fmt.Sprintf("round %d of model %s", n, modelID), keyRound, modelID, roundAttr(n))
}

func (t *txCtx) saveRound(r *Round) error {
	k, err := t.key(keyRound, r.ModelID, roundAttr(r.Number))
	if err != nil {
		return err
	}
	return t.putJSON(k, r)
}

// loadFederatedRound loads an active federated model and one of its rounds.
func (t *txCtx) loadFederatedRound(modelID, roundArg string) (*Model, *Round, error) {
	m, err := t.loadModel(modelID)
	if err != nil {
		return nil, nil, err
	}
	if m.Mode != ModeFederated {
		return nil, nil, fmt.Errorf("model %s is in gossip mode: it has no rounds", m.ID)
	}
	if m.Status != ModelActive {
		return nil, nil, fmt.Errorf("model %s is %s, not active", m.ID, m.Status)
	}
	n, err := parseRoundArg(roundArg)
	if err != nil {
		return nil, nil, err
	}
	r, err := t.loadRound(m.ID, n)
	if err != nil {
		return nil, nil, err
	}
	return m, r, nil
}

// CloseRound fixes the accepted set of the open round. It is allowed once
// minAccepted updates are accepted, or once the deadline has passed by the
// transaction timestamp. The accepted set is sorted by update id so every
// aggregator combines the same list in the same order. A round closed with
// no accepted update is skipped: the next round opens on the same global
// model (or the model finishes after its last round).
func (c *Contract) CloseRound(ctx contractapi.TransactionContextInterface, modelID, round string) error {
	t, err := newTx(ctx)
	if err != nil {
		return err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return err
	}
	m, r, err := t.loadFederatedRound(modelID, round)
	if err != nil {
		return err
	}
	if err := t.requireParticipant(who, m); err != nil {
		return err
	}
	if r.Status != RoundOpen {
		return fmt.Errorf("round %d of model %s is %s, not open", r.Number, m.ID, r.Status)
	}
	entries, err := t.scan(keyAccepted, []string{m.ID, roundAttr(r.Number)}, MaxAcceptedPerRound)
	if err != nil {
		return err
	}
	n := int64(len(entries))
	if n < m.RoundRules.MinAccepted && t.now < r.Deadline {
		return fmt.Errorf("round %d of model %s cannot close yet: %d of %d required updates accepted and deadline %d not reached (now %d)",
			r.Number, m.ID, n, m.RoundRules.MinAccepted, r.Deadline, t.now)
	}
	accepted := make([]string, 0, n)
	var samples int64
	for _, e := range entries {
		id, err := t.lastAttr(e.Key)
		if err != nil {
			return err
		}
		var u Update
		if err := jsonUnmarshal(e.Value, &u); err != nil {
			return err
		}
		accepted = append(accepted, id)
		samples += u.NumSamples
	}
	slices.Sort(accepted) // key order already is, but make the rule explicit
	r.Accepted, r.AcceptedCount, r.TotalSamples = accepted, n, samples
	r.ClosedAt, r.ClosedTx = t.now, t.txID
	if n > 0 {
		r.Status = RoundClosed
		if err := t.saveRound(r); err != nil {
			return err
		}
		return t.emit(Event{Type: EvRoundClosed, ModelID: m.ID, Mode: m.Mode, Round: r.Number, Status: r.Status,
			Accepted: accepted, Count: n, CID: r.Global.CID, SHA256: r.Global.SHA256}, who.Key)
	}
	r.Status = RoundSkipped
	r.Aggregate = &ObjectRef{CID: r.Global.CID, SHA256: r.Global.SHA256}
	if err := t.saveRound(r); err != nil {
		return err
	}
	ev, err := t.advance(m, r, r.Global, nil)
	if err != nil {
		return err
	}
	return t.emit(ev, who.Key)
}

// advance moves a model past round r with global model g: it opens round
// r+1, or finishes the model (stopping rule, or after its last round). It
// saves the model and returns the event to emit. confirmed is the
// committee's median score of g when round r was confirmed (nil: skipped).
func (t *txCtx) advance(m *Model, r *Round, g ObjectRef, confirmed *float64) (Event, error) {
	m.UpdatedAt = t.now
	reason := t.stopReason(m, r, g, confirmed)
	if reason != "" {
		final := g
		score := m.Baseline
		if reason == StopPatience {
			final = ObjectRef{CID: m.Best.CID, SHA256: m.Best.SHA256}
			s := m.Best.Score
			score = &s
		}
		m.Status, m.Final, m.Global, m.StopReason = ModelFinished, &final, &g, reason
		if err := t.saveModel(m); err != nil {
			return Event{}, err
		}
		return Event{Type: EvModelFinished, ModelID: m.ID, Mode: m.Mode, Round: r.Number, Status: m.Status,
			CID: final.CID, SHA256: final.SHA256, Score: score, Reason: reason}, nil
	}
	var committee []string
	if m.Rotation != nil && confirmed != nil {
		if err := t.rotate(m, r); err != nil {
			return Event{}, err
		}
		committee = committeeKeys(m)
	}
	next, err := t.openRound(m, r.Number+1, g)
	if err != nil {
		return Event{}, err
	}
	if err := t.saveModel(m); err != nil {
		return Event{}, err
	}
	return Event{Type: EvRoundOpened, ModelID: m.ID, Mode: m.Mode, Round: next.Number, Status: next.Status,
		CID: g.CID, SHA256: g.SHA256, Deadline: next.Deadline, PreviousRound: r.Number, Score: m.Baseline,
		Allocated: next.Allocated, Committee: committee}, nil
}

// stopReason applies the stopping rule after round r and returns why the
// model stops ("" = it goes on). It updates the best model and the count of
// rounds without improvement; a skipped round counts as one without
// improvement. Target is checked first, then patience, then maxRounds.
func (t *txCtx) stopReason(m *Model, r *Round, g ObjectRef, confirmed *float64) string {
	if st := m.Stopping; st != nil {
		if confirmed != nil && (m.Best == nil || improves(m, *confirmed, m.Best.Score, st.MinDelta)) {
			m.Best = &BestModel{Round: r.Number, CID: g.CID, SHA256: g.SHA256, Score: *confirmed}
			m.Stale = 0
		} else {
			m.Stale++
		}
		if confirmed != nil && st.Target != nil && reached(m, *confirmed, *st.Target) {
			return StopTarget
		}
		if st.Patience > 0 && m.Stale >= st.Patience {
			return StopPatience
		}
	}
	if r.Number >= m.RoundRules.MaxRounds {
		return StopMaxRounds
	}
	return ""
}

// requireParticipant: any of the model's publisher, its committee, or a
// provider may drive the round machinery (closing, recording aggregates);
// the rules, not the caller, decide what happens.
func (t *txCtx) requireParticipant(who *caller, m *Model) error {
	if who.Key == m.Publisher || isMember(m, who.Key) {
		return nil
	}
	ok, err := t.hasRole(who.Key, RoleProvider)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("access denied: caller %s is neither the publisher, a committee member of model %s, nor a provider", who.Key, m.ID)
	}
	return nil
}

// RecordAggregate records an aggregate (cid, sha256) of a closed round. It
// is only a candidate: it becomes the next global model once a quorum of the
// committee confirms the same sha256 (ConfirmAggregate), so a dishonest
// aggregator cannot slip a model in.
func (c *Contract) RecordAggregate(ctx contractapi.TransactionContextInterface, modelID, round, input string) error {
	t, err := newTx(ctx)
	if err != nil {
		return err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return err
	}
	m, r, err := t.loadFederatedRound(modelID, round)
	if err != nil {
		return err
	}
	if err := t.requireParticipant(who, m); err != nil {
		return err
	}
	var in AggregateInput
	if err := decodeStrict("RecordAggregate input", input, &in); err != nil {
		return err
	}
	if err := checkObjectRef("aggregate", ObjectRef(in)); err != nil {
		return err
	}
	if r.Status != RoundClosed {
		return fmt.Errorf("round %d of model %s is %s, not closed: no aggregate can be recorded", r.Number, m.ID, r.Status)
	}
	ak, err := t.absentKey(
		fmt.Errorf("aggregate %s is already recorded for round %d of model %s", in.SHA256, r.Number, m.ID),
		keyAggregate, m.ID, roundAttr(r.Number), in.SHA256)
	if err != nil {
		return err
	}
	// One candidate per recorder per round, and a cap on candidates from
	// non-members, so spam cannot crowd out the committee's own aggregates.
	byKey, err := t.absentKey(
		fmt.Errorf("%s has already recorded an aggregate for round %d of model %s", who.Key, r.Number, m.ID),
		keyAggBy, m.ID, roundAttr(r.Number), who.Key)
	if err != nil {
		return err
	}
	if !isMember(m, who.Key) && r.Candidates >= MaxAggregateCandidate {
		return fmt.Errorf("round %d of model %s already has %d aggregate candidates from non-members (limit)", r.Number, m.ID, r.Candidates)
	}
	if !isMember(m, who.Key) {
		r.Candidates++
		if err := t.saveRound(r); err != nil {
			return err
		}
	}
	if err := t.stub.PutState(byKey, []byte(in.SHA256)); err != nil {
		return fmt.Errorf("writing index: %v", err)
	}
	cand := AggregateCandidate{DocType: "aggregate", ModelID: m.ID, Round: r.Number, CID: in.CID, SHA256: in.SHA256,
		RecordedBy: who.Key, RecordedTx: t.txID, Confirmations: []Confirmation{}}
	if err := t.putJSON(ak, &cand); err != nil {
		return err
	}
	return t.emit(Event{Type: EvAggregateRecorded, ModelID: m.ID, Mode: m.Mode, Round: r.Number, Status: r.Status,
		CID: in.CID, SHA256: in.SHA256, Accepted: r.Accepted}, who.Key)
}

// ConfirmAggregate is a committee member's vote that the aggregate with this
// sha256 is the correct aggregate of the round's accepted set (it recomputed
// it) and its score on the member's shard. One vote per member per round. At
// quorum the candidate becomes the next global model and its median score
// the new baseline.
func (c *Contract) ConfirmAggregate(ctx contractapi.TransactionContextInterface, modelID, round, input string) error {
	t, err := newTx(ctx)
	if err != nil {
		return err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return err
	}
	m, r, err := t.loadFederatedRound(modelID, round)
	if err != nil {
		return err
	}
	if err := t.requireMember(who, m); err != nil {
		return err
	}
	var in ConfirmInput
	if err := decodeStrict("ConfirmAggregate input", input, &in); err != nil {
		return err
	}
	if err := checkSHA256("sha256", in.SHA256); err != nil {
		return err
	}
	if in.Score == nil {
		return fmt.Errorf("score: required")
	}
	if err := checkScoreInRange(m, "score", *in.Score); err != nil {
		return err
	}
	if r.Status != RoundClosed {
		return fmt.Errorf("round %d of model %s is %s, not closed: nothing to confirm", r.Number, m.ID, r.Status)
	}
	vk, err := t.absentKey(
		fmt.Errorf("member %s has already confirmed an aggregate for round %d of model %s", who.Key, r.Number, m.ID),
		keyAggVote, m.ID, roundAttr(r.Number), who.Key)
	if err != nil {
		return err
	}
	ak, err := t.key(keyAggregate, m.ID, roundAttr(r.Number), in.SHA256)
	if err != nil {
		return err
	}
	var cand AggregateCandidate
	found, err := t.getJSON(ak, &cand)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no aggregate with sha256 %s is recorded for round %d of model %s", in.SHA256, r.Number, m.ID)
	}
	vote := AggregateVote{ModelID: m.ID, Round: r.Number, Member: who.Key, SHA256: in.SHA256, Score: *in.Score, TxID: t.txID}
	if err := t.putJSON(vk, &vote); err != nil {
		return err
	}
	cand.Confirmations = append(cand.Confirmations, Confirmation{Member: who.Key, Score: *in.Score, TxID: t.txID})
	slices.SortFunc(cand.Confirmations, func(a, b Confirmation) int { return strings.Compare(a.Member, b.Member) })
	if err := t.putJSON(ak, &cand); err != nil {
		return err
	}
	count := int64(len(cand.Confirmations))
	if count < m.Quorum {
		return t.emit(Event{Type: EvAggregateConfirmed, ModelID: m.ID, Mode: m.Mode, Round: r.Number, Status: r.Status,
			CID: cand.CID, SHA256: cand.SHA256, Count: count, Quorum: m.Quorum}, who.Key)
	}
	scores := make([]float64, 0, count)
	for _, cf := range cand.Confirmations {
		scores = append(scores, cf.Score)
	}
	med := median(scores)
	agg := ObjectRef{CID: cand.CID, SHA256: cand.SHA256}
	r.Status, r.Aggregate, r.AggregateBy = RoundDone, &agg, cand.RecordedBy
	r.ConfirmedAt, r.ConfirmedTx, r.ConfirmedMed = t.now, t.txID, &med
	if err := t.saveRound(r); err != nil {
		return err
	}
	m.Baseline = &med
	ev, err := t.advance(m, r, agg, &med)
	if err != nil {
		return err
	}
	return t.emit(ev, who.Key)
}
