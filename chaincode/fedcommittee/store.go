package fedcommittee

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The ledger layout: every key the contract reads or writes is built here,
// and every record is loaded and saved here, so a transaction names the
// record it wants and never the bytes under it.

// Object types, the first component of every composite key.
const (
	keyAccount    = "acct"    // acct~identity                         Account
	keyRole       = "role"    // role~role~identity                    RoleGrant
	keyModel      = "model"   // model~modelId                         Model
	keyModelVote  = "mvote"   // mvote~modelId~member                  ModelVote
	keyRound      = "round"   // round~modelId~round(%06d)             Round
	keyUpdate     = "update"  // update~updateId                       Update
	keyRoundUpd   = "rupd"    // rupd~modelId~round~updateId           index -> updateId
	keyProvUpd    = "pupd"    // pupd~modelId~provider~updateId        index -> updateId
	keyProvRound  = "provrnd" // provrnd~modelId~round~provider        index -> updateId
	keyUpdSha     = "updsha"  // updsha~modelId~sha256                 index -> updateId
	keyProvLast   = "plast"   // plast~modelId~provider                index -> updateId (gossip: the latest)
	keyChild      = "child"   // child~parentId~childId                index -> childId
	keyAccepted   = "acc"     // acc~modelId~round~updateId            Update (as accepted)
	keyVerdict    = "verdict" // verdict~updateId~member               Verdict
	keyAggregate  = "agg"     // agg~modelId~round~sha256              AggregateCandidate
	keyAggVote    = "aggvote" // aggvote~modelId~round~member          AggregateVote
	keyAggBy      = "aggby"   // aggby~modelId~round~recorder          index -> sha256
	keyReward     = "reward"  // reward~modelId~identity               RewardEntry
	keyData       = "data"    // data~modelId~provider                 DataRegistration
	keyAllocation = "alloc"   // alloc~modelId~round(%06d)             Allocation
	keyRotation   = "rot"     // rot~modelId~round(%06d)               Rotation (committee of that round)
	keyRuleChange = "rchange" // rchange~proposalId                    RuleChange
	keyRuleModel  = "rcmodel" // rcmodel~modelId~proposalId            index -> proposalId
	roundKeyWidth = 6
)

// recordKey names one record (or, with fewer attributes, a range of them).
type recordKey struct {
	objectType string
	attrs      []string
}

func roundAttr(r int64) string { return fmt.Sprintf("%0*d", roundKeyWidth, r) }

func accountKey(identity string) recordKey { return recordKey{keyAccount, []string{identity}} }
func roleKey(role, identity string) recordKey {
	return recordKey{keyRole, []string{role, identity}}
}
func modelKey(id string) recordKey { return recordKey{keyModel, []string{id}} }
func modelVoteKey(modelID, member string) recordKey {
	return recordKey{keyModelVote, []string{modelID, member}}
}
func roundKey(modelID string, n int64) recordKey {
	return recordKey{keyRound, []string{modelID, roundAttr(n)}}
}
func updateKey(id string) recordKey { return recordKey{keyUpdate, []string{id}} }
func updateSHAKey(modelID, sha string) recordKey {
	return recordKey{keyUpdSha, []string{modelID, sha}}
}
func providerRoundKey(modelID string, round int64, provider string) recordKey {
	return recordKey{keyProvRound, []string{modelID, roundAttr(round), provider}}
}
func lastUpdateKey(modelID, provider string) recordKey {
	return recordKey{keyProvLast, []string{modelID, provider}}
}
func verdictKey(updateID, member string) recordKey {
	return recordKey{keyVerdict, []string{updateID, member}}
}
func aggregateKey(modelID string, round int64, sha string) recordKey {
	return recordKey{keyAggregate, []string{modelID, roundAttr(round), sha}}
}
func aggregateVoteKey(modelID string, round int64, member string) recordKey {
	return recordKey{keyAggVote, []string{modelID, roundAttr(round), member}}
}
func aggregateByKey(modelID string, round int64, recorder string) recordKey {
	return recordKey{keyAggBy, []string{modelID, roundAttr(round), recorder}}
}
func rewardKey(modelID, identity string) recordKey {
	return recordKey{keyReward, []string{modelID, identity}}
}
func dataKey(modelID, provider string) recordKey {
	return recordKey{keyData, []string{modelID, provider}}
}
func allocationKey(modelID string, n int64) recordKey {
	return recordKey{keyAllocation, []string{modelID, roundAttr(n)}}
}
func rotationKey(modelID string, n int64) recordKey {
	return recordKey{keyRotation, []string{modelID, roundAttr(n)}}
}
func ruleChangeKey(id string) recordKey { return recordKey{keyRuleChange, []string{id}} }

