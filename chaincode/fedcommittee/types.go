// Package fedcommittee is the fedcommittee smart contract: role governance,
// model publication and approval, update submission, committee verdicts,
// federated rounds with committee-confirmed aggregates, and gossip DAG updates.
//
// Every record is JSON. Every transaction argument is a string (ids, numbers
// or a JSON document) and every query returns a JSON string, so the contract
// controls parsing and error messages itself instead of relying on the
// contract-api schema layer.
package fedcommittee

import "slices"

// Role names that an org admin may grant.
const (
	RolePublisher = "publisher"
	RoleProvider  = "provider"
	RoleCommittee = "committee"
)

// AdminOU is the NodeOU that marks an org admin certificate (cryptogen and
// fabric-ca both stamp it when NodeOUs are enabled).
const AdminOU = "admin"

// Model statuses.
const (
	ModelProposed = "proposed"
	ModelActive   = "active"
	ModelRejected = "rejected"
	ModelFinished = "finished"
)

// Learning modes.
const (
	ModeFederated = "federated"
	ModeGossip    = "gossip"
)

// Acceptance rules applied to the committee's verdicts.
const (
	RuleThreshold   = "threshold"   // median score vs a fixed threshold
	RuleImprovement = "improvement" // median score vs baseline +/- minDelta
	RuleMajority    = "majority"    // strict majority of accept flags
)

// Update statuses.
const (
	UpdatePending  = "pending"
	UpdateAccepted = "accepted"
	UpdateRejected = "rejected"
)

// CodeNotFound starts every refusal that names a record the ledger does not
// hold ("NOT_FOUND: model m1 not found"), so a client can tell a missing
// record from any other refusal without matching prose.
const CodeNotFound = "NOT_FOUND"

// Round statuses.
const (
	RoundOpen    = "open"    // accepting updates
	RoundClosed  = "closed"  // accepted set fixed, waiting for a confirmed aggregate
	RoundDone    = "done"    // aggregate confirmed, next round opened (or model finished)
	RoundSkipped = "skipped" // closed with no accepted update: global model carried over
)

// Limits. They keep every transaction's work and every record bounded.
const (
	MaxInputBytes         = 64 * 1024
	MaxCommittee          = 64
	MaxParents            = 16
	MaxFinalMix           = 256   // updates averaged into a gossip model's final weights
	MaxFinalCandidates    = 256   // accepted updates judged beside a gossip model's proposed mix
	MaxGossipUpdates      = 20000 // updates of a gossip model ProposeFinal reads (none may be pending)
	MaxMetrics            = 32
	MaxTextLen            = 512
	MaxAcceptedPerRound   = 1000 // accepted updates fixed into one round
	MaxAggregateCandidate = 16   // aggregates recorded per round by non-members (members: one each)
	DefaultPageSize       = 50
	MaxPageSize           = 200
	MaxScan               = 1000 // hard cap for non-paginated range scans
	MaxRewardValue        = 1_000_000_000
	MaxRounds             = 10_000
	MaxDeadlineSeconds    = 30 * 24 * 3600
	MaxSamples            = 1_000_000_000_000
	MaxMinAccepted        = MaxAcceptedPerRound
	MaxScoreAbs           = 1e12
)

// Account is one identity's record: its roles (granted by its org admin) and
// totals over all models.
type Account struct {
	DocType    string   `json:"docType"`
	Identity   string   `json:"identity"`
	MSPID      string   `json:"mspId"`
	Roles      []string `json:"roles"`
	Rewards    int64    `json:"rewards"`
	Penalties  int64    `json:"penalties"`
	Accepted   int64    `json:"accepted"`
	Rejected   int64    `json:"rejected"`
	Verdicts   int64    `json:"verdicts"`
	Reputation float64  `json:"reputation"`
	UpdatedTx  string   `json:"updatedTx"`
}

// RoleGrant is the value of a role~role~identity index entry.
type RoleGrant struct {
	Role      string `json:"role"`
	Identity  string `json:"identity"`
	GrantedBy string `json:"grantedBy"`
	TxID      string `json:"txId"`
	Timestamp int64  `json:"timestamp"`
}

// ArchitectureRef names an architecture in the project's model registry.
type ArchitectureRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ObjectRef points at an IPFS object and pins its content hash.
type ObjectRef struct {
	CID    string `json:"cid"`
	SHA256 string `json:"sha256"`
}

// Metric says what the committee measures and in which direction it is better.
type Metric struct {
	Name           string `json:"name"`
	HigherIsBetter bool   `json:"higherIsBetter"`
}

