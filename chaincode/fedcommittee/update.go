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
// must be left out.
func (c *Contract) SubmitUpdate(ctx contractapi.TransactionContextInterface, modelID, input string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return "", err
	}
	if err := t.requireRole(who, RoleProvider); err != nil {
		return "", err
	}
	m, err := t.loadModel(modelID)
	if err != nil {
		return "", err
	}
	if m.Status != ModelActive {
		return "", fmt.Errorf("model %s is %s, not active: updates are not accepted", m.ID, m.Status)
	}
	var in UpdateInput
	if err := decodeStrict("SubmitUpdate input", input, &in); err != nil {
		return "", err
	}
	if err := checkObjectRef("update", ObjectRef{CID: in.CID, SHA256: in.SHA256}); err != nil {
		return "", err
	}
	if err := checkRange("numSamples", in.NumSamples, 1, MaxSamples); err != nil {
		return "", err
	}
	if len(in.Metrics) > MaxMetrics {
		return "", fmt.Errorf("metrics: %d entries, limit is %d", len(in.Metrics), MaxMetrics)
	}
	for _, name := range sortedKeys(in.Metrics) {
		if err := checkName("metrics key", name); err != nil {
			return "", err
		}
		if err := checkFinite("metrics."+name, in.Metrics[name]); err != nil {
			return "", err
		}
	}
	if err := checkUpdateID("txId", t.txID); err != nil {
		return "", err
	}
	u := Update{
		DocType: "update", ID: t.txID, ModelID: m.ID, Mode: m.Mode, Provider: who.Key,
		CID: in.CID, SHA256: in.SHA256, NumSamples: in.NumSamples, Metrics: in.Metrics,
		Parents: []string{}, Status: UpdatePending, SubmittedAt: t.now,
	}
	if u.Metrics == nil {
		u.Metrics = map[string]float64{}
	}
	// A sha256 may be submitted once per model, so nobody can claim credit
	// for another provider's update by resubmitting its object.
	shaKey, err := t.absentKey(
		fmt.Errorf("sha256: an update with sha256 %s was already submitted to model %s", in.SHA256, m.ID),
		keyUpdSha, m.ID, in.SHA256)
	if err != nil {
		return "", err
	}
	var indexKeys []string // written after every check has passed
	if m.Mode == ModeFederated {
		k, err := t.checkFederatedUpdate(m, &in, &u, who)
		if err != nil {
			return "", err
		}
		indexKeys = append(indexKeys, k)
	} else {
		ks, err := t.checkGossipUpdate(m, &in, &u)
		if err != nil {
			return "", err
		}
		indexKeys = append(indexKeys, ks...)
	}
	uk, err := t.absentKey(fmt.Errorf("update %s already exists", u.ID), keyUpdate, u.ID)
	if err != nil {
		return "", err
	}
	rk, err := t.key(keyRoundUpd, m.ID, roundAttr(u.Round), u.ID)
	if err != nil {
		return "", err
	}
	pk, err := t.key(keyProvUpd, m.ID, who.Key, u.ID)
	if err != nil {
		return "", err
	}
	if err := t.putJSON(uk, &u); err != nil {
		return "", err
	}
	for _, k := range append([]string{shaKey, rk, pk}, indexKeys...) {
		if err := t.stub.PutState(k, []byte(u.ID)); err != nil {
			return "", fmt.Errorf("writing index: %v", err)
		}
	}
	if err := t.emit(Event{Type: EvUpdateSubmitted, ModelID: m.ID, Mode: m.Mode, Round: u.Round, UpdateID: u.ID,
		Status: u.Status, CID: u.CID, SHA256: u.SHA256, Provider: u.Provider, Parents: u.Parents}, who.Key); err != nil {
		return "", err
	}
	return toJSON(&u)
}

