package fedcommittee

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// Rule change statuses.
const (
	ChangeOpen     = "open"
	ChangeApplied  = "applied"
	ChangeRejected = "rejected"
)

// RuleChangeInput is the ProposeRuleChange input document. Every field is
// optional but at least one change must be given; all given changes are
// applied together (atomically) or not at all.
type RuleChangeInput struct {
	AcceptanceThreshold *float64       `json:"acceptanceThreshold,omitempty"`
	Quorum              *int64         `json:"quorum,omitempty"`
	DeadlineSeconds     *int64         `json:"deadlineSeconds,omitempty"`
	AddMember           *CommitteeSeat `json:"addMember,omitempty"`
	RemoveMember        string         `json:"removeMember,omitempty"`
	Reason              string         `json:"reason,omitempty"`
}

// RuleVote is one org's vote on a rule change, cast by one of its admins.
type RuleVote struct {
	Org       string `json:"org"`
	Voter     string `json:"voter"`
	Approve   bool   `json:"approve"`
	TxID      string `json:"txId"`
	Timestamp int64  `json:"timestamp"`
}

// RuleChange is a proposal to change a model's run-time rules and its votes.
type RuleChange struct {
	DocType    string          `json:"docType"`
	ID         string          `json:"id"` // the ProposeRuleChange tx id
	ModelID    string          `json:"modelId"`
	ProposedBy string          `json:"proposedBy"`
	Change     RuleChangeInput `json:"change"`
	Policy     string          `json:"policy"`
	Orgs       []string        `json:"orgs"`
	Required   int64           `json:"required"` // approving orgs needed
	Approvals  int64           `json:"approvals"`
	Rejections int64           `json:"rejections"`
	Votes      []RuleVote      `json:"votes"` // in vote order
	Status     string          `json:"status"`
	Outcome    string          `json:"outcome,omitempty"` // why rejected / what was applied
	CreatedAt  int64           `json:"createdAt"`
	DecidedAt  int64           `json:"decidedAt,omitempty"`
	DecidedTx  string          `json:"decidedTx,omitempty"`
}

func required(g *GovernanceRule) int64 {
	n := int64(len(g.Orgs))
	if g.Policy == PolicyAll {
		return n
	}
	return n/2 + 1
}

// ProposeRuleChange opens a proposal to change an active model's run-time
// rules. Only models published with a governance rule accept proposals; the
// proposer is the model's publisher or an admin of a listed org. The
// change is checked against the model now and again when it is applied.
// Returns the proposal id (this transaction's id).
func (c *Contract) ProposeRuleChange(ctx contractapi.TransactionContextInterface, modelID, input string) (string, error) {
	var in RuleChangeInput
	return perform(ctx, true, opening{onModel(modelID), governed, mayPropose,
		modelIs(", not active: its rules cannot change", ModelActive), decoded("ProposeRuleChange input", input, &in)},
		func(t *txCtx) (string, error) {
			m, g := t.model, t.model.Governance
			if _, err := t.applyChange(m, &in); err != nil {
				return "", err
			}
			if err := checkUpdateID("txId", t.txID); err != nil {
				return "", err
			}
			if err := t.absent(ruleChangeKey(t.txID), duplicate("rule change %s already exists", t.txID)); err != nil {
				return "", err
			}
			rc := RuleChange{DocType: "rulechange", ID: t.txID, ModelID: m.ID, ProposedBy: t.who.Key, Change: in,
				Policy: g.Policy, Orgs: slices.Clone(g.Orgs), Required: required(g), Votes: []RuleVote{},
				Status: ChangeOpen, CreatedAt: t.now}
			if err := t.saveRuleChange(&rc); err != nil {
				return "", err
			}
			if err := t.indexRuleChange(&rc); err != nil {
				return "", err
			}
			return rc.ID, t.emit(Event{Type: EvRuleChangeProposed, ModelID: m.ID, Mode: m.Mode, ProposalID: rc.ID,
				Status: rc.Status, Quorum: rc.Required, Reason: in.Reason})
		})
}

// governed: the model must have been published with a governance rule.
func governed(t *txCtx) error {
	if t.model.Governance == nil {
		return wrongState("model %s has no governance rule: its run-time rules cannot change", t.model.ID)
	}
	return nil
}

// mayPropose: the model's publisher or an admin of an org the governance rule lists.
func mayPropose(t *txCtx) error {
	m, who, g := t.model, t.who, t.model.Governance
	if who.Key != m.Publisher && !(who.Admin && slices.Contains(g.Orgs, who.MSPID)) {
		return denied("only the publisher of model %s or an admin of %v may propose rule changes", m.ID, g.Orgs)
	}
	return nil
}