// Acceptance is the rule applied to the verdicts of one update.
type Acceptance struct {
	Rule      string   `json:"rule"`
	Threshold *float64 `json:"threshold,omitempty"`
	MinDelta  *float64 `json:"minDelta,omitempty"`
	ScoreMin  float64  `json:"scoreMin"`
	ScoreMax  float64  `json:"scoreMax"`
}

// CommitteeSeat is one committee member and its private validation shard.
type CommitteeSeat struct {
	Member      string `json:"member"`
	ShardCID    string `json:"shardCid"`
	ShardSHA256 string `json:"shardSha256"`
}

// RoundRules governs federated rounds (and the parent limit in gossip mode).
type RoundRules struct {
	MinAccepted     int64 `json:"minAccepted"`
	DeadlineSeconds int64 `json:"deadlineSeconds"`
	MaxRounds       int64 `json:"maxRounds"`
	MaxParents      int64 `json:"maxParents"`
}

// RewardRules are integer credits so that balances stay exact.
type RewardRules struct {
	AcceptReward  int64 `json:"acceptReward"`
	RejectPenalty int64 `json:"rejectPenalty"`
	VerdictReward int64 `json:"verdictReward"`
}

// ModelTerms are what the publisher proposes and the committee approves:
// what is trained, how updates are judged and rewarded, and by whom.
type ModelTerms struct {
	Architecture   ArchitectureRef `json:"architecture"`
	SpecSHA256     string          `json:"specSha256"`
	InitialWeights ObjectRef       `json:"initialWeights"`
	Metric         Metric          `json:"metric"`
	Acceptance     Acceptance      `json:"acceptance"`
	Quorum         int64           `json:"quorum"`
	Committee      []CommitteeSeat `json:"committee"`
	Mode           string          `json:"mode"`
	RoundRules     RoundRules      `json:"roundRules"`
	RewardRules    RewardRules     `json:"rewardRules"`
}

// ModelRules are the optional protocol rules (absent = the behaviour
// without the rule, see rules.go) and the publisher's declaration.
type ModelRules struct {
	Aggregation *AggregationRule `json:"aggregation,omitempty"`
	Allocation  *AllocationRule  `json:"allocation,omitempty"`
	Stopping    *StoppingRule    `json:"stopping,omitempty"`
	Governance  *GovernanceRule  `json:"governance,omitempty"`
	Rotation    *RotationRule    `json:"rotation,omitempty"`
	// Profile is the publisher's declaration the committee approves against.
	Profile *ModelProfile `json:"profile,omitempty"`
}

// ModelSpec is the PublishModel input document.
type ModelSpec struct {
	ModelID string `json:"modelId"`
	ModelTerms
	ModelRules
}

// Model is the on-ledger model record: the spec it was published with and
// its progress. The spec's two parts sit where the record has always had
// their fields, so the stored JSON is unchanged (record_json_test.go).
type Model struct {
	DocType   string `json:"docType"`
	ID        string `json:"id"`
	Publisher string `json:"publisher"`
	ModelTerms
	Status     string `json:"status"`
	Approvals  int64  `json:"approvals"`
	Rejections int64  `json:"rejections"`
	// Baseline is the committee's median score of the current global model
	// (initial weights at approval, then each confirmed aggregate); the
	// "improvement" rule compares against it.
	Baseline     *float64   `json:"baseline,omitempty"`
	CurrentRound int64      `json:"currentRound"`
	Global       *ObjectRef `json:"global,omitempty"`
	Final        *ObjectRef `json:"final,omitempty"`
	FinalUpdate  string     `json:"finalUpdate,omitempty"`
	// FinalMix: the accepted updates whose mean is Final (gossip: the
	// proposed mix won the committee's judgment).
	FinalMix []string `json:"finalMix,omitempty"`
	// FinalProposal: a gossip model's proposed ends and the committee's
	// measures of them (final.go); set from ProposeFinal on.
	FinalProposal *FinalProposal `json:"finalProposal,omitempty"`
	ModelRules
	// AllocationSeed is the seed of the "random" allocation rule: the
	// PublishModel transaction id.
	AllocationSeed string `json:"allocationSeed,omitempty"`
	// Best is the best committee-confirmed global model so far (stopping rule).
	Best *BestModel `json:"best,omitempty"`
	// Stale counts rounds since Best last improved (stopping rule patience).
	Stale int64 `json:"roundsWithoutImprovement,omitempty"`
	// StopReason says why a finished model stopped: target, patience,
	// maxRounds (federated) or publisher (gossip FinishModel).
	StopReason string `json:"stopReason,omitempty"`
	// RuleChanges counts applied governance changes.
	RuleChanges int64  `json:"ruleChanges,omitempty"`
	CreatedTx   string `json:"createdTx"`
	CreatedAt   int64  `json:"createdAt"`
	UpdatedAt   int64  `json:"updatedAt"`
}

