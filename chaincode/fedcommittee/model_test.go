package fedcommittee

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPublishModelHappyPath(t *testing.T) { bothModes(t, publishModelHappyPath) }

func publishModelHappyPath(t *testing.T, e *env) {
	e.setupRoles()
	out, err := e.publish(spec("mnist"))
	require.NoError(t, err)
	var m Model
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	require.Equal(t, ModelProposed, m.Status)
	require.Equal(t, pub.key(), m.Publisher)
	require.Equal(t, int64(0), m.CurrentRound)
	ev := e.event()
	require.Equal(t, EvModelProposed, ev.Type)
	require.Equal(t, "mnist", ev.ModelID)
	require.Equal(t, []string{com1.key(), com2.key(), com3.key()}, ev.Committee)
	require.Equal(t, int64(2), ev.Quorum)
	require.Equal(t, cidOf("w0"), ev.CID)

	errContains(t, ignore(e.publish(spec("mnist"))), "model mnist already exists")

	var p struct {
		Items []Model `json:"items"`
	}
	require.NoError(t, e.query(nobody, &p, func(ctx ctxT) (string, error) { return e.cc.ListModels(ctx, "", "") }))
	require.Len(t, p.Items, 1)
}

func ignore(_ string, err error) error { return err }

func TestPublishModelRejections(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	e.grant(nobody, RoleProvider) // a provider, not a committee member

	// Wrong role.
	err := e.tx(prov1, func(ctx ctxT) error { _, err := e.cc.PublishModel(ctx, mustJSON(spec("m"))); return err })
	errContains(t, err, "does not hold the publisher role")

	cases := []struct {
		name string
		mut  func(*ModelSpec)
		want string
	}{
		{"bad model id", func(s *ModelSpec) { s.ModelID = "Bad Id" }, "modelId"},
		{"bad arch name", func(s *ModelSpec) { s.Architecture.Name = "" }, "architecture.name"},
		{"bad arch version", func(s *ModelSpec) { s.Architecture.Version = "v 1" }, "architecture.version"},
		{"bad spec sha", func(s *ModelSpec) { s.SpecSHA256 = strings.ToUpper(shaOf("x")) }, "specSha256"},
		{"bad weights cid", func(s *ModelSpec) { s.InitialWeights.CID = "Qm123" }, "initialWeights.cid"},
		{"bad weights sha", func(s *ModelSpec) { s.InitialWeights.SHA256 = "abc" }, "initialWeights.sha256"},
		{"bad metric", func(s *ModelSpec) { s.Metric.Name = "" }, "metric.name"},
		{"bad rule", func(s *ModelSpec) { s.Acceptance.Rule = "vibes" }, "acceptance.rule"},
		{"score range", func(s *ModelSpec) { s.Acceptance.ScoreMin = 2 }, "scoreMin 2 must be below scoreMax 1"},
		{"score range huge", func(s *ModelSpec) { s.Acceptance.ScoreMax = 1e13 }, "acceptance.scoreMax"},
		{"score min huge", func(s *ModelSpec) { s.Acceptance.ScoreMin = -1e13 }, "acceptance.scoreMin"},
		{"threshold missing", func(s *ModelSpec) { s.Acceptance.Threshold = nil }, "acceptance.threshold: required"},
		{"threshold out of range", func(s *ModelSpec) { s.Acceptance.Threshold = ptr(5.0) }, "outside [scoreMin, scoreMax]"},
		{"threshold with minDelta", func(s *ModelSpec) { s.Acceptance.MinDelta = ptr(0.1) }, "not used by rule threshold"},
		{"improvement no delta", func(s *ModelSpec) { s.Acceptance = Acceptance{Rule: RuleImprovement, ScoreMax: 1} }, "minDelta: required"},
		{"improvement neg delta", func(s *ModelSpec) {
			s.Acceptance = Acceptance{Rule: RuleImprovement, ScoreMax: 1, MinDelta: ptr(-0.1)}
		}, "must be in [0, scoreMax-scoreMin]"},
		{"improvement with threshold", func(s *ModelSpec) {
			s.Acceptance = Acceptance{Rule: RuleImprovement, ScoreMax: 1, MinDelta: ptr(0.1), Threshold: ptr(0.5)}
		}, "not used by rule improvement"},
		{"majority with threshold", func(s *ModelSpec) { s.Acceptance.Rule = RuleMajority }, "rule majority takes no threshold"},
		{"empty committee", func(s *ModelSpec) { s.Committee = nil }, "committee: 0 members"},
		{"duplicate member", func(s *ModelSpec) { s.Committee[1].Member = com1.key() }, "listed twice"},
		{"bad member key", func(s *ModelSpec) { s.Committee[0].Member = "x" }, "committee[0].member"},
		{"bad shard cid", func(s *ModelSpec) { s.Committee[2].ShardCID = "bafy" }, "committee[2].shardCid"},
		{"bad shard sha", func(s *ModelSpec) { s.Committee[2].ShardSHA256 = "" }, "committee[2].shardSha256"},
		{"quorum too big", func(s *ModelSpec) { s.Quorum = 4 }, "quorum: 4 is out of range [1, 3]"},
		{"quorum zero", func(s *ModelSpec) { s.Quorum = 0 }, "quorum: 0 is out of range"},
		{"bad mode", func(s *ModelSpec) { s.Mode = "central" }, `mode: "central"`},
		{"no minAccepted", func(s *ModelSpec) { s.RoundRules.MinAccepted = 0 }, "roundRules.minAccepted"},
		{"no deadline", func(s *ModelSpec) { s.RoundRules.DeadlineSeconds = 0 }, "roundRules.deadlineSeconds"},
		{"no maxRounds", func(s *ModelSpec) { s.RoundRules.MaxRounds = 0 }, "roundRules.maxRounds"},
		{"parents in federated", func(s *ModelSpec) { s.RoundRules.MaxParents = 2 }, "maxParents: must be 0 in federated"},
		{"gossip no parents", func(s *ModelSpec) { s.Mode = ModeGossip; s.RoundRules = RoundRules{} }, "roundRules.maxParents"},
		{"gossip with rounds", func(s *ModelSpec) { s.Mode = ModeGossip; s.RoundRules.MaxParents = 2 }, "must be 0 in gossip mode"},
		{"negative reward", func(s *ModelSpec) { s.RewardRules.AcceptReward = -1 }, "rewardRules.acceptReward"},
		{"huge penalty", func(s *ModelSpec) { s.RewardRules.RejectPenalty = 1 << 40 }, "rewardRules.rejectPenalty"},
		{"negative verdict reward", func(s *ModelSpec) { s.RewardRules.VerdictReward = -1 }, "rewardRules.verdictReward"},
		{"member without role", func(s *ModelSpec) { s.Committee[0].Member = nobody.key() }, "committee[0].member: " + nobody.key() + " does not hold the committee role"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := spec("m")
			c.mut(&s)
			errContains(t, ignore(e.publish(s)), c.want)
		})
	}

	raw := func(input string) error {
		return e.tx(pub, func(ctx ctxT) error { _, err := e.cc.PublishModel(ctx, input); return err })
	}
	errContains(t, raw(strings.Replace(mustJSON(spec("m")), `"quorum"`, `"quorom"`, 1)), `unknown field "quorom"`)
	errContains(t, raw(mustJSON(spec("m"))+"{}"), "trailing data")
	errContains(t, raw(""), "empty JSON input")
	errContains(t, raw("[1]"), "must be an object")
	errContains(t, raw("null"), "must be an object")
	errContains(t, raw("{"), "invalid JSON")
	errContains(t, raw(`{"modelId":"`+strings.Repeat("a", MaxInputBytes)+`"}`), "limit is 65536")
	errContains(t, raw(`{"quorum":"two"}`), "invalid JSON")
}