// ---------------------------------------------------------------- accounts and roles

// loadAccount returns identity's account, or a fresh one (found false).
func (t *txCtx) loadAccount(identity string) (*Account, bool, error) {
	a, found, err := find[Account](t, accountKey(identity))
	if err != nil || found {
		return a, found, err
	}
	msp, _ := checkIdentityKey("identity", identity)
	return &Account{DocType: "account", Identity: identity, MSPID: msp, Roles: []string{}}, false, nil
}

func (t *txCtx) saveAccount(a *Account) error {
	a.UpdatedTx = t.txID
	return t.save(accountKey(a.Identity), a)
}

// hasRole reads the role index entry (one point read, no scan).
func (t *txCtx) hasRole(identity, role string) (bool, error) {
	return t.stored(roleKey(role, identity))
}

func (t *txCtx) saveRoleGrant(g *RoleGrant) error { return t.save(roleKey(g.Role, g.Identity), g) }

func (t *txCtx) deleteRoleGrant(role, identity string) error {
	return t.remove(roleKey(role, identity))
}

func (t *txCtx) pageRoleGrants(role, pageSize, bookmark string) (*Page, error) {
	return pageOfRecords[RoleGrant](t, recordKey{keyRole, []string{role}}, pageSize, bookmark)
}

// credit applies f to identity's account and its per-model reward entry and
// recomputes reputation.
func (t *txCtx) credit(m *Model, identity string, f func(*Account, *RewardEntry)) error {
	a, _, err := t.loadAccount(identity)
	if err != nil {
		return err
	}
	e, err := t.loadReward(m.ID, identity)
	if err != nil {
		return err
	}
	f(a, e)
	a.Reputation = reputation(a.Accepted, a.Rejected)
	e.Reputation = reputation(e.Accepted, e.Rejected)
	e.Net = e.Rewards - e.Penalties
	if err := t.saveAccount(a); err != nil {
		return err
	}
	return t.saveReward(e)
}

// reward entry: identity's standing within one model (fresh when absent).
func (t *txCtx) loadReward(modelID, identity string) (*RewardEntry, error) {
	e, found, err := find[RewardEntry](t, rewardKey(modelID, identity))
	if err != nil || found {
		return e, err
	}
	return &RewardEntry{DocType: "reward", ModelID: modelID, Identity: identity}, nil
}

func (t *txCtx) saveReward(e *RewardEntry) error { return t.save(rewardKey(e.ModelID, e.Identity), e) }

func (t *txCtx) rewardsOf(modelID string) ([]RewardEntry, error) {
	return scanRecords[RewardEntry](t, recordKey{keyReward, []string{modelID}}, MaxScan)
}

func (t *txCtx) pageRewards(modelID, pageSize, bookmark string) (*Page, error) {
	return pageOfRecords[RewardEntry](t, recordKey{keyReward, []string{modelID}}, pageSize, bookmark)
}

// ---------------------------------------------------------------- models

func (t *txCtx) loadModel(modelID string) (*Model, error) {
	if err := checkModelID(modelID); err != nil {
		return nil, err
	}
	return load[Model](t, modelKey(modelID), "model "+modelID)
}

func (t *txCtx) saveModel(m *Model) error { return t.save(modelKey(m.ID), m) }

