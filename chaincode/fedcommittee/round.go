package fedcommittee

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// The life of a federated round, in the order it happens:
//
//  1. finalize: the verdict that reaches quorum decides an update; an
//     accepted one joins its round's accepted set.
//  2. CloseRound fixes the accepted set (or skips an empty round).
//  3. RecordAggregate records candidate aggregates of the closed round
//     (CloseRoundWithAggregate: steps 2 and 3 in one transaction).
//  4. ConfirmAggregate: at quorum one candidate becomes the global model.
//  5. advance: the model finishes (stopping rule, last round) or the
//     committee rotates and openRound opens the next round.
//
// Gossip updates pass through step 1 only.

// finalize decides an update from its quorum of verdicts, credits the
// provider, and indexes accepted updates for round closing / parent choice.
func (t *txCtx) finalize(m *Model, u *Update, vs []Verdict) error {
	scores := make([]float64, len(vs))
	for i, v := range vs {
		scores[i] = v.Score
	}
	med := median(scores)
	u.MedianScore = &med
	u.MedianQuality = medianQuality(vs)
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
		if err := t.markAccepted(u); err != nil {
			return err
		}
	}
	return t.creditOutcome(m, u)
}

// creditOutcome credits u's provider with u's final status, reward and
// penalty (an update decided by its verdicts, or a replay rejected on
// submission).
func (t *txCtx) creditOutcome(m *Model, u *Update) error {
	accepted := u.Status == UpdateAccepted
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

// medianQuality is the median quality of vs, or nil unless every verdict
// carries one (a quality the committee did not all measure ranks nothing).
func medianQuality(vs []Verdict) *float64 {
	qs := make([]float64, 0, len(vs))
	for _, v := range vs {
		if v.Quality == nil {
			return nil
		}
		qs = append(qs, *v.Quality)
	}
	if len(qs) == 0 {
		return nil
	}
	q := median(qs)
	return &q
}

// decide applies the model's acceptance rule to the median score.
func decide(m *Model, u *Update, med float64) bool {
	a := m.Acceptance
	switch a.Rule {
	case RuleThreshold:
		return reached(m, med, *a.Threshold)
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

// CloseRound fixes the accepted set of the open round. It is allowed once
// minAccepted updates are accepted, or once the deadline has passed by the
// transaction timestamp. The accepted set is sorted by update id so every
// aggregator combines the same list in the same order. A round closed with
// no accepted update is skipped: the next round opens on the same global
// model (or the model finishes after its last round).
func (c *Contract) CloseRound(ctx contractapi.TransactionContextInterface, modelID, round string) error {
	return run(ctx, opening{federatedRound(modelID, round), participant, roundIs(RoundOpen, ", not open")},
		func(t *txCtx) error {
			if err := t.fixAccepted(); err != nil {
				return err
			}
			m, r := t.model, t.round
			if r.AcceptedCount == 0 {
				r.Status = RoundSkipped
				r.Aggregate = &ObjectRef{CID: r.Global.CID, SHA256: r.Global.SHA256}
				if err := t.saveRound(r); err != nil {
					return err
				}
				return t.advance(m, r, r.Global, nil)
			}
			r.Status = RoundClosed
			if err := t.saveRound(r); err != nil {
				return err
			}
			return t.emit(t.roundClosedEvent(nil))
		})
}

// CloseRoundWithAggregate is CloseRound and RecordAggregate in one
// transaction, for a caller that computed the aggregate before closing (the
// accepted set is known once every update is final): every federated round
// then waits for one commit fewer. The input names the accepted set the
// aggregate was computed over (acceptedDigest); unless it is exactly the set
// the round closes with, nothing is written and the caller closes with
// CloseRound. A round with no accepted update has no aggregate: it is
// skipped with CloseRound.
func (c *Contract) CloseRoundWithAggregate(ctx contractapi.TransactionContextInterface, modelID, round, input string) error {
	var in CloseInput
	return run(ctx, opening{federatedRound(modelID, round), participant,
		decoded("CloseRoundWithAggregate input", input, &in), valid(func() error { return in.check() }),
		roundIs(RoundOpen, ", not open")},
		func(t *txCtx) error {
			if err := t.fixAccepted(); err != nil {
				return err
			}
			r := t.round
			if r.AcceptedCount == 0 {
				return wrongState("round %d of model %s has no accepted update: nothing to aggregate (CloseRound skips it)",
					r.Number, r.ModelID)
			}
			if in.AcceptedSHA256 != acceptedDigest(r.Accepted) {
				return wrongState("the aggregate was computed over another accepted set than the %d updates round %d of model %s closes with",
					len(r.Accepted), r.Number, r.ModelID)
			}
			r.Status = RoundClosed
			if err := t.saveRound(r); err != nil {
				return err
			}
			agg := ObjectRef{CID: in.CID, SHA256: in.SHA256}
			if err := t.recordCandidate(agg); err != nil {
				return err
			}
			return t.emit(t.roundClosedEvent(&agg))
		})
}

// fixAccepted fixes the open round's accepted set (sorted by update id) if
// the round may close now: minAccepted updates accepted, the deadline
// passed, or nothing can change the set before the deadline any more
// (everyoneFinal).
func (t *txCtx) fixAccepted() error {
	m, r := t.model, t.round
	accepted, err := t.acceptedUpdates(m.ID, r.Number)
	if err != nil {
		return err
	}
	n := int64(len(accepted))
	if n < m.RoundRules.MinAccepted && t.now < r.Deadline {
		done, err := t.everyoneFinal(m, r)
		if err != nil {
			return err
		}
		if !done {
			return wrongState("round %d of model %s cannot close yet: %d of %d required updates accepted, an expected provider's update still missing or pending, and deadline %d not reached (now %d)",
				r.Number, m.ID, n, m.RoundRules.MinAccepted, r.Deadline, t.now)
		}
	}
	r.Accepted, r.AcceptedCount, r.TotalSamples = make([]string, 0, n), n, 0
	for _, u := range accepted {
		r.Accepted = append(r.Accepted, u.ID)
		r.TotalSamples += u.NumSamples
	}
	slices.Sort(r.Accepted) // key order already is, but make the rule explicit
	r.ClosedAt, r.ClosedTx = t.now, t.txID
	return nil
}

// everyoneFinal reports whether round r's accepted set is as large as it
// will get: every provider the round expects has submitted and no update of
// the round is pending. The round then closes with fewer than minAccepted
// updates at once, rather than idling until its deadline.
//
// Expected are the allocated providers under a restricting allocation rule
// (nobody else may submit), else every data registrant of the model that
// still holds the provider role. A provider that never registered may
// still submit under rule "all"; it is not waited for, as it is not once
// minAccepted are accepted and the round closes. With nobody expected (no
// registration) the round waits for its deadline: an empty round is never
// cut short. Past MaxScan registrations or updates the answer is no.
//
// The range reads make a close invalid (phantom read) if an update or a
// registration commits before it in the same block.
func (t *txCtx) everyoneFinal(m *Model, r *Round) (bool, error) {
	expected, complete := r.Allocated, true
	if !restricted(m) {
		var err error
		if expected, complete, err = t.registeredProviders(m.ID); err != nil {
			return false, err
		}
	}
	if !complete || len(expected) == 0 {
		return false, nil
	}
	entries, err := t.scanFirst(recordKey{keyRoundUpd, []string{m.ID, roundAttr(r.Number)}}, MaxScan)
	if err != nil || len(entries) == MaxScan {
		return false, err
	}
	submitted := make(map[string]bool, len(entries))
	for _, e := range entries {
		u, err := t.loadUpdate(string(e.Value))
		if err != nil {
			return false, err
		}
		if u.Status == UpdatePending {
			return false, nil
		}
		submitted[u.Provider] = true
	}
	for _, p := range expected {
		if !submitted[p] {
			return false, nil
		}
	}
	return true, nil
}

// roundClosedEvent announces the closed round t.round, with the candidate
// aggregate recorded in the same transaction if there is one.
func (t *txCtx) roundClosedEvent(candidate *ObjectRef) Event {
	m, r := t.model, t.round
	return Event{Type: EvRoundClosed, ModelID: m.ID, Mode: m.Mode, Round: r.Number, Status: r.Status,
		Accepted: r.Accepted, Count: r.AcceptedCount, CID: r.Global.CID, SHA256: r.Global.SHA256, Aggregate: candidate}
}

// RecordAggregate records an aggregate (cid, sha256) of a closed round. It
// is only a candidate: it becomes the next global model once a quorum of the
// committee confirms the same sha256 (ConfirmAggregate), so a dishonest
// aggregator cannot slip a model in.
func (c *Contract) RecordAggregate(ctx contractapi.TransactionContextInterface, modelID, round, input string) error {
	var in AggregateInput
	return run(ctx, opening{federatedRound(modelID, round), participant, decoded("RecordAggregate input", input, &in),
		valid(func() error { return checkObjectRef("aggregate", ObjectRef(in)) }),
		roundIs(RoundClosed, ", not closed: no aggregate can be recorded")},
		func(t *txCtx) error {
			if err := t.recordCandidate(ObjectRef(in)); err != nil {
				return err
			}
			m, r := t.model, t.round
			return t.emit(Event{Type: EvAggregateRecorded, ModelID: m.ID, Mode: m.Mode, Round: r.Number, Status: r.Status,
				CID: in.CID, SHA256: in.SHA256, Accepted: r.Accepted})
		})
}

// recordCandidate records agg as the caller's candidate aggregate of the
// closed round t.round.
func (t *txCtx) recordCandidate(agg ObjectRef) error {
	m, r, who := t.model, t.round, t.who
	if err := t.absent(aggregateKey(m.ID, r.Number, agg.SHA256),
		duplicate("aggregate %s is already recorded for round %d of model %s", agg.SHA256, r.Number, m.ID)); err != nil {
		return err
	}
	// One candidate per recorder per round, and a cap on candidates from
	// non-members, so spam cannot crowd out the committee's own aggregates.
	if err := t.absent(aggregateByKey(m.ID, r.Number, who.Key),
		duplicate("%s has already recorded an aggregate for round %d of model %s", who.Key, r.Number, m.ID)); err != nil {
		return err
	}
	if !isMember(m, who.Key) {
		if r.Candidates >= MaxAggregateCandidate {
			return wrongState("round %d of model %s already has %d aggregate candidates from non-members (limit)", r.Number, m.ID, r.Candidates)
		}
		r.Candidates++
		if err := t.saveRound(r); err != nil {
			return err
		}
	}
	cand := AggregateCandidate{DocType: "aggregate", ModelID: m.ID, Round: r.Number, CID: agg.CID, SHA256: agg.SHA256,
		RecordedBy: who.Key, RecordedTx: t.txID, Confirmations: []Confirmation{}}
	if err := t.saveAggregateBy(&cand); err != nil {
		return err
	}
	return t.saveAggregate(&cand)
}

// ConfirmAggregate is a committee member's vote that the aggregate with this
// sha256 is the correct aggregate of the round's accepted set (it recomputed
// it) and its score on the member's shard. One vote per member per round. At
// quorum the candidate becomes the next global model and its median score
// the new baseline.
func (c *Contract) ConfirmAggregate(ctx contractapi.TransactionContextInterface, modelID, round, input string) error {
	var in ConfirmInput
	return run(ctx, opening{federatedRound(modelID, round), onCommittee, decoded("ConfirmAggregate input", input, &in),
		func(t *txCtx) error { return in.check(t.model) },
		roundIs(RoundClosed, ", not closed: nothing to confirm")},
		func(t *txCtx) error {
			m, r, who := t.model, t.round, t.who
			if err := t.absent(aggregateVoteKey(m.ID, r.Number, who.Key),
				duplicate("member %s has already confirmed an aggregate for round %d of model %s", who.Key, r.Number, m.ID)); err != nil {
				return err
			}
			cand, err := t.loadAggregate(m.ID, r.Number, in.SHA256)
			if err != nil {
				return err
			}
			vote := AggregateVote{ModelID: m.ID, Round: r.Number, Member: who.Key, SHA256: in.SHA256, Score: *in.Score, TxID: t.txID}
			if err := t.saveAggregateVote(&vote); err != nil {
				return err
			}
			cand.Confirmations = append(cand.Confirmations, Confirmation{Member: who.Key, Score: *in.Score, TxID: t.txID})
			slices.SortFunc(cand.Confirmations, func(a, b Confirmation) int { return strings.Compare(a.Member, b.Member) })
			if err := t.saveAggregate(cand); err != nil {
				return err
			}
			if count := int64(len(cand.Confirmations)); count < m.Quorum {
				return t.emit(Event{Type: EvAggregateConfirmed, ModelID: m.ID, Mode: m.Mode, Round: r.Number, Status: r.Status,
					CID: cand.CID, SHA256: cand.SHA256, Count: count, Quorum: m.Quorum})
			}
			return t.adopt(m, r, cand)
		})
}

func (in *CloseInput) check() error {
	if err := checkObjectRef("aggregate", ObjectRef{CID: in.CID, SHA256: in.SHA256}); err != nil {
		return err
	}
	return checkSHA256("acceptedSha256", in.AcceptedSHA256)
}

// acceptedDigest names an accepted set: the sha256 (hex) of its update ids,
// sorted, each followed by a newline.
func acceptedDigest(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (in *ConfirmInput) check(m *Model) error {
	if err := checkSHA256("sha256", in.SHA256); err != nil {
		return err
	}
	if in.Score == nil {
		return fmt.Errorf("score: required")
	}
	return checkScoreInRange(m, "score", *in.Score)
}

// adopt makes a confirmed candidate round r's aggregate and the next global
// model; the committee's median score of it is the new baseline.
func (t *txCtx) adopt(m *Model, r *Round, cand *AggregateCandidate) error {
	scores := make([]float64, 0, len(cand.Confirmations))
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
	return t.advance(m, r, agg, &med)
}

// advance moves a model past round r with global model g: it finishes the
// model (stopping rule, or after its last round) or opens round r+1. It
// saves the model and emits the event. confirmed is the committee's median
// score of g when round r was confirmed (nil: skipped).
func (t *txCtx) advance(m *Model, r *Round, g ObjectRef, confirmed *float64) error {
	m.UpdatedAt = t.now
	if reason := t.stopReason(m, r, g, confirmed); reason != "" {
		final, score := g, m.Baseline
		if reason == StopPatience {
			final = ObjectRef{CID: m.Best.CID, SHA256: m.Best.SHA256}
			s := m.Best.Score
			score = &s
		}
		m.Status, m.Final, m.Global, m.StopReason = ModelFinished, &final, &g, reason
		if err := t.saveModel(m); err != nil {
			return err
		}
		return t.emit(Event{Type: EvModelFinished, ModelID: m.ID, Mode: m.Mode, Round: r.Number, Status: m.Status,
			CID: final.CID, SHA256: final.SHA256, Score: score, Reason: reason})
	}
	var committee []string
	if m.Rotation != nil && confirmed != nil {
		if err := t.rotate(m, r); err != nil {
			return err
		}
		committee = committeeKeys(m)
	}
	next, err := t.openRound(m, r.Number+1, g)
	if err != nil {
		return err
	}
	if err := t.saveModel(m); err != nil {
		return err
	}
	return t.emit(Event{Type: EvRoundOpened, ModelID: m.ID, Mode: m.Mode, Round: next.Number, Status: next.Status,
		CID: g.CID, SHA256: g.SHA256, Deadline: next.Deadline, PreviousRound: r.Number, Score: m.Baseline,
		Allocated: next.Allocated, Committee: committee})
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

// openRound writes round n of a federated model with global model g (and,
// under a restricting allocation rule, the providers allowed to submit) and
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
