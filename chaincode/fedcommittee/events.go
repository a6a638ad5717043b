package fedcommittee

import (
	"encoding/json"
	"fmt"
)

// Event names. Fabric delivers only the last SetEvent of a transaction, so
// each transaction emits exactly one event, named after its outcome.
const (
	EvRoleGranted        = "RoleGranted"
	EvRoleRevoked        = "RoleRevoked"
	EvModelProposed      = "ModelProposed"
	EvModelVote          = "ModelVote"      // approval/rejection recorded, no decision yet
	EvModelActivated     = "ModelActivated" // quorum approved; federated: round 1 open
	EvModelRejected      = "ModelRejected"
	EvModelFinished      = "ModelFinished"
	EvFinalProposed      = "FinalProposed" // gossip: a final model before the committee
	EvFinalJudged        = "FinalJudged"   // one member's judgment of it, no quorum yet
	EvUpdateSubmitted    = "UpdateSubmitted"
	EvVerdictSubmitted   = "VerdictSubmitted"  // verdict recorded, quorum not reached
	EvUpdateFinalized    = "UpdateFinalized"   // quorum reached: accepted or rejected
	EvVerdictsSubmitted  = "VerdictsSubmitted" // a batch of verdicts recorded
	EvRoundClosed        = "RoundClosed"       // accepted set fixed: aggregate it
	EvRoundOpened        = "RoundOpened"       // new round with a new (or carried) global model
	EvAggregateRecorded  = "AggregateRecorded"
	EvAggregateConfirmed = "AggregateConfirmed" // one confirmation recorded, no quorum yet
	EvDataRegistered     = "DataRegistered"
	EvRuleChangeProposed = "RuleChangeProposed"
	EvRuleChangeVoted    = "RuleChangeVoted"    // vote recorded, policy not yet decided
	EvRuleChangeApplied  = "RuleChangeApplied"  // policy met: the change is in force
	EvRuleChangeRejected = "RuleChangeRejected" // policy can no longer be met, or the change became invalid
)

// Event is the single payload shape of every event; fields that do not apply
// are omitted. Agents key on Type (equal to the event name) and ids.
type Event struct {
	Type          string   `json:"type"`
	TxID          string   `json:"txId"`
	Timestamp     int64    `json:"timestamp"`
	Actor         string   `json:"actor"`
	ModelID       string   `json:"modelId,omitempty"`
	Mode          string   `json:"mode,omitempty"`
	Round         int64    `json:"round,omitempty"`
	UpdateID      string   `json:"updateId,omitempty"`
	Status        string   `json:"status,omitempty"`
	CID           string   `json:"cid,omitempty"`
	SHA256        string   `json:"sha256,omitempty"`
	Identity      string   `json:"identity,omitempty"`
	Role          string   `json:"role,omitempty"`
	Provider      string   `json:"provider,omitempty"`
	Parents       []string `json:"parents,omitempty"`
	Accepted      []string `json:"accepted,omitempty"`
	Finalized     []string `json:"finalized,omitempty"` // VerdictsSubmitted: the updates the batch finalized
	Committee     []string `json:"committee,omitempty"`
	Score         *float64 `json:"score,omitempty"`
	Count         int64    `json:"count,omitempty"`
	Quorum        int64    `json:"quorum,omitempty"`
	Reward        int64    `json:"reward,omitempty"`
	Penalty       int64    `json:"penalty,omitempty"`
	Deadline      int64    `json:"deadline,omitempty"`
	PreviousRound int64    `json:"previousRound,omitempty"`
	// Fields added with the protocol rules (omitted when they do not apply).
	Reason     string   `json:"reason,omitempty"`     // ModelFinished stop reason; rule change outcome
	Allocated  []string `json:"allocated,omitempty"`  // RoundOpened/ModelActivated under random/reputation allocation
	ProposalID string   `json:"proposalId,omitempty"` // RuleChange*
	Org        string   `json:"org,omitempty"`        // RuleChangeVoted: the voting org
	Approve    *bool    `json:"approve,omitempty"`    // RuleChangeVoted

	// RoundClosed by CloseRoundWithAggregate: the candidate aggregate recorded with the close.
	Aggregate *ObjectRef `json:"aggregate,omitempty"`
}

// emit sets the transaction's one event; its actor is the caller.
func (t *txCtx) emit(e Event) error {
	e.TxID = t.txID
	e.Timestamp = t.now
	e.Actor = t.who.Key
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding event: %v", err)
	}
	if err := t.stub.SetEvent(e.Type, b); err != nil {
		return fmt.Errorf("setting event: %v", err)
	}
	return nil
}