// pageModels pages through the models, a proposed one with its vote counts
// (withVoteCounts).
func (t *txCtx) pageModels(pageSize, bookmark string) (*Page, error) {
	return pageWith(t, recordKey{keyModel, []string{}}, pageSize, bookmark, func(e kv) (any, error) {
		var m Model
		if err := jsonUnmarshal(e.Value, &m); err != nil {
			return nil, err
		}
		return t.withVoteCounts(&m)
	})
}

func (t *txCtx) saveModelVote(v *ModelVote) error {
	return t.save(modelVoteKey(v.ModelID, v.Member), v)
}

// modelVotes reads the committee's votes on a model (bounded by the committee size).
func (t *txCtx) modelVotes(modelID string) ([]ModelVote, error) {
	return scanRecords[ModelVote](t, recordKey{keyModelVote, []string{modelID}}, MaxCommittee)
}

// ---------------------------------------------------------------- rounds

func (t *txCtx) loadRound(modelID string, n int64) (*Round, error) {
	return load[Round](t, roundKey(modelID, n), fmt.Sprintf("round %d of model %s", n, modelID))
}

func (t *txCtx) saveRound(r *Round) error { return t.save(roundKey(r.ModelID, r.Number), r) }

func (t *txCtx) saveAllocation(a *Allocation) error {
	return t.save(allocationKey(a.ModelID, a.Round), a)
}

func (t *txCtx) loadAllocation(modelID string, n int64) (*Allocation, error) {
	return load[Allocation](t, allocationKey(modelID, n), fmt.Sprintf("allocation of round %d of model %s", n, modelID))
}

func (t *txCtx) saveRotation(r *Rotation) error { return t.save(rotationKey(r.ModelID, r.Round), r) }

func (t *txCtx) loadRotation(modelID string, n int64) (*Rotation, error) {
	rot, found, err := find[Rotation](t, rotationKey(modelID, n))
	if err == nil && !found {
		err = notFound("no rotation recorded for round %d of model %s", n, modelID)
	}
	return rot, err
}

// ---------------------------------------------------------------- updates

func (t *txCtx) loadUpdate(updateID string) (*Update, error) {
	return load[Update](t, updateKey(updateID), "update "+updateID)
}

func (t *txCtx) saveUpdate(u *Update) error { return t.save(updateKey(u.ID), u) }

// indexUpdate writes a new update's index entries: by sha256 (one submission
// of an object per model), by round, by provider, and by provider and round
// (federated: one update per provider per round) or by parent (gossip).
// Each entry is keyed by the update or its provider, so two providers'
// submissions never write the same key.
func (t *txCtx) indexUpdate(u *Update) error {
	keys := []recordKey{
		{keyRoundUpd, []string{u.ModelID, roundAttr(u.Round), u.ID}},
		{keyProvUpd, []string{u.ModelID, u.Provider, u.ID}},
	}
	if u.Refusal == "" { // a replay leaves the sha256 to the update that first had it
		keys = append(keys, updateSHAKey(u.ModelID, u.SHA256))
	}
	if u.Mode == ModeFederated {
		keys = append(keys, providerRoundKey(u.ModelID, u.Round, u.Provider))
	} else {
		keys = append(keys, lastUpdateKey(u.ModelID, u.Provider)) // overwrites the previous one's
	}
	for _, p := range u.Parents {
		keys = append(keys, recordKey{keyChild, []string{p, u.ID}})
	}
	for _, k := range keys {
		if err := t.putIndex(k, u.ID); err != nil {
			return err
		}
	}
	return nil
}

// providerRoundUpdate returns the id of provider's update to a round ("" if none).
func (t *txCtx) providerRoundUpdate(modelID string, round int64, provider string) (string, error) {
	b, err := t.read(providerRoundKey(modelID, round, provider))
	return string(b), err
}

// markAccepted adds an accepted update to its round's accepted set.
func (t *txCtx) markAccepted(u *Update) error {
	return t.save(recordKey{keyAccepted, []string{u.ModelID, roundAttr(u.Round), u.ID}}, u)
}

