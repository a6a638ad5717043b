package fedcommittee

import (
	"slices"
	"strings"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// Rotation records the committee chosen for a round by the rotation rule.
type Rotation struct {
	DocType   string         `json:"docType"`
	ModelID   string         `json:"modelId"`
	Round     int64          `json:"round"`     // the round this committee serves
	FromRound int64          `json:"fromRound"` // the round whose scores chose it
	Previous  []string       `json:"previous"`
	Committee []string       `json:"committee"`
	Ranking   []RotationRank `json:"ranking"` // scored candidates, best first
	Kept      bool           `json:"kept"`    // true: too few eligible, committee unchanged
	TxID      string         `json:"txId"`
	Timestamp int64          `json:"timestamp"`
}

// RotationRank is one candidate's accepted update in the deciding round.
type RotationRank struct {
	Member   string  `json:"member"`
	UpdateID string  `json:"updateId"`
	Score    float64 `json:"score"`
}

// rotate replaces m's committee after round r (confirmed) by the rotation
// rule:
//
//  1. A candidate (rotation.candidates, listed with its shard at
//     publication) is scored when it still holds the committee role and its
//     update to round r is in r's accepted set; its score is that update's
//     committee median score.
//  2. Scored candidates are ranked best first (metric direction), ties by
//     identity; the first rotation.size are chosen, with their shards.
//  3. If fewer than size are chosen, the seats are filled from the current
//     committee in its order (members still holding the committee role, not
//     already chosen).
//  4. If the result is smaller than the quorum, the committee is kept.
//
// The choice is stored as a Rotation record for round r+1.
func (t *txCtx) rotate(m *Model, r *Round) error {
	rule := m.Rotation
	ranks, seats, err := t.rankCandidates(m, r)
	if err != nil {
		return err
	}
	var next []CommitteeSeat
	for _, rk := range ranks {
		if int64(len(next)) == rule.Size {
			break
		}
		next = append(next, seats[rk.Member])
	}
	for _, s := range m.Committee {
		if int64(len(next)) == rule.Size {
			break
		}
		if slices.ContainsFunc(next, func(o CommitteeSeat) bool { return o.Member == s.Member }) {
			continue
		}
		ok, err := t.hasRole(s.Member, RoleCommittee)
		if err != nil {
			return err
		}
		if ok {
			next = append(next, s)
		}
	}
	rot := Rotation{DocType: "rotation", ModelID: m.ID, Round: r.Number + 1, FromRound: r.Number,
		Previous: committeeKeys(m), Ranking: ranks, TxID: t.txID, Timestamp: t.now}
	if rot.Ranking == nil {
		rot.Ranking = []RotationRank{}
	}
	if int64(len(next)) < m.Quorum {
		rot.Kept = true
	} else {
		m.Committee = next
	}
	rot.Committee = committeeKeys(m)
	return t.saveRotation(&rot)
}

// rankCandidates scores the rotation candidates by their accepted update
// in round r (steps 1 and 2 above) and returns them best first with their seats.
func (t *txCtx) rankCandidates(m *Model, r *Round) ([]RotationRank, map[string]CommitteeSeat, error) {
	var ranks []RotationRank
	seats := map[string]CommitteeSeat{}
	for _, c := range m.Rotation.Candidates {
		ok, err := t.hasRole(c.Member, RoleCommittee)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		uid, err := t.providerRoundUpdate(m.ID, r.Number, c.Member)
		if err != nil {
			return nil, nil, err
		}
		if uid == "" || !slices.Contains(r.Accepted, uid) {
			continue
		}
		u, err := t.loadUpdate(uid)
		if err != nil {
			return nil, nil, err
		}
		if u.MedianScore == nil {
			continue
		}
		seats[c.Member] = c
		ranks = append(ranks, RotationRank{Member: c.Member, UpdateID: uid, Score: *u.MedianScore})
	}
	slices.SortFunc(ranks, func(a, b RotationRank) int {
		if a.Score != b.Score {
			return bestFirst(m, a.Score, b.Score)
		}
		return strings.Compare(a.Member, b.Member)
	})
	return ranks, seats, nil
}

// GetRotation returns the rotation record that chose the committee of a
// round (rounds 2 and later of a model with a rotation rule).
func (c *Contract) GetRotation(ctx contractapi.TransactionContextInterface, modelID, round string) (string, error) {
	var n int64
	return query(ctx, opening{modelIDArg(modelID), roundNumber(round, &n)}, func(t *txCtx) (any, error) {
		return t.loadRotation(modelID, n)
	})
}
