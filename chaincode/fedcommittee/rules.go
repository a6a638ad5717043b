package fedcommittee

// Optional protocol rules fixed at publication. Each is a pointer in the
// ModelSpec and the Model: absent means the behaviour the contract had
// without the rule (any provider may submit, stop at maxRounds, no run-time
// changes, fixed committee).

// Allocation rules.
const (
	AllocAll        = "all"        // any provider may submit (default)
	AllocRandom     = "random"     // k registered providers drawn from the on-chain seed
	AllocReputation = "reputation" // top-k registered providers by reputation
)

// Governance policies.
const (
	PolicyMajority = "majority" // more than half of the listed orgs
	PolicyAll      = "all"      // every listed org
)

// Stop reasons recorded on a finished model.
const (
	StopTarget    = "target"
	StopPatience  = "patience"
	StopMaxRounds = "maxRounds"
	StopPublisher = "publisher"
)

// Rule limits.
const (
	MaxAllocation      = MaxScan // k and registered providers per model
	MaxGovernanceOrgs  = 16
	MaxHistogramBins   = 64
	MaxRotationPool    = MaxCommittee
	MaxDataRegistrants = MaxScan
)

// AllocationRule chooses which providers may submit to a round.
type AllocationRule struct {
	Rule string `json:"rule"`
	K    int64  `json:"k,omitempty"`
}

// StoppingRule ends a federated model before maxRounds. Target: the
// committee's median ConfirmAggregate score reaches it (>= when higher is
// better, <= otherwise). Patience: that many consecutive rounds without
// improving the best confirmed score by more than minDelta.
type StoppingRule struct {
	Target   *float64 `json:"target,omitempty"`
	Patience int64    `json:"patience,omitempty"`
	MinDelta float64  `json:"minDelta,omitempty"`
}

// GovernanceRule lists the orgs whose admins vote on run-time rule changes.
type GovernanceRule struct {
	Policy string   `json:"policy"`
	Orgs   []string `json:"orgs"`
}

// RotationRule draws the next round's committee from the best-scoring
// providers of the round just done, among the candidates listed (with their
// shards) at publication.
type RotationRule struct {
	Size       int64           `json:"size"`
	Candidates []CommitteeSeat `json:"candidates"`
}

// ModelProfile is what a publisher declares about a model so that the
// committee can judge it before approving it: what it is for, the kind of
// data it needs, how much training data it expects and how large the
// architecture is. Members compare it with the registry and with the data
// providers registered (RegisterData); the contract only bounds it.
type ModelProfile struct {
	Purpose         string `json:"purpose"`
	DataType        string `json:"dataType"`
	DataFormat      string `json:"dataFormat,omitempty"`
	TrainingSamples int64  `json:"trainingSamples"`
	Parameters      int64  `json:"parameters"`
}

// MaxParameters bounds a declared architecture size.
const MaxParameters = 1_000_000_000_000

// BestModel is the best committee-confirmed global model of a model.
type BestModel struct {
	Round  int64   `json:"round"`
	CID    string  `json:"cid"`
	SHA256 string  `json:"sha256"`
	Score  float64 `json:"score"`
}
