package fedcommittee

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"testing"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/stretchr/testify/require"
)

type ctxT = contractapi.TransactionContextInterface

var (
	admin1 = &fakeIdentity{msp: "Org1MSP", name: "Admin@org1", ous: []string{"admin"}}
	admin2 = &fakeIdentity{msp: "Org2MSP", name: "Admin@org2", ous: []string{"admin"}}
	pub    = &fakeIdentity{msp: "Org1MSP", name: "publisher", ous: []string{"client"}}
	prov1  = &fakeIdentity{msp: "Org1MSP", name: "provider1", ous: []string{"client"}}
	prov2  = &fakeIdentity{msp: "Org2MSP", name: "provider2", ous: []string{"client"}}
	prov3  = &fakeIdentity{msp: "Org2MSP", name: "provider3", ous: []string{"client"}}
	com1   = &fakeIdentity{msp: "Org1MSP", name: "committee1", ous: []string{"client"}}
	com2   = &fakeIdentity{msp: "Org2MSP", name: "committee2", ous: []string{"client"}}
	com3   = &fakeIdentity{msp: "Org2MSP", name: "committee3", ous: []string{"client"}}
	nobody = &fakeIdentity{msp: "Org1MSP", name: "nobody", ous: []string{"client"}}
)

const b58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// cidOf returns the CIDv0 of the bytes of s: base58btc of the sha2-256 multihash.
func cidOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	n := new(big.Int).SetBytes(append([]byte{0x12, 0x20}, sum[:]...))
	var out []byte
	mod, base := new(big.Int), big.NewInt(58)
	for n.Sign() > 0 {
		n.DivMod(n, base, mod)
		out = append([]byte{b58[mod.Int64()]}, out...)
	}
	return string(out)
}

func shaOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// grant grants roles as the identity's org admin.
func (e *env) grant(id *fakeIdentity, roles ...string) {
	e.t.Helper()
	adm := admin1
	if id.msp == "Org2MSP" {
		adm = admin2
	}
	for _, r := range roles {
		require.NoError(e.t, e.tx(adm, func(ctx ctxT) error { return e.cc.GrantRole(ctx, id.key(), r) }))
	}
}

// setupRoles grants the standard cast its roles.
func (e *env) setupRoles() {
	e.grant(pub, RolePublisher)
	e.grant(prov1, RoleProvider)
	e.grant(prov2, RoleProvider)
	e.grant(prov3, RoleProvider)
	e.grant(com1, RoleCommittee)
	e.grant(com2, RoleCommittee)
	e.grant(com3, RoleCommittee)
}

func ptr[T any](v T) *T { return &v }

// spec returns a valid federated model spec with committee com1..com3, quorum 2.
func spec(id string) ModelSpec {
	return ModelSpec{
		ModelID: id,
		ModelTerms: ModelTerms{
			Architecture:   ArchitectureRef{Name: "mnist_cnn", Version: "1.0.0"},
			SpecSHA256:     shaOf("spec"),
			InitialWeights: ObjectRef{CID: cidOf("w0"), SHA256: shaOf("w0")},
			Metric:         Metric{Name: "accuracy", HigherIsBetter: true},
			Acceptance:     Acceptance{Rule: RuleThreshold, Threshold: ptr(0.5), ScoreMin: 0, ScoreMax: 1},
			Quorum:         2,
			Committee: []CommitteeSeat{
				{Member: com1.key(), ShardCID: cidOf("s1"), ShardSHA256: shaOf("s1")},
				{Member: com2.key(), ShardCID: cidOf("s2"), ShardSHA256: shaOf("s2")},
				{Member: com3.key(), ShardCID: cidOf("s3"), ShardSHA256: shaOf("s3")},
			},
			Mode:        ModeFederated,
			RoundRules:  RoundRules{MinAccepted: 2, DeadlineSeconds: 600, MaxRounds: 2},
			RewardRules: RewardRules{AcceptReward: 10, RejectPenalty: 3, VerdictReward: 1},
		},
	}
}

func gossipSpec(id string) ModelSpec {
	s := spec(id)
	s.Mode = ModeGossip
	s.RoundRules = RoundRules{MaxParents: 2}
	return s
}