// VoteRuleChange records the vote of the caller's org on an open proposal.
// The caller must be an org admin (OU=admin) of an org listed in the model's
// governance rule; each org votes once. The change is applied when the
// policy is met (majority: more than half of the listed orgs; all: every
// one) and the proposal is rejected once that can no longer happen, or if
// the change is no longer valid for the model when it would be applied.
// approve is "true" or "false".
func (c *Contract) VoteRuleChange(ctx contractapi.TransactionContextInterface, proposalID, approve string) error {
	var yes bool
	var rc *RuleChange
	return run(ctx, opening{updateIDArg("proposalId", proposalID), valid(func() error {
		if approve != "true" && approve != "false" {
			return fmt.Errorf("approve: %q must be \"true\" or \"false\"", approve)
		}
		yes = approve == "true"
		return nil
	}), func(t *txCtx) (err error) {
		rc, err = t.loadRuleChange(proposalID)
		return err
	}, orgAdmin, func(t *txCtx) error { return t.mayVote(rc) }, func(t *txCtx) error {
		return opening{onModel(rc.ModelID), modelIs(", not active: its rules cannot change", ModelActive)}.all(t)
	}}, func(t *txCtx) error {
		rc.Votes = append(rc.Votes, RuleVote{Org: t.who.MSPID, Voter: t.who.Key, Approve: yes, TxID: t.txID, Timestamp: t.now})
		if yes {
			rc.Approvals++
		} else {
			rc.Rejections++
		}
		ev := Event{Type: EvRuleChangeVoted, ModelID: t.model.ID, Mode: t.model.Mode, ProposalID: rc.ID, Org: t.who.MSPID,
			Approve: &yes, Count: rc.Approvals, Quorum: rc.Required}
		if err := t.decideRuleChange(rc, &ev); err != nil {
			return err
		}
		if rc.Status != ChangeOpen {
			rc.DecidedAt, rc.DecidedTx = t.now, t.txID
			ev.Reason = rc.Outcome
		}
		ev.Status = rc.Status
		if err := t.saveRuleChange(rc); err != nil {
			return err
		}
		return t.emit(ev)
	})
}

// mayVote: the caller's org is listed, the proposal still open, and the org
// has not voted yet.
func (t *txCtx) mayVote(rc *RuleChange) error {
	who := t.who
	if !slices.Contains(rc.Orgs, who.MSPID) {
		return denied("org %s is not listed in the governance rule of model %s (%v)", who.MSPID, rc.ModelID, rc.Orgs)
	}
	if rc.Status != ChangeOpen {
		return wrongState("rule change %s is %s: voting is closed", rc.ID, rc.Status)
	}
	if slices.ContainsFunc(rc.Votes, func(v RuleVote) bool { return v.Org == who.MSPID }) {
		return duplicate("org %s has already voted on rule change %s", who.MSPID, rc.ID)
	}
	return nil
}

// decideRuleChange applies the change once the policy is met (or rejects it
// when it is no longer valid), or rejects the proposal once the policy can
// no longer be met.
func (t *txCtx) decideRuleChange(rc *RuleChange, ev *Event) error {
	n := int64(len(rc.Orgs))
	switch {
	case rc.Approvals >= rc.Required:
		nm, err := t.applyChange(t.model, &rc.Change)
		var le ledgerError
		if errors.As(err, &le) {
			return le.err
		}
		if err != nil {
			rc.Status, rc.Outcome = ChangeRejected, "policy met but the change is no longer valid: "+err.Error()
			ev.Type = EvRuleChangeRejected
			return nil
		}
		nm.RuleChanges++
		nm.UpdatedAt = t.now
		if err := t.saveModel(nm); err != nil {
			return err
		}
		rc.Status, rc.Outcome = ChangeApplied, "applied"
		ev.Type, ev.Committee, ev.Quorum = EvRuleChangeApplied, committeeKeys(nm), nm.Quorum
	case rc.Rejections > n-rc.Required:
		rc.Status, rc.Outcome = ChangeRejected, fmt.Sprintf("policy %s can no longer be met (%d of %d orgs rejected)", rc.Policy, rc.Rejections, n)
		ev.Type = EvRuleChangeRejected
	}
	return nil
}