// acceptedUpdates returns the accepted set of a round in update id order.
func (t *txCtx) acceptedUpdates(modelID string, round int64) ([]Update, error) {
	return scanRecords[Update](t, recordKey{keyAccepted, []string{modelID, roundAttr(round)}}, MaxAcceptedPerRound)
}

func (t *txCtx) pageRoundUpdates(modelID string, round int64, pageSize, bookmark string) (*Page, error) {
	return pageOfIndex(t, recordKey{keyRoundUpd, []string{modelID, roundAttr(round)}}, pageSize, bookmark, t.loadUpdate)
}

func (t *txCtx) pageAcceptedUpdates(modelID string, round int64, pageSize, bookmark string) (*Page, error) {
	return pageOfIndex(t, recordKey{keyAccepted, []string{modelID, roundAttr(round)}}, pageSize, bookmark, t.loadUpdate)
}

func (t *txCtx) pageProviderUpdates(modelID, provider, pageSize, bookmark string) (*Page, error) {
	return pageOfIndex(t, recordKey{keyProvUpd, []string{modelID, provider}}, pageSize, bookmark, t.loadUpdate)
}

func (t *txCtx) pageChildren(updateID, pageSize, bookmark string) (*Page, error) {
	return pageOfIndex(t, recordKey{keyChild, []string{updateID}}, pageSize, bookmark, t.loadUpdate)
}

// ---------------------------------------------------------------- verdicts and aggregates

func (t *txCtx) saveVerdict(v *Verdict) error { return t.save(verdictKey(v.UpdateID, v.Member), v) }

// verdicts returns the committed verdicts of an update in member order
// (bounded by the committee size).
func (t *txCtx) verdicts(updateID string) ([]Verdict, error) {
	return scanRecords[Verdict](t, recordKey{keyVerdict, []string{updateID}}, MaxCommittee)
}

func (t *txCtx) loadAggregate(modelID string, round int64, sha string) (*AggregateCandidate, error) {
	c, found, err := find[AggregateCandidate](t, aggregateKey(modelID, round, sha))
	if err == nil && !found {
		err = notFound("no aggregate with sha256 %s is recorded for round %d of model %s", sha, round, modelID)
	}
	return c, err
}

func (t *txCtx) saveAggregate(c *AggregateCandidate) error {
	return t.save(aggregateKey(c.ModelID, c.Round, c.SHA256), c)
}

// aggregatesOf returns a round's candidates in sha256 order.
func (t *txCtx) aggregatesOf(modelID string, round int64) ([]AggregateCandidate, error) {
	return scanRecords[AggregateCandidate](t, recordKey{keyAggregate, []string{modelID, roundAttr(round)}},
		MaxAggregateCandidate+MaxCommittee)
}

// saveAggregateBy records which aggregate a recorder recorded for a round.
func (t *txCtx) saveAggregateBy(c *AggregateCandidate) error {
	return t.putIndex(aggregateByKey(c.ModelID, c.Round, c.RecordedBy), c.SHA256)
}

func (t *txCtx) saveAggregateVote(v *AggregateVote) error {
	return t.save(aggregateVoteKey(v.ModelID, v.Round, v.Member), v)
}

// ---------------------------------------------------------------- data registrations

func (t *txCtx) findData(modelID, provider string) (*DataRegistration, bool, error) {
	return find[DataRegistration](t, dataKey(modelID, provider))
}

func (t *txCtx) saveData(d *DataRegistration) error { return t.save(dataKey(d.ModelID, d.Provider), d) }