func TestModelApproval(t *testing.T) { bothModes(t, modelApproval) }

func modelApproval(t *testing.T, e *env) {
	e.setupRoles()
	_, err := e.publish(spec("m"))
	require.NoError(t, err)

	// No update before approval.
	_, err = e.submit(prov1, "m", fedUpdate(1, "u"))
	errContains(t, err, "model m is proposed, not active")

	errContains(t, e.approve(prov1, "m", "0.5"), "is not on the committee of model m")
	errContains(t, e.approve(com1, "m", "abc"), `score: "abc" is not a number`)
	errContains(t, e.approve(com1, "m", "1.5"), "outside the model's score range")
	errContains(t, e.approve(com1, "m", "NaN"), "out of range")
	errContains(t, e.approve(com1, "nope", "0.5"), "model nope not found")
	errContains(t, e.approve(com1, "BAD", "0.5"), "modelId")

	require.NoError(t, e.approve(com1, "m", "0.4"))
	ev := e.event()
	require.Equal(t, EvModelVote, ev.Type)
	require.Equal(t, int64(1), ev.Count)
	require.Equal(t, ModelProposed, ev.Status)
	errContains(t, e.approve(com1, "m", "0.4"), "has already voted on model m")

	// A member whose committee role was revoked cannot vote.
	require.NoError(t, e.tx(admin2, func(ctx ctxT) error { return e.cc.RevokeRole(ctx, com3.key(), RoleCommittee) }))
	errContains(t, e.approve(com3, "m", "0.4"), "does not hold the committee role")

	require.NoError(t, e.approve(com2, "m", "0.6"))
	ev = e.event()
	require.Equal(t, EvModelActivated, ev.Type)
	require.Equal(t, int64(1), ev.Round)
	require.Equal(t, cidOf("w0"), ev.CID)
	require.Equal(t, shaOf("w0"), ev.SHA256)
	require.Equal(t, e.l.now+600, ev.Deadline)
	require.InDelta(t, 0.5, *ev.Score, 1e-12)

	m := e.model("m")
	require.Equal(t, ModelActive, m.Status)
	require.Equal(t, int64(1), m.CurrentRound)
	require.InDelta(t, 0.5, *m.Baseline, 1e-12)
	r := e.round("m", "1")
	require.Equal(t, RoundOpen, r.Status)
	require.Equal(t, shaOf("w0"), r.Global.SHA256)

	// Voting is closed once decided.
	e.grant(com3, RoleCommittee)
	errContains(t, e.approve(com3, "m", "0.4"), "votes are closed")

	var votes []ModelVote
	require.NoError(t, e.query(nobody, &votes, func(ctx ctxT) (string, error) { return e.cc.GetModelVotes(ctx, "m") }))
	require.Len(t, votes, 2)
	require.NoError(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, "model", "m") }))
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetModelVotes(ctx, "B A D") }), "modelId")
}

