package fedcommittee

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// Queries return JSON strings. List queries take pageSize ("" = 50, max 200)
// and bookmark ("" = first page) and return a Page; pass the returned
// bookmark to get the next page (empty when done).

// WhoAmI returns the caller's identity key, MSP id, admin flag and account;
// agents use it to learn the identity key others must name them by.
func (c *Contract) WhoAmI(ctx contractapi.TransactionContextInterface) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	who, err := getCaller(ctx)
	if err != nil {
		return "", err
	}
	a, _, err := t.loadAccount(who.Key)
	if err != nil {
		return "", err
	}
	return toJSON(map[string]any{"identity": who.Key, "mspId": who.MSPID, "admin": who.Admin, "account": a})
}

// GetAccount returns an identity's account (roles, rewards, reputation).
func (c *Contract) GetAccount(ctx contractapi.TransactionContextInterface, identity string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if _, err := checkIdentityKey("identity", identity); err != nil {
		return "", err
	}
	a, found, err := t.loadAccount(identity)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("account %s not found", identity)
	}
	return toJSON(a)
}

// ListRoleHolders pages through the grants of one role.
func (c *Contract) ListRoleHolders(ctx contractapi.TransactionContextInterface, role, pageSize, bookmark string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkRole(role); err != nil {
		return "", err
	}
	return t.pageOf(keyRole, []string{role}, pageSize, bookmark, func(b []byte) (any, error) {
		var g RoleGrant
		return g, jsonUnmarshal(b, &g)
	})
}

// GetModel returns a model record.
func (c *Contract) GetModel(ctx contractapi.TransactionContextInterface, modelID string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	m, err := t.loadModel(modelID)
	if err != nil {
		return "", err
	}
	return toJSON(m)
}

// ListModels pages through all models.
func (c *Contract) ListModels(ctx contractapi.TransactionContextInterface, pageSize, bookmark string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	return t.pageOf(keyModel, []string{}, pageSize, bookmark, func(b []byte) (any, error) {
		var m Model
		return m, jsonUnmarshal(b, &m)
	})
}

// GetModelVotes returns the committee's approval/rejection votes on a model.
func (c *Contract) GetModelVotes(ctx contractapi.TransactionContextInterface, modelID string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkModelID(modelID); err != nil {
		return "", err
	}
	entries, err := t.scan(keyModelVote, []string{modelID}, MaxCommittee)
	if err != nil {
		return "", err
	}
	out := make([]ModelVote, 0, len(entries))
	for _, e := range entries {
		var v ModelVote
		if err := jsonUnmarshal(e.Value, &v); err != nil {
			return "", err
		}
		out = append(out, v)
	}
	return toJSON(out)
}

// GetRound returns one round of a federated model.
func (c *Contract) GetRound(ctx contractapi.TransactionContextInterface, modelID, round string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkModelID(modelID); err != nil {
		return "", err
	}
	n, err := parseRoundArg(round)
	if err != nil {
		return "", err
	}
	r, err := t.loadRound(modelID, n)
	if err != nil {
		return "", err
	}
	return toJSON(r)
}

// GetUpdate returns one update.
func (c *Contract) GetUpdate(ctx contractapi.TransactionContextInterface, updateID string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkUpdateID("updateId", updateID); err != nil {
		return "", err
	}
	u, err := t.loadUpdate(updateID)
	if err != nil {
		return "", err
	}
	return toJSON(u)
}

// GetVerdicts returns the verdicts on an update, ordered by member.
func (c *Contract) GetVerdicts(ctx contractapi.TransactionContextInterface, updateID string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkUpdateID("updateId", updateID); err != nil {
		return "", err
	}
	vs, err := t.verdicts(updateID)
	if err != nil {
		return "", err
	}
	return toJSON(vs)
}

// ListRoundUpdates pages through the updates of a round (round "0" lists
// all updates of a gossip model).
func (c *Contract) ListRoundUpdates(ctx contractapi.TransactionContextInterface, modelID, round, pageSize, bookmark string) (string, error) {
	return listUpdatesByRound(ctx, keyRoundUpd, modelID, round, pageSize, bookmark)
}

// ListAcceptedUpdates pages through the accepted updates of a round (round
// "0": the accepted updates of a gossip model, the candidates for parents).
func (c *Contract) ListAcceptedUpdates(ctx contractapi.TransactionContextInterface, modelID, round, pageSize, bookmark string) (string, error) {
	return listUpdatesByRound(ctx, keyAccepted, modelID, round, pageSize, bookmark)
}

