package fedcommittee

import (
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
	return runJSON(ctx, nil, func(t *txCtx) (any, error) {
		a, _, err := t.loadAccount(t.who.Key)
		return map[string]any{"identity": t.who.Key, "mspId": t.who.MSPID, "admin": t.who.Admin, "account": a}, err
	})
}

// GetAccount returns an identity's account (roles, rewards, reputation).
func (c *Contract) GetAccount(ctx contractapi.TransactionContextInterface, identity string) (string, error) {
	return query(ctx, opening{identityArg("identity", identity)}, func(t *txCtx) (any, error) {
		a, found, err := t.loadAccount(identity)
		if err == nil && !found {
			err = notFound("account %s not found", identity)
		}
		return a, err
	})
}

// ListRoleHolders pages through the grants of one role.
func (c *Contract) ListRoleHolders(ctx contractapi.TransactionContextInterface, role, pageSize, bookmark string) (string, error) {
	return query(ctx, opening{roleArg(role)}, func(t *txCtx) (any, error) { return t.pageRoleGrants(role, pageSize, bookmark) })
}

// GetModel returns a model record.
func (c *Contract) GetModel(ctx contractapi.TransactionContextInterface, modelID string) (string, error) {
	return query(ctx, nil, func(t *txCtx) (any, error) {
		m, err := t.loadModel(modelID)
		if err != nil {
			return nil, err
		}
		return t.withVoteCounts(m)
	})
}

// ModelState is what an agent reads at the start of each pass: the model,
// once a federated model has opened a round its current round, and while
// that round is closed its candidate aggregates (what is left to do then).
type ModelState struct {
	Model      *Model               `json:"model"`
	Round      *Round               `json:"round"`
	Aggregates []AggregateCandidate `json:"aggregates,omitempty"`
}

// GetModelState returns a model record with its current round (null before
// round 1 and in gossip mode) and, while that round is closed, the round's
// candidate aggregates, in one query: every agent reads these on every pass,
// and on Fabric each query is a chaincode run on the peer.
func (c *Contract) GetModelState(ctx contractapi.TransactionContextInterface, modelID string) (string, error) {
	return query(ctx, nil, func(t *txCtx) (any, error) {
		m, err := t.loadModel(modelID)
		if err != nil {
			return nil, err
		}
		if m, err = t.withVoteCounts(m); err != nil {
			return nil, err
		}
		st := ModelState{Model: m}
		if m.Mode != ModeFederated || m.CurrentRound < 1 {
			return st, nil
		}
		if st.Round, err = t.loadRound(modelID, m.CurrentRound); err != nil || st.Round.Status != RoundClosed {
			return st, err
		}
		st.Aggregates, err = t.aggregatesOf(modelID, m.CurrentRound)
		return st, err
	})
}

// ListModels pages through all models.
func (c *Contract) ListModels(ctx contractapi.TransactionContextInterface, pageSize, bookmark string) (string, error) {
	return query(ctx, nil, func(t *txCtx) (any, error) { return t.pageModels(pageSize, bookmark) })
}

// GetModelVotes returns the committee's approval/rejection votes on a model.
func (c *Contract) GetModelVotes(ctx contractapi.TransactionContextInterface, modelID string) (string, error) {
	return query(ctx, opening{modelIDArg(modelID)}, func(t *txCtx) (any, error) { return t.modelVotes(modelID) })
}

// GetRound returns one round of a federated model.
func (c *Contract) GetRound(ctx contractapi.TransactionContextInterface, modelID, round string) (string, error) {
	var n int64
	return query(ctx, opening{modelIDArg(modelID), roundNumber(round, &n)}, func(t *txCtx) (any, error) {
		return t.loadRound(modelID, n)
	})
}

// GetUpdate returns one update.
func (c *Contract) GetUpdate(ctx contractapi.TransactionContextInterface, updateID string) (string, error) {
	return query(ctx, opening{updateIDArg("updateId", updateID)}, func(t *txCtx) (any, error) { return t.loadUpdate(updateID) })
}

// GetVerdicts returns the verdicts on an update, ordered by member.
func (c *Contract) GetVerdicts(ctx contractapi.TransactionContextInterface, updateID string) (string, error) {
	return query(ctx, opening{updateIDArg("updateId", updateID)}, func(t *txCtx) (any, error) { return t.verdicts(updateID) })
}

// ListRoundUpdates pages through the updates of a round (round "0" lists
// all updates of a gossip model).
func (c *Contract) ListRoundUpdates(ctx contractapi.TransactionContextInterface, modelID, round, pageSize, bookmark string) (string, error) {
	var n int64
	return query(ctx, opening{modelIDArg(modelID), listRound(round, &n)}, func(t *txCtx) (any, error) {
		return t.pageRoundUpdates(modelID, n, pageSize, bookmark)
	})
}