// FinalProposal is what a gossip model may end on: the mix (the mean of the
// accepted updates Mix, stored as CID/SHA256) or one of Candidates, and
// each member's judgment of them. Medians is set at quorum: per entry, the
// mix first, the median of the judgments' qualities.
type FinalProposal struct {
	Mix        []string        `json:"mix"`
	CID        string          `json:"cid"`
	SHA256     string          `json:"sha256"`
	Candidates []string        `json:"candidates"`
	Judgments  []FinalJudgment `json:"judgments"`
	Medians    []float64       `json:"medians,omitempty"`
	ProposedAt int64           `json:"proposedAt"`
}

// FinalJudgment is one member's qualities (its shard accuracy, in [0, 1])
// of a FinalProposal's entries: the mix first, then each candidate.
type FinalJudgment struct {
	Member    string    `json:"member"`
	Qualities []float64 `json:"qualities"`
	TxID      string    `json:"txId"`
	Timestamp int64     `json:"timestamp"`
}

// committeeKeys lists the identities on the model's committee, in seat order.
func committeeKeys(m *Model) []string {
	out := make([]string, len(m.Committee))
	for i, s := range m.Committee {
		out[i] = s.Member
	}
	return out
}

func isMember(m *Model, identity string) bool {
	return slices.ContainsFunc(m.Committee, func(s CommitteeSeat) bool { return s.Member == identity })
}

