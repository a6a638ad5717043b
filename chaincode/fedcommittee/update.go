package fedcommittee

import (
	"fmt"
	"slices"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// SubmitUpdate records a provider's update of an active model. input is an
// UpdateInput JSON document. The update id is this transaction's id.
//
// Federated: round must be the open round, baseCid/baseSha256 the round's
// global model, at most one update per provider per round, before the
// deadline. Gossip: parents are 0..maxParents distinct accepted updates of
// the same model (none = trained from the initial weights); round and base
// must be left out; the provider's previous update must be final, and the
// update records the provider's Standing.
//
// Everything the transaction writes is keyed by its own update id or its
// provider, so providers submitting in the same block never conflict.
func (c *Contract) SubmitUpdate(ctx contractapi.TransactionContextInterface, modelID, input string) (string, error) {
	var in UpdateInput
	return runJSON(ctx, opening{holds(RoleProvider), onModel(modelID),
		modelIs(", not active: updates are not accepted", ModelActive), notFinishing,
		decoded("SubmitUpdate input", input, &in), valid(in.check)},
		func(t *txCtx) (any, error) { return t.submitUpdate(&in) })
}

func (in *UpdateInput) check() error {
	if err := checkObjectRef("update", ObjectRef{CID: in.CID, SHA256: in.SHA256}); err != nil {
		return err
	}
	if err := checkRange("numSamples", in.NumSamples, 1, MaxSamples); err != nil {
		return err
	}
	if len(in.Metrics) > MaxMetrics {
		return fmt.Errorf("metrics: %d entries, limit is %d", len(in.Metrics), MaxMetrics)
	}
	for _, name := range sortedKeys(in.Metrics) {
		if err := checkName("metrics key", name); err != nil {
			return err
		}
		if err := checkFinite("metrics."+name, in.Metrics[name]); err != nil {
			return err
		}
	}
	return nil
}

func (t *txCtx) submitUpdate(in *UpdateInput) (*Update, error) {
	m, who := t.model, t.who
	if err := checkUpdateID("txId", t.txID); err != nil {
		return nil, err
	}
	u := Update{
		DocType: "update", ID: t.txID, ModelID: m.ID, Mode: m.Mode, Provider: who.Key,
		CID: in.CID, SHA256: in.SHA256, NumSamples: in.NumSamples, Metrics: in.Metrics,
		Parents: []string{}, Status: UpdatePending, SubmittedAt: t.now,
	}
	if u.Metrics == nil {
		u.Metrics = map[string]float64{}
	}
	place := t.placeGossipUpdate
	if m.Mode == ModeFederated {
		place = t.placeFederatedUpdate
	}
	if err := place(in, &u); err != nil {
		return nil, err
	}
	if err := t.absent(updateKey(u.ID), duplicate("update %s already exists", u.ID)); err != nil {
		return nil, err
	}
	if err := t.refuseReplay(&u); err != nil {
		return nil, err
	}
	if err := t.saveUpdate(&u); err != nil {
		return nil, err
	}
	if err := t.indexUpdate(&u); err != nil {
		return nil, err
	}
	return &u, t.emit(Event{Type: EvUpdateSubmitted, ModelID: m.ID, Mode: m.Mode, Round: u.Round, UpdateID: u.ID,
		Status: u.Status, CID: u.CID, SHA256: u.SHA256, Provider: u.Provider, Parents: u.Parents,
		Penalty: u.Penalty})
}

// refuseReplay rejects u on the spot when its object was already submitted
// to the model (a replaying free rider, or someone claiming another
// provider's update). A sha256 earns credit once per model, so the replay
// is recorded as rejected, with the penalty and without verdicts, rather
// than refused outright: that way it fills its provider's place in the
// round, and the round can close as soon as every allocated provider's
// update is final instead of waiting out a settle window for an update
// that will never come.
func (t *txCtx) refuseReplay(u *Update) error {
	first, err := t.read(updateSHAKey(u.ModelID, u.SHA256))
	if err != nil || first == nil {
		return err
	}
	m := t.model
	u.Status, u.Penalty = UpdateRejected, m.RewardRules.RejectPenalty
	u.Refusal = fmt.Sprintf("replay: sha256 %s was already submitted to model %s as update %s", u.SHA256, m.ID, first)
	u.FinalizedAt, u.FinalizedTx = t.now, t.txID
	return t.creditOutcome(m, u)
}

// placeFederatedUpdate applies the round rules and places u in the open round.
func (t *txCtx) placeFederatedUpdate(in *UpdateInput, u *Update) error {
	m, who := t.model, t.who
	if len(in.Parents) != 0 {
		return fmt.Errorf("parents: not used in federated mode")
	}
	if in.Round != m.CurrentRound {
		return wrongState("round: %d is not the open round of model %s (current round %d)", in.Round, m.ID, m.CurrentRound)
	}
	r, err := t.loadRound(m.ID, in.Round)
	if err != nil {
		return err
	}
	if r.Status != RoundOpen {
		return wrongState("round %d of model %s is %s: updates are closed", r.Number, m.ID, r.Status)
	}
	if t.now > r.Deadline {
		return wrongState("round %d of model %s: deadline %d has passed (now %d)", r.Number, m.ID, r.Deadline, t.now)
	}
	if restricted(m) && !slices.Contains(r.Allocated, who.Key) {
		return denied("provider %s is not allocated to round %d of model %s (allocation rule %s, %d providers allocated; see GetAllocation)",
			who.Key, r.Number, m.ID, m.Allocation.Rule, len(r.Allocated))
	}
	if in.BaseCID != r.Global.CID || in.BaseSHA256 != r.Global.SHA256 {
		return fmt.Errorf("baseCid/baseSha256: the update must start from the global model of round %d (%s, %s)",
			r.Number, r.Global.CID, r.Global.SHA256)
	}
	if err := t.absent(providerRoundKey(m.ID, r.Number, who.Key),
		duplicate("provider %s already submitted an update to round %d of model %s", who.Key, r.Number, m.ID)); err != nil {
		return err
	}
	u.Round, u.BaseCID, u.BaseSHA256, u.Baseline = r.Number, r.Global.CID, r.Global.SHA256, m.Baseline
	return nil
}

// placeGossipUpdate checks the parents and places u under them. The
// baseline for the "improvement" rule is the best parent's median score
// (the model's baseline when there are no parents).
func (t *txCtx) placeGossipUpdate(in *UpdateInput, u *Update) error {
	m := t.model
	if in.Round != 0 || in.BaseCID != "" || in.BaseSHA256 != "" {
		return fmt.Errorf("round/baseCid/baseSha256: not used in gossip mode (name parents instead)")
	}
	if int64(len(in.Parents)) > m.RoundRules.MaxParents {
		return fmt.Errorf("parents: %d given, model %s allows at most %d", len(in.Parents), m.ID, m.RoundRules.MaxParents)
	}
	if err := checkUpdateIDs("parents", in.Parents); err != nil {
		return err
	}
	baseline := m.Baseline
	for i, pid := range in.Parents {
		f := fmt.Sprintf("parents[%d]", i)
		p, err := t.loadUpdate(pid)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if p.ModelID != m.ID {
			return fmt.Errorf("%s: update %s belongs to model %s, not %s", f, pid, p.ModelID, m.ID)
		}
		if p.Status != UpdateAccepted {
			return wrongState("%s: update %s is %s, not accepted", f, pid, p.Status)
		}
		if p.MedianScore != nil && (baseline == nil || better(m, *p.MedianScore, *baseline)) {
			s := *p.MedianScore
			baseline = &s
		}
	}
	standing, err := t.standing()
	if err != nil {
		return err
	}
	u.Parents = slices.Clone(in.Parents)
	u.Baseline = baseline
	u.Standing = standing
	return nil
}

// standing computes the transaction's provider's Standing from its previous
// update of the model, and refuses while that one is pending: a standing
// recorded before the verdicts would say less than the one a member reading
// the ledger later sees, and the committee must judge by one fixed record.
// The gossip agents already wait for their verdicts before building on the
// DAG again, so this costs them nothing.
func (t *txCtx) standing() (*Standing, error) {
	m, who := t.model, t.who
	last, err := t.read(lastUpdateKey(m.ID, who.Key))
	if err != nil || last == nil {
		return &Standing{}, err
	}
	p, err := t.loadUpdate(string(last))
	if err != nil {
		return nil, err
	}
	if p.Status == UpdatePending {
		return nil, wrongState("update %s of provider %s to model %s is pending: in gossip mode a provider "+
			"submits its next update once the last is judged", p.ID, who.Key, m.ID)
	}
	s := Standing{Previous: p.ID, Earlier: 1}
	if before := p.Standing; before != nil {
		s.Earlier += before.Earlier
		s.Accepted = before.Accepted
		if before.LastRejectedAgo > 0 {
			s.LastRejectedAgo = before.LastRejectedAgo + 1
		}
	}
	switch p.Status {
	case UpdateAccepted:
		s.Accepted++
	case UpdateRejected:
		s.LastRejectedAgo = 1
	}
	return &s, nil
}