// ListAcceptedUpdates pages through the accepted updates of a round (round
// "0": the accepted updates of a gossip model, the candidates for parents).
func (c *Contract) ListAcceptedUpdates(ctx contractapi.TransactionContextInterface, modelID, round, pageSize, bookmark string) (string, error) {
	var n int64
	return query(ctx, opening{modelIDArg(modelID), listRound(round, &n)}, func(t *txCtx) (any, error) {
		return t.pageAcceptedUpdates(modelID, n, pageSize, bookmark)
	})
}

// listRound parses the round of a listing, where 0 names a gossip model's updates.
func listRound(round string, n *int64) step {
	return valid(func() (err error) {
		*n, err = strconv.ParseInt(round, 10, 64)
		if err != nil || *n < 0 || *n > MaxRounds {
			return fmt.Errorf("round: %q is not a round number in [0, %d]", round, MaxRounds)
		}
		return nil
	})
}

// ListProviderUpdates pages through one provider's updates to a model.
func (c *Contract) ListProviderUpdates(ctx contractapi.TransactionContextInterface, modelID, provider, pageSize, bookmark string) (string, error) {
	return query(ctx, opening{modelIDArg(modelID), identityArg("provider", provider)}, func(t *txCtx) (any, error) {
		return t.pageProviderUpdates(modelID, provider, pageSize, bookmark)
	})
}

// GetParents returns the parent updates of a (gossip) update, in the order
// the provider named them.
func (c *Contract) GetParents(ctx contractapi.TransactionContextInterface, updateID string) (string, error) {
	return query(ctx, opening{updateIDArg("updateId", updateID)}, func(t *txCtx) (any, error) {
		u, err := t.loadUpdate(updateID)
		if err != nil {
			return nil, err
		}
		out := make([]*Update, 0, len(u.Parents))
		for _, pid := range u.Parents {
			p, err := t.loadUpdate(pid)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	})
}

// GetChildren pages through the updates that named updateID as a parent.
func (c *Contract) GetChildren(ctx contractapi.TransactionContextInterface, updateID, pageSize, bookmark string) (string, error) {
	return query(ctx, opening{updateIDArg("updateId", updateID)}, func(t *txCtx) (any, error) {
		return t.pageChildren(updateID, pageSize, bookmark)
	})
}

// GetAggregates returns the aggregate candidates of a round with their
// confirmations, ordered by sha256.
func (c *Contract) GetAggregates(ctx contractapi.TransactionContextInterface, modelID, round string) (string, error) {
	var n int64
	return query(ctx, opening{modelIDArg(modelID), roundNumber(round, &n)}, func(t *txCtx) (any, error) {
		return t.aggregatesOf(modelID, n)
	})
}

// GetLeaderboard returns every identity's standing in a model, best net
// reward first (ties by identity), capped at MaxScan entries.
func (c *Contract) GetLeaderboard(ctx contractapi.TransactionContextInterface, modelID string) (string, error) {
	return query(ctx, opening{modelIDArg(modelID)}, func(t *txCtx) (any, error) {
		out, err := t.rewardsOf(modelID)
		slices.SortFunc(out, func(a, b RewardEntry) int {
			if a.Net != b.Net {
				if a.Net > b.Net {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Identity, b.Identity)
		})
		return out, err
	})
}

// ListRewards pages through every identity's standing in a model in identity
// order: the whole leaderboard, where GetLeaderboard stops at MaxScan entries
// (a consortium of 1,000 providers and its committee holds more).
func (c *Contract) ListRewards(ctx contractapi.TransactionContextInterface, modelID, pageSize, bookmark string) (string, error) {
	return query(ctx, opening{modelIDArg(modelID)}, func(t *txCtx) (any, error) {
		return t.pageRewards(modelID, pageSize, bookmark)
	})
}

// GetHistory returns every committed version of one record (oldest first,
// capped at MaxScan). kind/id: "model"/modelId, "update"/updateId,
// "account"/identity key, "round"/"<modelId>:<round>",
// "role"/"<role>:<identity key>", "rulechange"/proposalId,
// "data"/"<modelId>:<provider identity key>".
func (c *Contract) GetHistory(ctx contractapi.TransactionContextInterface, kind, id string) (string, error) {
	var rk recordKey
	return query(ctx, opening{valid(func() (err error) {
		rk, err = historyKey(kind, id)
		return err
	})}, func(t *txCtx) (any, error) { return t.history(rk, kind+" "+id) })
}
