package fedcommittee

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// Allocation is the set of providers allowed to submit to one round, fixed
// when the round opens.
type Allocation struct {
	DocType   string           `json:"docType"`
	ModelID   string           `json:"modelId"`
	Round     int64            `json:"round"`
	Rule      string           `json:"rule"`
	K         int64            `json:"k"`
	Seed      string           `json:"seed,omitempty"`      // random: the PublishModel tx id
	RoundSeed string           `json:"roundSeed,omitempty"` // random: sha256(modelId|round|seed)
	Eligible  int64            `json:"eligible"`            // registered providers holding the provider role
	Providers []string         `json:"providers"`           // allocated, in rank order
	Ranking   []AllocationRank `json:"ranking"`             // why each allocated provider was chosen
	TxID      string           `json:"txId"`
	Timestamp int64            `json:"timestamp"`
}

// AllocationRank is one allocated provider and its ranking key.
type AllocationRank struct {
	Provider   string   `json:"provider"`
	Draw       string   `json:"draw,omitempty"`       // random: sha256(roundSeed|provider), ascending
	Reputation *float64 `json:"reputation,omitempty"` // reputation: descending
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// RoundSeed is the per-round seed of the random allocation rule:
// hex(sha256(modelId + "|" + decimal round + "|" + seed)).
func RoundSeed(modelID string, round int64, seed string) string {
	return sha256Hex(modelID + "|" + strconv.FormatInt(round, 10) + "|" + seed)
}

// Draw is a provider's ranking key in a round: hex(sha256(roundSeed + "|" +
// provider)). The k smallest draws (ties by identity) are allocated.
func Draw(roundSeed, provider string) string {
	return sha256Hex(roundSeed + "|" + provider)
}

// allocate computes and stores the allocation of round n of m. The pool is
// every provider with a data registration for the model that still holds
// the provider role, read in key (identity) order.
//
// The pool is read from at most MaxDataRegistrants registrations (the first
// in identity order). This is where the limit is enforced because the
// transactions whose work grows with the number of registrations run once
// per round (this one, and a close short of minAccepted: everyoneFinal),
// while RegisterData itself keeps no count, since a count every provider
// writes would make concurrent registrations conflict. Registrations are
// keyed by provider identity and only provider role holders (granted by org
// admins) can register, so their number is bounded by the grants and never
// blocks a round from opening.
func (t *txCtx) allocate(m *Model, n int64) (*Allocation, error) {
	rule := m.Allocation
	providers, _, err := t.registeredProviders(m.ID)
	if err != nil {
		return nil, err
	}
	seed := ""
	if rule.Rule == AllocRandom {
		seed = RoundSeed(m.ID, n, m.AllocationSeed)
	}
	ranks, err := t.rankProviders(rule.Rule, seed, providers)
	if err != nil {
		return nil, err
	}
	eligible := int64(len(ranks))
	if int64(len(ranks)) > rule.K {
		ranks = ranks[:rule.K]
	}
	al := Allocation{DocType: "allocation", ModelID: m.ID, Round: n, Rule: rule.Rule, K: rule.K,
		RoundSeed: seed, Eligible: eligible, Providers: make([]string, 0, len(ranks)), Ranking: ranks,
		TxID: t.txID, Timestamp: t.now}
	if rule.Rule == AllocRandom {
		al.Seed = m.AllocationSeed
	}
	if al.Ranking == nil {
		al.Ranking = []AllocationRank{}
	}
	for _, r := range ranks {
		al.Providers = append(al.Providers, r.Provider)
	}
	return &al, t.saveAllocation(&al)
}

// registeredProviders returns the data registrants of a model that still
// hold the provider role, read from at most MaxDataRegistrants registrations
// (the first in identity order), and whether those were all of them.
func (t *txCtx) registeredProviders(modelID string) ([]string, bool, error) {
	regs, err := t.dataRegistrants(modelID, MaxDataRegistrants)
	if err != nil {
		return nil, false, err
	}
	out := make([]string, 0, len(regs))
	for _, p := range regs {
		ok, err := t.hasRole(p, RoleProvider)
		if err != nil {
			return nil, false, err
		}
		if ok {
			out = append(out, p)
		}
	}
	return out, len(regs) < MaxDataRegistrants, nil
}

// rankProviders ranks providers: random by draw ascending, reputation by
// account reputation descending, ties by identity.
func (t *txCtx) rankProviders(rule, seed string, providers []string) ([]AllocationRank, error) {
	var ranks []AllocationRank
	for _, p := range providers {
		r := AllocationRank{Provider: p}
		if rule == AllocRandom {
			r.Draw = Draw(seed, p)
		} else {
			a, _, err := t.loadAccount(p)
			if err != nil {
				return nil, err
			}
			rep := reputation(a.Accepted, a.Rejected)
			r.Reputation = &rep
		}
		ranks = append(ranks, r)
	}
	slices.SortFunc(ranks, func(a, b AllocationRank) int {
		if a.Reputation != nil && b.Reputation != nil && *a.Reputation != *b.Reputation {
			return -cmp.Compare(*a.Reputation, *b.Reputation)
		}
		if c := strings.Compare(a.Draw, b.Draw); c != 0 {
			return c
		}
		return strings.Compare(a.Provider, b.Provider)
	})
	return ranks, nil
}

// restricted reports whether a model's rounds are allocated to a subset.
func restricted(m *Model) bool {
	return m.Allocation != nil && m.Allocation.Rule != AllocAll
}

// GetAllocation returns the allocation of a round. For a model without an
// allocation rule (or rule "all") it returns {"rule":"all"} with no
// providers listed: every provider may submit.
func (c *Contract) GetAllocation(ctx contractapi.TransactionContextInterface, modelID, round string) (string, error) {
	var n int64
	return query(ctx, opening{onModel(modelID), roundNumber(round, &n)}, func(t *txCtx) (any, error) {
		m := t.model
		r, err := t.loadRound(m.ID, n)
		if err != nil {
			return nil, err
		}
		if !restricted(m) {
			return &Allocation{DocType: "allocation", ModelID: m.ID, Round: n, Rule: AllocAll,
				Providers: []string{}, Ranking: []AllocationRank{}, TxID: r.OpenedTx, Timestamp: r.OpenedAt}, nil
		}
		return t.loadAllocation(m.ID, n)
	})
}