// majorityGossipModel sets up the roles and an active gossip model whose
// updates are decided by a majority of accept flags.
func (e *env) majorityGossipModel(id string) {
	e.setupRoles()
	s := gossipSpec(id)
	s.Acceptance = Acceptance{Rule: RuleMajority, ScoreMin: 0, ScoreMax: 1}
	e.activeModel(s)
}

func (e *env) publish(s ModelSpec) (string, error) {
	var out string
	err := e.tx(pub, func(ctx ctxT) error {
		var err error
		out, err = e.cc.PublishModel(ctx, mustJSON(s))
		return err
	})
	return out, err
}

func (e *env) approve(who *fakeIdentity, model, score string) error {
	return e.tx(who, func(ctx ctxT) error { return e.cc.ApproveModel(ctx, model, score) })
}

// activeModel publishes s and has com1, com2 approve it (quorum 2).
func (e *env) activeModel(s ModelSpec) {
	e.t.Helper()
	_, err := e.publish(s)
	require.NoError(e.t, err)
	require.NoError(e.t, e.approve(com1, s.ModelID, "0.4"))
	require.NoError(e.t, e.approve(com2, s.ModelID, "0.5"))
}

func (e *env) submit(who *fakeIdentity, model string, in map[string]any) (*Update, error) {
	var out string
	err := e.tx(who, func(ctx ctxT) error {
		var err error
		out, err = e.cc.SubmitUpdate(ctx, model, mustJSON(in))
		return err
	})
	if err != nil {
		return nil, err
	}
	var u Update
	require.NoError(e.t, json.Unmarshal([]byte(out), &u))
	return &u, nil
}

func fedUpdate(round int, name string) map[string]any {
	return map[string]any{"round": round, "baseCid": cidOf("w0"), "baseSha256": shaOf("w0"),
		"cid": cidOf(name), "sha256": shaOf(name), "numSamples": 100, "metrics": map[string]float64{"loss": 0.3}}
}

func gossipUpdate(name string, parents ...string) map[string]any {
	return map[string]any{"parents": parents, "cid": cidOf(name), "sha256": shaOf(name), "numSamples": 50}
}

func (e *env) verdict(who *fakeIdentity, updateID string, score float64, accept bool) error {
	return e.tx(who, func(ctx ctxT) error {
		return e.cc.SubmitVerdict(ctx, updateID, mustJSON(map[string]any{"score": score, "accept": accept}))
	})
}

// account reads who's account (the contract's GetAccount).
func (e *env) account(who *fakeIdentity) Account {
	var a Account
	require.NoError(e.t, e.query(nobody, &a, func(ctx ctxT) (string, error) { return e.cc.GetAccount(ctx, who.key()) }))
	return a
}

// query runs a read-only call and decodes its JSON result into out.
func (e *env) query(who *fakeIdentity, out any, f func(ctx ctxT) (string, error)) error {
	var s string
	err := e.tx(who, func(ctx ctxT) error {
		var err error
		s, err = f(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if out != nil {
		require.NoError(e.t, json.Unmarshal([]byte(s), out), s)
	}
	return nil
}

func (e *env) model(id string) *Model {
	var m Model
	require.NoError(e.t, e.query(nobody, &m, func(ctx ctxT) (string, error) { return e.cc.GetModel(ctx, id) }))
	return &m
}

func (e *env) update(id string) *Update {
	var u Update
	require.NoError(e.t, e.query(nobody, &u, func(ctx ctxT) (string, error) { return e.cc.GetUpdate(ctx, id) }))
	return &u
}

func (e *env) round(model, n string) *Round {
	var r Round
	require.NoError(e.t, e.query(nobody, &r, func(ctx ctxT) (string, error) { return e.cc.GetRound(ctx, model, n) }))
	return &r
}

func (e *env) event() Event {
	var ev Event
	fe := e.lastEvent()
	require.NoError(e.t, json.Unmarshal(fe.Payload, &ev))
	require.Equal(e.t, fe.Name, ev.Type)
	return ev
}

func errContains(t *testing.T, err error, sub string) {
	t.Helper()
	require.Error(t, err)
	require.Contains(t, err.Error(), sub)
}