func TestModelRejection(t *testing.T) { bothModes(t, modelRejection) }

func modelRejection(t *testing.T, e *env) {
	e.setupRoles()
	s := spec("m")
	s.Quorum = 3
	_, err := e.publish(s)
	require.NoError(t, err)
	reject := func(who *fakeIdentity, reason string) error {
		return e.tx(who, func(ctx ctxT) error { return e.cc.RejectModel(ctx, "m", reason) })
	}
	errContains(t, reject(com1, ""), "reason: required")
	errContains(t, reject(com1, "bad\x00reason"), "control character")
	errContains(t, reject(com1, strings.Repeat("x", MaxTextLen+1)), "limit is 512")
	errContains(t, reject(com1, "\xff"), "not valid UTF-8")
	require.NoError(t, e.approve(com2, "m", "0.5"))
	// Quorum 3 of 3: one rejection makes approval impossible.
	require.NoError(t, reject(com1, "shard hash does not match"))
	ev := e.event()
	require.Equal(t, EvModelRejected, ev.Type)
	require.Equal(t, ModelRejected, ev.Status)
	require.Equal(t, ModelRejected, e.model("m").Status)
	errContains(t, reject(com3, "late"), "votes are closed")
	_, err = e.submit(prov1, "m", fedUpdate(1, "u"))
	errContains(t, err, "model m is rejected, not active")
}

// The aggregation rule is recorded as given (so a verifier recomputes with the
// publisher's strategy) and refused when it is not a name with a few finite
// numbers or booleans.
func TestPublishModelAggregationRule(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	s := spec("agg")
	s.Aggregation = &AggregationRule{Name: "fedavgm", Params: map[string]any{"momentum": 0.9, "lr": 1.0}}
	_, err := e.publish(s)
	require.NoError(t, err)
	m := e.model("agg")
	require.NotNil(t, m.Aggregation)
	require.Equal(t, "fedavgm", m.Aggregation.Name)
	require.Equal(t, map[string]any{"momentum": 0.9, "lr": 1.0}, m.Aggregation.Params)

	raw := func(rule string) error {
		input := strings.Replace(mustJSON(spec("bad")), `"quorum"`, `"aggregation":`+rule+`,"quorum"`, 1)
		return e.tx(pub, func(ctx ctxT) error { _, err := e.cc.PublishModel(ctx, input); return err })
	}
	errContains(t, raw(`{"name":"fed avg"}`), "aggregation.name")
	errContains(t, raw(`{"name":"fedavg","params":{"weighted":"yes"}}`), "aggregation.params.weighted: yes must be a number or a boolean")
	errContains(t, raw(`{"name":"krum","params":{"f":{"n":1}}}`), "aggregation.params.f")
	errContains(t, raw(`{"name":"fedavg","params":{"x":1e300}}`), "aggregation.params.x")
	errContains(t, raw(`{"name":"fedavg","size":3}`), `unknown field "size"`)
	many := map[string]any{}
	for i := 0; i <= MaxAggregationParams; i++ {
		many[fmt.Sprintf("p%d", i)] = 1.0
	}
	errContains(t, raw(mustJSON(AggregationRule{Name: "fedavg", Params: many})), "at most 16")
	require.NoError(t, raw(`{"name":"fedavg","params":{"weighted":true}}`))
}