// ModelVote is one committee member's approval or rejection of a model.
type ModelVote struct {
	ModelID   string   `json:"modelId"`
	Member    string   `json:"member"`
	Approve   bool     `json:"approve"`
	Score     *float64 `json:"score,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	TxID      string   `json:"txId"`
	Timestamp int64    `json:"timestamp"`
}

// UpdateInput is the SubmitUpdate input document.
type UpdateInput struct {
	Round      int64              `json:"round"`
	BaseCID    string             `json:"baseCid"`
	BaseSHA256 string             `json:"baseSha256"`
	Parents    []string           `json:"parents"`
	CID        string             `json:"cid"`
	SHA256     string             `json:"sha256"`
	NumSamples int64              `json:"numSamples"`
	Metrics    map[string]float64 `json:"metrics"`
}

// Update is one provider contribution.
type Update struct {
	DocType      string             `json:"docType"`
	ID           string             `json:"id"`
	ModelID      string             `json:"modelId"`
	Mode         string             `json:"mode"`
	Round        int64              `json:"round"`
	Parents      []string           `json:"parents"`
	BaseCID      string             `json:"baseCid"`
	BaseSHA256   string             `json:"baseSha256"`
	Provider     string             `json:"provider"`
	CID          string             `json:"cid"`
	SHA256       string             `json:"sha256"`
	NumSamples   int64              `json:"numSamples"`
	Metrics      map[string]float64 `json:"metrics"`
	Status       string             `json:"status"`
	VerdictCount int64              `json:"verdictCount"`
	AcceptVotes  int64              `json:"acceptVotes"`
	MedianScore  *float64           `json:"medianScore,omitempty"`
	// MedianQuality is the median of the deciding verdicts' quality, set
	// when every one of them carries one.
	MedianQuality *float64 `json:"medianQuality,omitempty"`
	Baseline      *float64 `json:"baseline,omitempty"`
	Reward        int64    `json:"reward"`
	Penalty       int64    `json:"penalty"`
	SubmittedAt   int64    `json:"submittedAt"`
	FinalizedAt   int64    `json:"finalizedAt,omitempty"`
	FinalizedTx   string   `json:"finalizedTx,omitempty"`
	// Refusal says why the contract rejected the update at submission,
	// without verdicts (see refuseReplay); empty for a judged update.
	Refusal string `json:"refusal,omitempty"`
	// Standing (gossip only) is what the provider's earlier updates of the
	// model had shown when this one was submitted.
	Standing *Standing `json:"standing,omitempty"`
}

// Standing is a gossip provider's record in a model at the moment it
// submits an update: how its earlier updates of the model were judged.
// SubmitUpdate refuses a gossip update while its provider's previous one is
// pending, so every update counted here was final when the standing was
// recorded and the standing never changes afterwards. Members choose the
// bars an update must meet from it (the effect rule's probation), so every
// member and every auditor judges the update by the same standing; in
// federated mode they read it from the finished rounds instead.
type Standing struct {
	Previous string `json:"previous,omitempty"` // the provider's update before this one
	Earlier  int64  `json:"earlier"`            // the provider's updates of the model before this one
	Accepted int64  `json:"accepted"`           // ... of which accepted
	// LastRejectedAgo: 1 when the previous update was rejected, 2 when the
	// one before it was (and none since), ...; 0 when none was rejected.
	LastRejectedAgo int64 `json:"lastRejectedAgo"`
}

// VerdictInput is the SubmitVerdict input document.
type VerdictInput struct {
	Score  *float64 `json:"score"`
	Accept *bool    `json:"accept"`
	Reason string   `json:"reason"`
	// Quality, optional, is the member's measure in [0, 1] (its shard
	// accuracy) of the model the update yields, as against Score, which
	// judges the update's effect. Gossip ranks models by it.
	Quality *float64 `json:"quality,omitempty"`
}

// Verdict is one committee member's judgement of one update.
type Verdict struct {
	UpdateID  string   `json:"updateId"`
	ModelID   string   `json:"modelId"`
	Member    string   `json:"member"`
	Score     float64  `json:"score"`
	Accept    bool     `json:"accept"`
	Reason    string   `json:"reason,omitempty"`
	TxID      string   `json:"txId"`
	Timestamp int64    `json:"timestamp"`
	Quality   *float64 `json:"quality,omitempty"`
}

// Round is one federated round.
type Round struct {
	DocType       string     `json:"docType"`
	ModelID       string     `json:"modelId"`
	Number        int64      `json:"number"`
	Status        string     `json:"status"`
	Global        ObjectRef  `json:"global"`
	OpenedAt      int64      `json:"openedAt"`
	Deadline      int64      `json:"deadline"`
	ClosedAt      int64      `json:"closedAt,omitempty"`
	Accepted      []string   `json:"accepted"`
	TotalSamples  int64      `json:"totalSamples"`
	Candidates    int64      `json:"candidates"` // recorded by non-members
	Aggregate     *ObjectRef `json:"aggregate,omitempty"`
	AggregateBy   string     `json:"aggregateBy,omitempty"`
	ConfirmedAt   int64      `json:"confirmedAt,omitempty"`
	OpenedTx      string     `json:"openedTx"`
	ClosedTx      string     `json:"closedTx,omitempty"`
	ConfirmedTx   string     `json:"confirmedTx,omitempty"`
	ConfirmedMed  *float64   `json:"confirmedScore,omitempty"`
	AcceptedCount int64      `json:"acceptedCount"`
	// Allocated lists the providers allowed to submit (random/reputation
	// allocation rules only; see GetAllocation).
	Allocated []string `json:"allocated,omitempty"`
}

// AggregateInput is the RecordAggregate input document.
type AggregateInput struct {
	CID    string `json:"cid"`
	SHA256 string `json:"sha256"`
}

// CloseInput is the CloseRoundWithAggregate input document: the aggregate
// and the accepted set it was computed over, as acceptedDigest names it (a
// fixed size whatever the number of providers).
type CloseInput struct {
	CID            string `json:"cid"`
	SHA256         string `json:"sha256"`
	AcceptedSHA256 string `json:"acceptedSha256"`
}

// ConfirmInput is the ConfirmAggregate input document.
type ConfirmInput struct {
	SHA256 string   `json:"sha256"`
	Score  *float64 `json:"score"`
}

// Confirmation is one committee member's vote for an aggregate.
type Confirmation struct {
	Member string  `json:"member"`
	Score  float64 `json:"score"`
	TxID   string  `json:"txId"`
}

// AggregateCandidate is an aggregate recorded for a closed round, with the
// committee confirmations it has gathered.
type AggregateCandidate struct {
	DocType       string         `json:"docType"`
	ModelID       string         `json:"modelId"`
	Round         int64          `json:"round"`
	CID           string         `json:"cid"`
	SHA256        string         `json:"sha256"`
	RecordedBy    string         `json:"recordedBy"`
	RecordedTx    string         `json:"recordedTx"`
	Confirmations []Confirmation `json:"confirmations"`
}

// AggregateVote marks that a member has confirmed an aggregate of a round.
type AggregateVote struct {
	ModelID string  `json:"modelId"`
	Round   int64   `json:"round"`
	Member  string  `json:"member"`
	SHA256  string  `json:"sha256"`
	Score   float64 `json:"score"`
	TxID    string  `json:"txId"`
}

// RewardEntry is one identity's standing within one model (the leaderboard).
type RewardEntry struct {
	DocType    string  `json:"docType"`
	ModelID    string  `json:"modelId"`
	Identity   string  `json:"identity"`
	Rewards    int64   `json:"rewards"`
	Penalties  int64   `json:"penalties"`
	Net        int64   `json:"net"`
	Accepted   int64   `json:"accepted"`
	Rejected   int64   `json:"rejected"`
	Verdicts   int64   `json:"verdicts"`
	Reputation float64 `json:"reputation"`
}

// Page is the shape of every paginated query result.
type Page struct {
	Items    []any  `json:"items"`
	Bookmark string `json:"bookmark"`
	Count    int    `json:"count"`
}