// applyChange returns a copy of m with the change applied, or an error
// naming the field when the change is empty or would break an invariant:
// threshold only under rule threshold and within [scoreMin, scoreMax];
// deadlineSeconds only in federated mode, 1..MaxDeadlineSeconds; a removed
// member must sit on the committee; an added member must hold the committee
// role, not sit on it already, and come with a shard; 1 <= quorum <=
// committee size (and <= rotation.size); 1..MaxCommittee members.
func (t *txCtx) applyChange(m *Model, ch *RuleChangeInput) (*Model, error) {
	if ch.AcceptanceThreshold == nil && ch.Quorum == nil && ch.DeadlineSeconds == nil && ch.AddMember == nil && ch.RemoveMember == "" {
		return nil, fmt.Errorf("change: give at least one of acceptanceThreshold, quorum, deadlineSeconds, addMember, removeMember")
	}
	if err := checkText("reason", ch.Reason); err != nil {
		return nil, err
	}
	nm := *m
	nm.Committee = slices.Clone(m.Committee)
	if v := ch.AcceptanceThreshold; v != nil {
		if m.Acceptance.Rule != RuleThreshold {
			return nil, fmt.Errorf("acceptanceThreshold: model %s uses rule %s, not threshold", m.ID, m.Acceptance.Rule)
		}
		if err := checkFinite("acceptanceThreshold", *v); err != nil {
			return nil, err
		}
		if *v < m.Acceptance.ScoreMin || *v > m.Acceptance.ScoreMax {
			return nil, fmt.Errorf("acceptanceThreshold: %v is outside [scoreMin, scoreMax]", *v)
		}
		th := *v
		nm.Acceptance.Threshold = &th
	}
	if v := ch.DeadlineSeconds; v != nil {
		if m.Mode != ModeFederated {
			return nil, fmt.Errorf("deadlineSeconds: model %s is in gossip mode: it has no rounds", m.ID)
		}
		if err := checkRange("deadlineSeconds", *v, 1, MaxDeadlineSeconds); err != nil {
			return nil, err
		}
		nm.RoundRules.DeadlineSeconds = *v
	}
	if ch.RemoveMember != "" {
		if _, err := checkIdentityKey("removeMember", ch.RemoveMember); err != nil {
			return nil, err
		}
		i := slices.IndexFunc(nm.Committee, func(s CommitteeSeat) bool { return s.Member == ch.RemoveMember })
		if i < 0 {
			return nil, fmt.Errorf("removeMember: %s is not on the committee of model %s", ch.RemoveMember, m.ID)
		}
		nm.Committee = slices.Delete(nm.Committee, i, i+1)
	}
	if s := ch.AddMember; s != nil {
		if err := checkSeat("addMember", *s); err != nil {
			return nil, err
		}
		if isMember(&nm, s.Member) {
			return nil, fmt.Errorf("addMember.member: %s is already on the committee of model %s", s.Member, m.ID)
		}
		ok, err := t.hasRole(s.Member, RoleCommittee)
		if err != nil {
			return nil, ledgerError{err}
		}
		if !ok {
			return nil, fmt.Errorf("addMember.member: %s does not hold the committee role", s.Member)
		}
		nm.Committee = append(nm.Committee, *s)
	}
	if n := len(nm.Committee); n < 1 || n > MaxCommittee {
		return nil, fmt.Errorf("committee: the change leaves %d members, must be 1..%d", n, MaxCommittee)
	}
	if ch.Quorum != nil {
		nm.Quorum = *ch.Quorum
	}
	if err := checkRange("quorum", nm.Quorum, 1, int64(len(nm.Committee))); err != nil {
		return nil, fmt.Errorf("%v (quorum must stay within the committee size)", err)
	}
	if nm.Rotation != nil && nm.Quorum > nm.Rotation.Size {
		return nil, fmt.Errorf("quorum: %d is above rotation.size %d", nm.Quorum, nm.Rotation.Size)
	}
	return &nm, nil
}

// GetRuleChange returns one rule change proposal with its votes.
func (c *Contract) GetRuleChange(ctx contractapi.TransactionContextInterface, proposalID string) (string, error) {
	return query(ctx, opening{updateIDArg("proposalId", proposalID)}, func(t *txCtx) (any, error) {
		return t.loadRuleChange(proposalID)
	})
}

// ListRuleChanges pages through the rule change proposals of a model,
// ordered by proposal id.
func (c *Contract) ListRuleChanges(ctx contractapi.TransactionContextInterface, modelID, pageSize, bookmark string) (string, error) {
	return query(ctx, opening{modelIDArg(modelID)}, func(t *txCtx) (any, error) {
		return t.pageRuleChanges(modelID, pageSize, bookmark)
	})
}