func listUpdatesByRound(ctx contractapi.TransactionContextInterface, index, modelID, round, pageSize, bookmark string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkModelID(modelID); err != nil {
		return "", err
	}
	n, err := strconv.ParseInt(round, 10, 64)
	if err != nil || n < 0 || n > MaxRounds {
		return "", fmt.Errorf("round: %q is not a round number in [0, %d]", round, MaxRounds)
	}
	return t.pageOfUpdates(index, []string{modelID, roundAttr(n)}, pageSize, bookmark)
}

// ListProviderUpdates pages through one provider's updates to a model.
func (c *Contract) ListProviderUpdates(ctx contractapi.TransactionContextInterface, modelID, provider, pageSize, bookmark string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkModelID(modelID); err != nil {
		return "", err
	}
	if _, err := checkIdentityKey("provider", provider); err != nil {
		return "", err
	}
	return t.pageOfUpdates(keyProvUpd, []string{modelID, provider}, pageSize, bookmark)
}

// GetParents returns the parent updates of a (gossip) update, in the order
// the provider named them.
func (c *Contract) GetParents(ctx contractapi.TransactionContextInterface, updateID string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkUpdateID("updateId", updateID); err != nil {
		return "", err
	}
	u, err := t.loadUpdate(updateID)
	if err != nil {
		return "", err
	}
	out := make([]*Update, 0, len(u.Parents))
	for _, pid := range u.Parents {
		p, err := t.loadUpdate(pid)
		if err != nil {
			return "", err
		}
		out = append(out, p)
	}
	return toJSON(out)
}

// GetChildren pages through the updates that named updateID as a parent.
func (c *Contract) GetChildren(ctx contractapi.TransactionContextInterface, updateID, pageSize, bookmark string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkUpdateID("updateId", updateID); err != nil {
		return "", err
	}
	return t.pageOfUpdates(keyChild, []string{updateID}, pageSize, bookmark)
}

// GetAggregates returns the aggregate candidates of a round with their
// confirmations, ordered by sha256.
func (c *Contract) GetAggregates(ctx contractapi.TransactionContextInterface, modelID, round string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkModelID(modelID); err != nil {
		return "", err
	}
	n, err := parseRoundArg(round)
	if err != nil {
		return "", err
	}
	entries, err := t.scan(keyAggregate, []string{modelID, roundAttr(n)}, MaxAggregateCandidate+MaxCommittee)
	if err != nil {
		return "", err
	}
	out := make([]AggregateCandidate, 0, len(entries))
	for _, e := range entries {
		var a AggregateCandidate
		if err := jsonUnmarshal(e.Value, &a); err != nil {
			return "", err
		}
		out = append(out, a)
	}
	return toJSON(out)
}