// checkFederatedUpdate applies the round rules and returns the
// one-update-per-provider-per-round key.
func (t *txCtx) checkFederatedUpdate(m *Model, in *UpdateInput, u *Update, who *caller) (string, error) {
	if len(in.Parents) != 0 {
		return "", fmt.Errorf("parents: not used in federated mode")
	}
	if in.Round != m.CurrentRound {
		return "", fmt.Errorf("round: %d is not the open round of model %s (current round %d)", in.Round, m.ID, m.CurrentRound)
	}
	r, err := t.loadRound(m.ID, in.Round)
	if err != nil {
		return "", err
	}
	if r.Status != RoundOpen {
		return "", fmt.Errorf("round %d of model %s is %s: updates are closed", r.Number, m.ID, r.Status)
	}
	if t.now > r.Deadline {
		return "", fmt.Errorf("round %d of model %s: deadline %d has passed (now %d)", r.Number, m.ID, r.Deadline, t.now)
	}
	if restricted(m) && !slices.Contains(r.Allocated, who.Key) {
		return "", fmt.Errorf("access denied: provider %s is not allocated to round %d of model %s (allocation rule %s, %d providers allocated; see GetAllocation)",
			who.Key, r.Number, m.ID, m.Allocation.Rule, len(r.Allocated))
	}
	if in.BaseCID != r.Global.CID || in.BaseSHA256 != r.Global.SHA256 {
		return "", fmt.Errorf("baseCid/baseSha256: the update must start from the global model of round %d (%s, %s)",
			r.Number, r.Global.CID, r.Global.SHA256)
	}
	k, err := t.absentKey(
		fmt.Errorf("provider %s already submitted an update to round %d of model %s", who.Key, r.Number, m.ID),
		keyProvRound, m.ID, roundAttr(r.Number), who.Key)
	if err != nil {
		return "", err
	}
	u.Round, u.BaseCID, u.BaseSHA256, u.Baseline = r.Number, r.Global.CID, r.Global.SHA256, m.Baseline
	return k, nil
}

// checkGossipUpdate checks the parents and returns their child index keys.
// The baseline for the "improvement" rule is the best parent's median score
// (the model's baseline when there are no parents).
func (t *txCtx) checkGossipUpdate(m *Model, in *UpdateInput, u *Update) ([]string, error) {
	if in.Round != 0 || in.BaseCID != "" || in.BaseSHA256 != "" {
		return nil, fmt.Errorf("round/baseCid/baseSha256: not used in gossip mode (name parents instead)")
	}
	if int64(len(in.Parents)) > m.RoundRules.MaxParents {
		return nil, fmt.Errorf("parents: %d given, model %s allows at most %d", len(in.Parents), m.ID, m.RoundRules.MaxParents)
	}
	baseline := m.Baseline
	var keys []string
	for i, pid := range in.Parents {
		f := fmt.Sprintf("parents[%d]", i)
		if err := checkUpdateID(f, pid); err != nil {
			return nil, err
		}
		if slices.Contains(in.Parents[:i], pid) {
			return nil, fmt.Errorf("%s: %s is listed twice", f, pid)
		}
		p, err := t.loadUpdate(pid)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		if p.ModelID != m.ID {
			return nil, fmt.Errorf("%s: update %s belongs to model %s, not %s", f, pid, p.ModelID, m.ID)
		}
		if p.Status != UpdateAccepted {
			return nil, fmt.Errorf("%s: update %s is %s, not accepted", f, pid, p.Status)
		}
		if p.MedianScore != nil && (baseline == nil || better(m, *p.MedianScore, *baseline)) {
			s := *p.MedianScore
			baseline = &s
		}
		k, err := t.key(keyChild, pid, u.ID)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	u.Parents = slices.Clone(in.Parents)
	u.Baseline = baseline
	return keys, nil
}

// better reports whether score a beats score b under the model's metric.
func better(m *Model, a, b float64) bool {
	if m.Metric.HigherIsBetter {
		return a > b
	}
	return a < b
}

func (t *txCtx) loadUpdate(updateID string) (*Update, error) {
	return mustLoad[Update](t, "update "+updateID, keyUpdate, updateID)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