// dataRegistrants returns the providers registered for a model in identity
// order: the first limit of them when there are more.
func (t *txCtx) dataRegistrants(modelID string, limit int) ([]string, error) {
	entries, err := t.scanFirst(recordKey{keyData, []string{modelID}}, limit)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		p, err := t.lastAttr(e.Key)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (t *txCtx) pageData(modelID, pageSize, bookmark string) (*Page, error) {
	return pageOfRecords[DataRegistration](t, recordKey{keyData, []string{modelID}}, pageSize, bookmark)
}

// ---------------------------------------------------------------- rule changes

func (t *txCtx) loadRuleChange(id string) (*RuleChange, error) {
	return load[RuleChange](t, ruleChangeKey(id), "rule change "+id)
}

func (t *txCtx) saveRuleChange(rc *RuleChange) error { return t.save(ruleChangeKey(rc.ID), rc) }

// indexRuleChange lists a new proposal under its model.
func (t *txCtx) indexRuleChange(rc *RuleChange) error {
	return t.putIndex(recordKey{keyRuleModel, []string{rc.ModelID, rc.ID}}, rc.ID)
}

func (t *txCtx) pageRuleChanges(modelID, pageSize, bookmark string) (*Page, error) {
	return pageOfIndex(t, recordKey{keyRuleModel, []string{modelID}}, pageSize, bookmark, t.loadRuleChange)
}

// ---------------------------------------------------------------- history

// historyKey names the record of GetHistory's kind and id.
func historyKey(kind, id string) (recordKey, error) {
	switch kind {
	case "model":
		return modelKey(id), checkModelID(id)
	case "update":
		return updateKey(id), checkUpdateID("id", id)
	case "account":
		_, err := checkIdentityKey("id", id)
		return accountKey(id), err
	case "round":
		i := strings.LastIndex(id, ":")
		if i < 0 {
			return recordKey{}, fmt.Errorf("id: %q must be \"<modelId>:<round>\"", id)
		}
		if err := checkModelID(id[:i]); err != nil {
			return recordKey{}, err
		}
		n, err := parseRoundArg(id[i+1:])
		return roundKey(id[:i], n), err
	case "role":
		role, ident, err := splitID(id, "<role>:<identity key>")
		if err != nil {
			return recordKey{}, err
		}
		if err := checkRole(role); err != nil {
			return recordKey{}, err
		}
		_, err = checkIdentityKey("id", ident)
		return roleKey(role, ident), err
	case "rulechange":
		return ruleChangeKey(id), checkUpdateID("id", id)
	case "data":
		model, ident, err := splitID(id, "<modelId>:<identity key>")
		if err != nil {
			return recordKey{}, err
		}
		if err := checkModelID(model); err != nil {
			return recordKey{}, err
		}
		_, err = checkIdentityKey("id", ident)
		return dataKey(model, ident), err
	}
	return recordKey{}, fmt.Errorf("kind: %q is not one of model, update, account, round, role, rulechange, data", kind)
}

// splitID splits a "<a>:<b>" history id; form names the two parts.
func splitID(id, form string) (string, string, error) {
	a, b, ok := strings.Cut(id, ":")
	if !ok {
		return "", "", fmt.Errorf("id: %q must be %q", id, form)
	}
	return a, b, nil
}

// HistoryEntry is one version of a record.
type HistoryEntry struct {
	TxID      string          `json:"txId"`
	Timestamp int64           `json:"timestamp"`
	IsDelete  bool            `json:"isDelete"`
	Value     json.RawMessage `json:"value,omitempty"`
}

// history returns every committed version of the record under k (what
// names it in the refusal), oldest first, at most MaxScan of them.
func (t *txCtx) history(k recordKey, what string) ([]HistoryEntry, error) {
	key, err := t.key(k)
	if err != nil {
		return nil, err
	}
	it, err := t.stub.GetHistoryForKey(key)
	if err != nil {
		return nil, fmt.Errorf("history query: %v", err)
	}
	defer it.Close()
	out := []HistoryEntry{}
	for it.HasNext() {
		h, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history query: %v", err)
		}
		if len(out) == MaxScan {
			return nil, fmt.Errorf("history of %s has more than %d versions", what, MaxScan)
		}
		e := HistoryEntry{TxID: h.GetTxId(), Timestamp: h.GetTimestamp().GetSeconds(), IsDelete: h.GetIsDelete()}
		if !h.GetIsDelete() && json.Valid(h.GetValue()) {
			e.Value = json.RawMessage(h.GetValue())
		}
		out = append(out, e)
	}
	// The peer's history database yields newest first; the audit trail reads oldest first.
	slices.Reverse(out)
	return out, nil
}