// GetLeaderboard returns every identity's standing in a model, best net
// reward first (ties by identity), capped at MaxScan entries.
func (c *Contract) GetLeaderboard(ctx contractapi.TransactionContextInterface, modelID string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	if err := checkModelID(modelID); err != nil {
		return "", err
	}
	entries, err := t.scan(keyReward, []string{modelID}, MaxScan)
	if err != nil {
		return "", err
	}
	out := make([]RewardEntry, 0, len(entries))
	for _, e := range entries {
		var r RewardEntry
		if err := jsonUnmarshal(e.Value, &r); err != nil {
			return "", err
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b RewardEntry) int {
		if a.Net != b.Net {
			if a.Net > b.Net {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Identity, b.Identity)
	})
	return toJSON(out)
}

// HistoryEntry is one version of a record.
type HistoryEntry struct {
	TxID      string          `json:"txId"`
	Timestamp int64           `json:"timestamp"`
	IsDelete  bool            `json:"isDelete"`
	Value     json.RawMessage `json:"value,omitempty"`
}

// GetHistory returns every committed version of one record (oldest first,
// capped at MaxScan). kind/id: "model"/modelId, "update"/updateId,
// "account"/identity key, "round"/"<modelId>:<round>",
// "role"/"<role>:<identity key>", "rulechange"/proposalId,
// "data"/"<modelId>:<provider identity key>".
func (c *Contract) GetHistory(ctx contractapi.TransactionContextInterface, kind, id string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	key, err := t.historyKey(kind, id)
	if err != nil {
		return "", err
	}
	it, err := t.stub.GetHistoryForKey(key)
	if err != nil {
		return "", fmt.Errorf("history query: %v", err)
	}
	defer it.Close()
	out := []HistoryEntry{}
	for it.HasNext() {
		h, err := it.Next()
		if err != nil {
			return "", fmt.Errorf("history query: %v", err)
		}
		if len(out) == MaxScan {
			return "", fmt.Errorf("history of %s %s has more than %d versions", kind, id, MaxScan)
		}
		e := HistoryEntry{TxID: h.GetTxId(), Timestamp: h.GetTimestamp().GetSeconds(), IsDelete: h.GetIsDelete()}
		if !h.GetIsDelete() && json.Valid(h.GetValue()) {
			e.Value = json.RawMessage(h.GetValue())
		}
		out = append(out, e)
	}
	// The peer's history database yields newest first; the audit trail reads oldest first.
	slices.Reverse(out)
	return toJSON(out)
}

func (t *txCtx) historyKey(kind, id string) (string, error) {
	switch kind {
	case "model":
		if err := checkModelID(id); err != nil {
			return "", err
		}
		return t.key(keyModel, id)
	case "update":
		if err := checkUpdateID("id", id); err != nil {
			return "", err
		}
		return t.key(keyUpdate, id)
	case "account":
		if _, err := checkIdentityKey("id", id); err != nil {
			return "", err
		}
		return t.key(keyAccount, id)
	case "round":
		i := strings.LastIndex(id, ":")
		if i < 0 {
			return "", fmt.Errorf("id: %q must be \"<modelId>:<round>\"", id)
		}
		if err := checkModelID(id[:i]); err != nil {
			return "", err
		}
		n, err := parseRoundArg(id[i+1:])
		if err != nil {
			return "", err
		}
		return t.key(keyRound, id[:i], roundAttr(n))
	case "role":
		role, ident, ok := strings.Cut(id, ":")
		if !ok {
			return "", fmt.Errorf("id: %q must be \"<role>:<identity key>\"", id)
		}
		if err := checkRole(role); err != nil {
			return "", err
		}
		if _, err := checkIdentityKey("id", ident); err != nil {
			return "", err
		}
		return t.key(keyRole, role, ident)
	case "rulechange":
		if err := checkUpdateID("id", id); err != nil {
			return "", err
		}
		return t.key(keyRuleChange, id)
	case "data":
		model, ident, ok := strings.Cut(id, ":")
		if !ok {
			return "", fmt.Errorf("id: %q must be \"<modelId>:<identity key>\"", id)
		}
		if err := checkModelID(model); err != nil {
			return "", err
		}
		if _, err := checkIdentityKey("id", ident); err != nil {
			return "", err
		}
		return t.key(keyData, model, ident)
	}
	return "", fmt.Errorf("kind: %q is not one of model, update, account, round, role, rulechange, data", kind)
}

// pageOf pages through an index whose values are records decoded by dec.
func (t *txCtx) pageOf(objectType string, attrs []string, pageSize, bookmark string, dec func([]byte) (any, error)) (string, error) {
	entries, next, err := t.page(objectType, attrs, pageSize, bookmark)
	if err != nil {
		return "", err
	}
	p := Page{Items: make([]any, 0, len(entries)), Bookmark: next}
	for _, e := range entries {
		v, err := dec(e.Value)
		if err != nil {
			return "", err
		}
		p.Items = append(p.Items, v)
	}
	p.Count = len(p.Items)
	return toJSON(p)
}

// pageOfUpdates pages through an index whose last key attribute is an
// update id, and resolves each id to the current update record.
func (t *txCtx) pageOfUpdates(objectType string, attrs []string, pageSize, bookmark string) (string, error) {
	return pageOfIndex(t, objectType, attrs, pageSize, bookmark, t.loadUpdate)
}

// pageOfIndex pages through an index whose last key attribute is a record id
// and resolves each id with load, so a page always shows current records.
func pageOfIndex[T any](t *txCtx, objectType string, attrs []string, pageSize, bookmark string,
	load func(id string) (*T, error)) (string, error) {
	entries, next, err := t.page(objectType, attrs, pageSize, bookmark)
	if err != nil {
		return "", err
	}
	p := Page{Items: make([]any, 0, len(entries)), Bookmark: next}
	for _, e := range entries {
		id, err := t.lastAttr(e.Key)
		if err != nil {
			return "", err
		}
		record, err := load(id)
		if err != nil {
			return "", err
		}
		p.Items = append(p.Items, record)
	}
	p.Count = len(p.Items)
	return toJSON(p)
}
