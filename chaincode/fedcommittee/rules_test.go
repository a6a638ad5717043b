package fedcommittee

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/stretchr/testify/require"
)

var (
	admin3 = &fakeIdentity{msp: "Org3MSP", name: "Admin@org3", ous: []string{"admin"}}
	admin4 = &fakeIdentity{msp: "Org4MSP", name: "Admin@org4", ous: []string{"admin"}}
	prov4  = &fakeIdentity{msp: "Org1MSP", name: "provider4", ous: []string{"client"}}
	com4   = &fakeIdentity{msp: "Org1MSP", name: "committee4", ous: []string{"client"}}
	candA  = &fakeIdentity{msp: "Org1MSP", name: "candA", ous: []string{"client"}}
	candB  = &fakeIdentity{msp: "Org2MSP", name: "candB", ous: []string{"client"}}
	candC  = &fakeIdentity{msp: "Org2MSP", name: "candC", ous: []string{"client"}}
)

func seatOf(id *fakeIdentity) CommitteeSeat {
	return CommitteeSeat{Member: id.key(), ShardCID: cidOf("shard-" + id.name), ShardSHA256: shaOf("shard-" + id.name)}
}

func dataIn(n int64) map[string]any {
	return map[string]any{"numSamples": n, "dataType": "image", "format": "png-28x28"}
}

func (e *env) registerData(who *fakeIdentity, model string, in map[string]any) (*DataRegistration, error) {
	var out string
	err := e.tx(who, func(ctx ctxT) error {
		var err error
		out, err = e.cc.RegisterData(ctx, model, mustJSON(in))
		return err
	})
	if err != nil {
		return nil, err
	}
	var d DataRegistration
	require.NoError(e.t, jsonUnmarshal([]byte(out), &d))
	return &d, nil
}

func (e *env) propose(who *fakeIdentity, model string, in any) (string, error) {
	var out string
	err := e.tx(who, func(ctx ctxT) error {
		var err error
		out, err = e.cc.ProposeRuleChange(ctx, model, mustJSON(in))
		return err
	})
	return out, err
}

func (e *env) vote(who *fakeIdentity, id, approve string) error {
	return e.tx(who, func(ctx ctxT) error { return e.cc.VoteRuleChange(ctx, id, approve) })
}

func (e *env) ruleChange(id string) *RuleChange {
	var rc RuleChange
	require.NoError(e.t, e.query(nobody, &rc, func(ctx ctxT) (string, error) { return e.cc.GetRuleChange(ctx, id) }))
	return &rc
}

func (e *env) allocation(model, round string) *Allocation {
	var al Allocation
	require.NoError(e.t, e.query(nobody, &al, func(ctx ctxT) (string, error) { return e.cc.GetAllocation(ctx, model, round) }))
	return &al
}

// accept has two committee members accept an update with the given score.
func (e *env) accept(u *Update, score float64, judges ...*fakeIdentity) {
	e.t.Helper()
	if len(judges) == 0 {
		judges = []*fakeIdentity{com1, com2}
	}
	for _, j := range judges {
		require.NoError(e.t, e.verdict(j, u.ID, score, true))
	}
}

// finishRound closes round n (after its deadline), records aggregate name
// and has the judges confirm it with score.
func (e *env) finishRound(model string, n int, name string, score float64, judges ...*fakeIdentity) {
	e.t.Helper()
	if len(judges) == 0 {
		judges = []*fakeIdentity{com1, com2}
	}
	r := fmt.Sprint(n)
	e.l.now += 601
	require.NoError(e.t, e.closeRound(pub, model, r))
	require.NoError(e.t, e.recordAgg(pub, model, r, name))
	for _, j := range judges {
		require.NoError(e.t, e.confirmAgg(j, model, r, name, score))
	}
}

func onGlobal(round int, name, global string) map[string]any {
	in := fedUpdate(round, name)
	in["baseCid"], in["baseSha256"] = cidOf(global), shaOf(global)
	return in
}

func TestDataRegistration(t *testing.T) { bothModes(t, dataRegistration) }

func dataRegistration(t *testing.T, e *env) {
	e.setupRoles()
	_, err := e.publish(spec("m"))
	require.NoError(t, err)

	_, err = e.registerData(pub, "m", dataIn(10))
	errContains(t, err, "does not hold the provider role")
	_, err = e.registerData(prov1, "nope", dataIn(10))
	errContains(t, err, "model nope not found")
	cases := []struct {
		name string
		mut  func(map[string]any)
		want string
	}{
		{"no samples", func(in map[string]any) { in["numSamples"] = 0 }, "numSamples: 0 is out of range"},
		{"bad type", func(in map[string]any) { in["dataType"] = "" }, "dataType"},
		{"bad format", func(in map[string]any) { in["format"] = "a b" }, "format"},
		{"bad description", func(in map[string]any) { in["description"] = "x\x01" }, "description: contains a control character"},
		{"unknown field", func(in map[string]any) { in["rows"] = 3 }, `unknown field "rows"`},
		{"histogram not allowed", func(in map[string]any) { in["labelHistogram"] = map[string]int{"0": 5} }, "shareHistogram is false"},
		{"bad label", func(in map[string]any) {
			in["shareHistogram"], in["labelHistogram"] = true, map[string]int{"a b": 5}
		}, "labelHistogram key"},
		{"negative bin", func(in map[string]any) {
			in["shareHistogram"], in["labelHistogram"] = true, map[string]int{"0": -1}
		}, "labelHistogram.0: -1 is out of range"},
		{"sum too big", func(in map[string]any) {
			in["shareHistogram"], in["labelHistogram"] = true, map[string]int{"0": 6, "1": 6}
		}, "counts sum to 12, more than numSamples 10"},
		{"too many bins", func(in map[string]any) {
			h := map[string]int{}
			for i := 0; i <= MaxHistogramBins; i++ {
				h[fmt.Sprint(i)] = 0
			}
			in["shareHistogram"], in["labelHistogram"] = true, h
		}, "65 bins, limit is 64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := dataIn(10)
			c.mut(in)
			_, err := e.registerData(prov1, "m", in)
			errContains(t, err, c.want)
		})
	}

	in := dataIn(10)
	in["shareHistogram"], in["labelHistogram"], in["description"] = true, map[string]int{"0": 4, "1": 6}, "mnist shard"
	d, err := e.registerData(prov1, "m", in)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"0": 4, "1": 6}, d.LabelHistogram)
	ev := e.event()
	require.Equal(t, EvDataRegistered, ev.Type)
	require.Equal(t, prov1.key(), ev.Provider)
	require.Equal(t, int64(10), ev.Count)
	first := d.RegisteredAt

	// Re-registering replaces the metadata (and drops the histogram).
	e.l.now += 5
	d, err = e.registerData(prov1, "m", dataIn(20))
	require.NoError(t, err)
	require.Nil(t, d.LabelHistogram)
	require.Equal(t, first, d.RegisteredAt)
	require.Equal(t, first+5, d.UpdatedAt)
	_, err = e.registerData(prov2, "m", dataIn(30))
	require.NoError(t, err)

	var p struct {
		Items    []DataRegistration `json:"items"`
		Bookmark string             `json:"bookmark"`
		Count    int                `json:"count"`
	}
	require.NoError(t, e.query(nobody, &p, func(ctx ctxT) (string, error) { return e.cc.ListDataRegistrations(ctx, "m", "1", "") }))
	require.Equal(t, 1, p.Count)
	require.NotEmpty(t, p.Bookmark)
	require.NoError(t, e.query(nobody, &p, func(ctx ctxT) (string, error) { return e.cc.ListDataRegistrations(ctx, "m", "", "") }))
	require.Equal(t, 2, p.Count)
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.ListDataRegistrations(ctx, "B A D", "", "") }), "modelId")

	var one DataRegistration
	require.NoError(t, e.query(nobody, &one, func(ctx ctxT) (string, error) { return e.cc.GetDataRegistration(ctx, "m", prov2.key()) }))
	require.Equal(t, int64(30), one.NumSamples)
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetDataRegistration(ctx, "m", prov3.key()) }), "has no data registration")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetDataRegistration(ctx, "m", "bad") }), "provider")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetDataRegistration(ctx, "B A D", prov2.key()) }), "modelId")

	var hist []HistoryEntry
	require.NoError(t, e.query(nobody, &hist, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, "data", "m:"+prov1.key()) }))
	require.Len(t, hist, 2)
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, "data", "m") }), "must be")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, "data", "B A D:"+prov1.key()) }), "modelId")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, "data", "m:bad") }), "identity key")

	// A rejected model takes no registrations.
	s := spec("r")
	s.Quorum = 3
	_, err = e.publish(s)
	require.NoError(t, err)
	require.NoError(t, e.tx(com1, func(ctx ctxT) error { return e.cc.RejectModel(ctx, "r", "no") }))
	_, err = e.registerData(prov1, "r", dataIn(10))
	errContains(t, err, "model r is rejected: data can no longer be registered")
}

// The registration limit is applied by the allocation, the one transaction
// that reads every registration: a round opens on a pool drawn from the first
// MaxDataRegistrants registrations however many there are.
func TestAllocationReadsAtMostTheRegistrationLimit(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	s := spec("m")
	s.Allocation = &AllocationRule{Rule: AllocRandom, K: 3}
	_, err := e.publish(s)
	require.NoError(t, err)
	// Registrations (and provider grants) written straight into state: as
	// many as 1,000 transactions would leave them.
	for i := 0; i < MaxDataRegistrants+5; i++ {
		p := &fakeIdentity{msp: "Org1MSP", name: fmt.Sprintf("bulk%04d", i)}
		dk, _ := shim.CreateCompositeKey(keyData, []string{"m", p.key()})
		rk, _ := shim.CreateCompositeKey(keyRole, []string{RoleProvider, p.key()})
		e.l.state[dk] = []byte(mustJSON(DataRegistration{DocType: "data", ModelID: "m", Provider: p.key(), DataInput: DataInput{NumSamples: 1}}))
		e.l.state[rk] = []byte(mustJSON(RoleGrant{Role: RoleProvider, Identity: p.key()}))
	}
	require.NoError(t, e.approve(com1, "m", "0.4"))
	require.NoError(t, e.approve(com2, "m", "0.5"))
	var al Allocation
	require.NoError(t, e.query(nobody, &al, func(ctx ctxT) (string, error) { return e.cc.GetAllocation(ctx, "m", "1") }))
	require.Equal(t, int64(MaxDataRegistrants), al.Eligible)
	require.Len(t, al.Providers, 3)
}

// Providers of one model act in the same blocks: what one provider's
// RegisterData or SubmitUpdate writes must be nothing another provider's
// reads or writes, or they would invalidate each other (MVCC conflicts).
func TestProvidersTouchDisjointKeys(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	s := spec("m")
	_, err := e.publish(s)
	require.NoError(t, err)
	var sets []rwset
	for _, p := range []*fakeIdentity{prov1, prov2, prov3} {
		_, err := e.registerData(p, "m", dataIn(10))
		require.NoError(t, err)
		sets = append(sets, e.l.lastRWSet())
	}
	_, err = e.registerData(prov1, "m", dataIn(20)) // a registration replaced
	require.NoError(t, err)
	sets = append(sets, e.l.lastRWSet())
	require.Empty(t, sets[0].conflicts(sets[1]))
	require.Empty(t, sets[1].conflicts(sets[2]))
	require.Empty(t, sets[3].conflicts(sets[2]))
	require.NotEmpty(t, sets[0].conflicts(sets[3]), "one provider's own registrations do share its key")

	require.NoError(t, e.approve(com1, "m", "0.4"))
	require.NoError(t, e.approve(com2, "m", "0.5"))
	sets = nil
	for _, p := range []*fakeIdentity{prov1, prov2, prov3} {
		_, err := e.submit(p, "m", fedUpdate(1, "u-"+p.name))
		require.NoError(t, err)
		sets = append(sets, e.l.lastRWSet())
	}
	require.Empty(t, sets[0].conflicts(sets[1]))
	require.Empty(t, sets[0].conflicts(sets[2]))
	require.Empty(t, sets[1].conflicts(sets[2]))
}

// expectedRandom recomputes a random allocation from public data only.
func expectedRandom(model string, round int, seed string, k int, providers []string) []string {
	h := func(s string) string { x := sha256.Sum256([]byte(s)); return hex.EncodeToString(x[:]) }
	rs := h(model + "|" + fmt.Sprint(round) + "|" + seed)
	ps := append([]string(nil), providers...)
	sort.Slice(ps, func(i, j int) bool {
		a, b := h(rs+"|"+ps[i]), h(rs+"|"+ps[j])
		if a != b {
			return a < b
		}
		return ps[i] < ps[j]
	})
	if len(ps) > k {
		ps = ps[:k]
	}
	return ps
}

func TestAllocationRandom(t *testing.T) { bothModes(t, allocationRandom) }

func allocationRandom(t *testing.T, e *env) {
	e.setupRoles()
	e.grant(prov4, RoleProvider)
	s := spec("m")
	s.Allocation = &AllocationRule{Rule: AllocRandom, K: 2}
	s.RoundRules = RoundRules{MinAccepted: 1, DeadlineSeconds: 600, MaxRounds: 3}
	_, err := e.publish(s)
	require.NoError(t, err)
	m := e.model("m")
	require.Equal(t, m.CreatedTx, m.AllocationSeed)

	// Training on a model the committee has not approved is refused.
	_, err = e.submit(prov1, "m", fedUpdate(1, "early"))
	errContains(t, err, "model m is proposed, not active")

	for _, p := range []*fakeIdentity{prov1, prov2, prov3, prov4} {
		_, err := e.registerData(p, "m", dataIn(100))
		require.NoError(t, err)
	}
	// prov4 registered but lost its provider role: not eligible.
	require.NoError(t, e.tx(admin1, func(ctx ctxT) error { return e.cc.RevokeRole(ctx, prov4.key(), RoleProvider) }))
	e.activeModel2("m")
	ev := e.event()
	require.Equal(t, EvModelActivated, ev.Type)

	pool := []string{prov1.key(), prov2.key(), prov3.key()}
	want := expectedRandom("m", 1, m.CreatedTx, 2, pool)
	al := e.allocation("m", "1")
	require.Equal(t, want, al.Providers)
	require.Equal(t, want, ev.Allocated)
	require.Equal(t, want, e.round("m", "1").Allocated)
	require.Equal(t, int64(3), al.Eligible)
	require.Equal(t, RoundSeed("m", 1, m.CreatedTx), al.RoundSeed)
	require.Equal(t, Draw(al.RoundSeed, want[0]), al.Ranking[0].Draw)

	ids := map[string]*fakeIdentity{prov1.key(): prov1, prov2.key(): prov2, prov3.key(): prov3}
	var out *fakeIdentity
	for _, p := range pool {
		if p != want[0] && p != want[1] {
			out = ids[p]
		}
	}
	_, err = e.submit(out, "m", fedUpdate(1, "refused"))
	errContains(t, err, "is not allocated to round 1 of model m")
	u, err := e.submit(ids[want[0]], "m", fedUpdate(1, "u1"))
	require.NoError(t, err)
	e.accept(u, 0.8)
	e.finishRound("m", 1, "agg1", 0.8)
	ev = e.event()
	require.Equal(t, EvRoundOpened, ev.Type)
	want2 := expectedRandom("m", 2, m.CreatedTx, 2, pool)
	require.Equal(t, want2, ev.Allocated)
	require.Equal(t, want2, e.allocation("m", "2").Providers)

	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetAllocation(ctx, "m", "9") }), "round 9 of model m not found")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetAllocation(ctx, "m", "x") }), "round")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetAllocation(ctx, "nope", "1") }), "not found")
}

// activeModel2 has com1 and com2 approve an already published model.
func (e *env) activeModel2(id string) {
	e.t.Helper()
	require.NoError(e.t, e.approve(com1, id, "0.4"))
	require.NoError(e.t, e.approve(com2, id, "0.5"))
}

func TestAllocationReputationAndAll(t *testing.T) { bothModes(t, allocationReputationAndAll) }

func allocationReputationAndAll(t *testing.T, e *env) {
	e.setupRoles()
	e.grant(prov4, RoleProvider)
	// Model "a" (no allocation rule: everyone) builds reputations:
	// prov2 accepted (2/3), prov1 rejected (1/3), prov3 and prov4 new (1/2).
	e.activeModel(spec("a"))
	u1, err := e.submit(prov1, "a", fedUpdate(1, "a1"))
	require.NoError(t, err)
	u2, err := e.submit(prov2, "a", fedUpdate(1, "a2"))
	require.NoError(t, err)
	require.NoError(t, e.verdict(com1, u1.ID, 0.1, false))
	require.NoError(t, e.verdict(com2, u1.ID, 0.1, false))
	e.accept(u2, 0.9)
	al := e.allocation("a", "1")
	require.Equal(t, AllocAll, al.Rule)
	require.Empty(t, al.Providers)

	s := spec("r")
	s.Allocation = &AllocationRule{Rule: AllocReputation, K: 3}
	_, err = e.publish(s)
	require.NoError(t, err)
	for _, p := range []*fakeIdentity{prov1, prov2, prov3, prov4} {
		_, err := e.registerData(p, "r", dataIn(100))
		require.NoError(t, err)
	}
	e.activeModel2("r")
	ties := []string{prov3.key(), prov4.key()}
	sort.Strings(ties)
	al = e.allocation("r", "1")
	require.Equal(t, []string{prov2.key(), ties[0], ties[1]}, al.Providers)
	require.InDelta(t, 2.0/3, *al.Ranking[0].Reputation, 1e-12)
	_, err = e.submit(prov1, "r", fedUpdate(1, "r1"))
	errContains(t, err, "not allocated to round 1")
	_, err = e.submit(prov3, "r", fedUpdate(1, "r3"))
	require.NoError(t, err)

	// With no registered provider, nobody is allocated.
	s = spec("z")
	s.Allocation = &AllocationRule{Rule: AllocRandom, K: 1}
	e.activeModel(s)
	require.Empty(t, e.allocation("z", "1").Providers)
	_, err = e.submit(prov1, "z", fedUpdate(1, "z1"))
	errContains(t, err, "0 providers allocated")

	// Rule "all" given explicitly behaves as today.
	s = spec("all")
	s.Allocation = &AllocationRule{Rule: AllocAll}
	e.activeModel(s)
	_, err = e.submit(prov1, "all", fedUpdate(1, "all1"))
	require.NoError(t, err)
}

func TestRuleValidation(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	cases := []struct {
		name string
		mut  func(s *ModelSpec)
		want string
	}{
		{"alloc gossip", func(s *ModelSpec) {
			*s = gossipSpec("m")
			s.Allocation = &AllocationRule{Rule: AllocAll}
		}, "allocation: only federated"},
		{"alloc rule", func(s *ModelSpec) { s.Allocation = &AllocationRule{Rule: "lottery"} }, "allocation.rule"},
		{"alloc k all", func(s *ModelSpec) { s.Allocation = &AllocationRule{Rule: AllocAll, K: 2} }, "allocation.k: not used"},
		{"alloc k zero", func(s *ModelSpec) { s.Allocation = &AllocationRule{Rule: AllocRandom} }, "allocation.k: 0 is out of range"},
		{"stop gossip", func(s *ModelSpec) {
			*s = gossipSpec("m")
			s.Stopping = &StoppingRule{Patience: 1}
		}, "stopping: only federated"},
		{"stop empty", func(s *ModelSpec) { s.Stopping = &StoppingRule{} }, "give a target, a patience"},
		{"stop target nan", func(s *ModelSpec) { s.Stopping = &StoppingRule{Target: ptr(1e13)} }, "stopping.target"},
		{"stop target range", func(s *ModelSpec) { s.Stopping = &StoppingRule{Target: ptr(2.0)} }, "outside [scoreMin, scoreMax]"},
		{"stop patience", func(s *ModelSpec) { s.Stopping = &StoppingRule{Patience: -1} }, "stopping.patience"},
		{"stop delta huge", func(s *ModelSpec) { s.Stopping = &StoppingRule{Patience: 1, MinDelta: 1e13} }, "stopping.minDelta"},
		{"stop delta range", func(s *ModelSpec) { s.Stopping = &StoppingRule{Patience: 1, MinDelta: 2} }, "must be in [0, scoreMax-scoreMin]"},
		{"gov policy", func(s *ModelSpec) { s.Governance = &GovernanceRule{Policy: "some", Orgs: []string{"Org1MSP"}} }, "governance.policy"},
		{"gov no orgs", func(s *ModelSpec) { s.Governance = &GovernanceRule{Policy: PolicyAll} }, "governance.orgs: 0 orgs"},
		{"gov bad org", func(s *ModelSpec) { s.Governance = &GovernanceRule{Policy: PolicyAll, Orgs: []string{"bad org"}} }, "is not an MSP id"},
		{"gov dup org", func(s *ModelSpec) {
			s.Governance = &GovernanceRule{Policy: PolicyAll, Orgs: []string{"Org1MSP", "Org1MSP"}}
		}, "listed twice"},
		{"profile purpose", func(s *ModelSpec) { s.Profile = profileWith(func(p *ModelProfile) { p.Purpose = " " }) }, "profile.purpose: must say"},
		{"profile purpose ctl", func(s *ModelSpec) { s.Profile = profileWith(func(p *ModelProfile) { p.Purpose = "a\x00b" }) }, "profile.purpose: contains a control"},
		{"profile data type", func(s *ModelSpec) { s.Profile = profileWith(func(p *ModelProfile) { p.DataType = "im age" }) }, "profile.dataType"},
		{"profile format", func(s *ModelSpec) { s.Profile = profileWith(func(p *ModelProfile) { p.DataFormat = "/x" }) }, "profile.dataFormat"},
		{"profile samples", func(s *ModelSpec) { s.Profile = profileWith(func(p *ModelProfile) { p.TrainingSamples = 0 }) }, "profile.trainingSamples: 0 is out of range"},
		{"profile params", func(s *ModelSpec) {
			s.Profile = profileWith(func(p *ModelProfile) { p.Parameters = MaxParameters + 1 })
		}, "profile.parameters"},
		{"rot gossip", func(s *ModelSpec) {
			*s = gossipSpec("m")
			s.Rotation = &RotationRule{Size: 2, Candidates: []CommitteeSeat{seatOf(com1)}}
		}, "rotation: only federated"},
		{"rot no candidates", func(s *ModelSpec) { s.Rotation = &RotationRule{Size: 2} }, "rotation.candidates: 0"},
		{"rot size", func(s *ModelSpec) { s.Rotation = &RotationRule{Size: 1, Candidates: []CommitteeSeat{seatOf(com1)}} }, "size must be at least the quorum"},
		{"rot dup", func(s *ModelSpec) {
			s.Rotation = &RotationRule{Size: 2, Candidates: []CommitteeSeat{seatOf(com1), seatOf(com1)}}
		}, "listed twice"},
		{"rot bad seat", func(s *ModelSpec) {
			bad := seatOf(com1)
			bad.ShardSHA256 = "x"
			s.Rotation = &RotationRule{Size: 2, Candidates: []CommitteeSeat{bad}}
		}, "rotation.candidates[0].shardSha256"},
		{"rot bad cid", func(s *ModelSpec) {
			bad := seatOf(com1)
			bad.ShardCID = "x"
			s.Rotation = &RotationRule{Size: 2, Candidates: []CommitteeSeat{bad}}
		}, "rotation.candidates[0].shardCid"},
		{"rot bad member", func(s *ModelSpec) {
			bad := seatOf(com1)
			bad.Member = "x"
			s.Rotation = &RotationRule{Size: 2, Candidates: []CommitteeSeat{bad}}
		}, "rotation.candidates[0].member"},
		{"rot no role", func(s *ModelSpec) {
			s.Rotation = &RotationRule{Size: 2, Candidates: []CommitteeSeat{seatOf(com1), seatOf(nobody)}}
		}, "rotation.candidates[1].member: " + nobody.key() + " does not hold the committee role"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := spec("m")
			c.mut(&s)
			errContains(t, ignore(e.publish(s)), c.want)
		})
	}
	errContains(t, e.tx(pub, func(ctx ctxT) error {
		_, err := e.cc.PublishModel(ctx, strings.Replace(mustJSON(spec("m")), `"quorum"`, `"allocation":{"rule":"all","x":1},"quorum"`, 1))
		return err
	}), `unknown field "x"`)
	require.True(t, reached(&Model{}, 0.1, 0.2))
	require.False(t, improves(&Model{}, 0.15, 0.2, 0.1))
	require.True(t, improves(&Model{}, 0.05, 0.2, 0.1))
}

func profileWith(mut func(p *ModelProfile)) *ModelProfile {
	p := &ModelProfile{Purpose: "digit recognition", DataType: "image", DataFormat: "float32-1x8x8",
		TrainingSamples: 1000, Parameters: 4810}
	mut(p)
	return p
}

func TestProfileIsStoredAsDeclared(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	s := spec("m")
	s.Profile = profileWith(func(*ModelProfile) {})
	out, err := e.publish(s)
	require.NoError(t, err)
	require.Contains(t, out, `"profile":{"purpose":"digit recognition","dataType":"image"`)
	stored := e.model("m")
	require.NotNil(t, stored.Profile)
	require.Equal(t, *s.Profile, *stored.Profile)
	// Without a profile nothing is stored under the name.
	out2, err := e.publish(spec("m2"))
	require.NoError(t, err)
	require.Nil(t, e.model("m2").Profile)
	require.NotContains(t, out2, `"profile"`)
}

func TestStoppingTarget(t *testing.T) { bothModes(t, stoppingTarget) }

func stoppingTarget(t *testing.T, e *env) {
	e.setupRoles()
	s := spec("m")
	s.Stopping = &StoppingRule{Target: ptr(0.8)}
	s.RoundRules = RoundRules{MinAccepted: 1, DeadlineSeconds: 600, MaxRounds: 5}
	e.activeModel(s)
	require.InDelta(t, 0.45, e.model("m").Best.Score, 1e-12)
	u, err := e.submit(prov1, "m", fedUpdate(1, "u1"))
	require.NoError(t, err)
	e.accept(u, 0.7)
	e.finishRound("m", 1, "agg1", 0.79) // below target: round 2 opens
	require.Equal(t, EvRoundOpened, e.event().Type)
	u, err = e.submit(prov1, "m", onGlobal(2, "u2", "agg1"))
	require.NoError(t, err)
	e.accept(u, 0.9)
	e.l.now += 601
	require.NoError(t, e.closeRound(pub, "m", "2"))
	require.NoError(t, e.recordAgg(pub, "m", "2", "agg2"))
	require.NoError(t, e.confirmAgg(com1, "m", "2", "agg2", 0.8))
	require.NoError(t, e.confirmAgg(com3, "m", "2", "agg2", 0.84))
	ev := e.event()
	require.Equal(t, EvModelFinished, ev.Type)
	require.Equal(t, StopTarget, ev.Reason)
	require.Equal(t, shaOf("agg2"), ev.SHA256)
	require.InDelta(t, 0.82, *ev.Score, 1e-12)
	m := e.model("m")
	require.Equal(t, ModelFinished, m.Status)
	require.Equal(t, StopTarget, m.StopReason)
	require.Equal(t, shaOf("agg2"), m.Final.SHA256)
	require.Equal(t, cidOf("agg2"), m.Final.CID)
	require.Equal(t, int64(2), m.Best.Round)
	_, err = e.submit(prov1, "m", onGlobal(3, "u3", "agg2"))
	errContains(t, err, "model m is finished, not active")
}

func TestStoppingPatience(t *testing.T) { bothModes(t, stoppingPatience) }

func stoppingPatience(t *testing.T, e *env) {
	e.setupRoles()
	s := spec("m")
	s.Stopping = &StoppingRule{Patience: 2, MinDelta: 0.01}
	s.RoundRules = RoundRules{MinAccepted: 1, DeadlineSeconds: 600, MaxRounds: 10}
	e.activeModel(s)
	u, err := e.submit(prov1, "m", fedUpdate(1, "u1"))
	require.NoError(t, err)
	e.accept(u, 0.7)
	e.finishRound("m", 1, "agg1", 0.7) // 0.7 > 0.45 + 0.01: best
	m := e.model("m")
	require.Equal(t, int64(1), m.Best.Round)
	require.Equal(t, int64(0), m.Stale)
	u, err = e.submit(prov1, "m", onGlobal(2, "u2", "agg1"))
	require.NoError(t, err)
	e.accept(u, 0.7)
	e.finishRound("m", 2, "agg2", 0.705) // not better by minDelta
	require.Equal(t, int64(1), e.model("m").Stale)
	// Round 3 is skipped (nothing submitted): a second round without improvement.
	e.l.now += 601
	require.NoError(t, e.closeRound(pub, "m", "3"))
	ev := e.event()
	require.Equal(t, EvModelFinished, ev.Type)
	require.Equal(t, StopPatience, ev.Reason)
	require.Equal(t, shaOf("agg1"), ev.SHA256) // the best model is final
	require.InDelta(t, 0.7, *ev.Score, 1e-12)
	m = e.model("m")
	require.Equal(t, StopPatience, m.StopReason)
	require.Equal(t, shaOf("agg1"), m.Final.SHA256)
	require.Equal(t, shaOf("agg2"), m.Global.SHA256)
}

func TestStoppingMaxRoundsReason(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	s := spec("m")
	s.RoundRules.MaxRounds = 1
	e.activeModel(s)
	e.l.now += 601
	require.NoError(t, e.closeRound(pub, "m", "1"))
	ev := e.event()
	require.Equal(t, EvModelFinished, ev.Type)
	require.Equal(t, StopMaxRounds, ev.Reason)
	require.Equal(t, StopMaxRounds, e.model("m").StopReason)
	// Stopping rule present but not triggered: maxRounds still ends the model.
	s = spec("p")
	s.RoundRules.MaxRounds = 1
	s.Stopping = &StoppingRule{Patience: 5}
	e.activeModel(s)
	e.l.now += 601
	require.NoError(t, e.closeRound(pub, "p", "1"))
	require.Equal(t, StopMaxRounds, e.model("p").StopReason)
	// Gossip: the publisher's FinishModel.
	e.activeModel(gossipSpec("g"))
	u, err := e.submit(prov1, "g", gossipUpdate("g1"))
	require.NoError(t, err)
	e.accept(u, 0.9)
	require.NoError(t, e.tx(pub, func(ctx ctxT) error { return e.cc.FinishModel(ctx, "g", u.ID) }))
	require.Equal(t, StopPublisher, e.event().Reason)
	require.Equal(t, StopPublisher, e.model("g").StopReason)
}

func govSpec(id string, policy string) ModelSpec {
	s := spec(id)
	s.Governance = &GovernanceRule{Policy: policy, Orgs: []string{"Org1MSP", "Org2MSP", "Org3MSP"}}
	return s
}

func TestRuleChangeGovernance(t *testing.T) { bothModes(t, ruleChangeGovernance) }

func ruleChangeGovernance(t *testing.T, e *env) {
	e.setupRoles()
	e.grant(com4, RoleCommittee)
	e.activeModel(spec("plain"))
	_, err := e.propose(admin1, "plain", map[string]any{"quorum": 3})
	errContains(t, err, "model plain has no governance rule")

	_, err = e.publish(govSpec("m", PolicyMajority))
	require.NoError(t, err)
	_, err = e.propose(pub, "m", map[string]any{"quorum": 3})
	errContains(t, err, "model m is proposed, not active")
	e.activeModel2("m")

	_, err = e.propose(prov1, "m", map[string]any{"quorum": 3})
	errContains(t, err, "access denied: only the publisher of model m or an admin of")
	_, err = e.propose(admin4, "m", map[string]any{"quorum": 3})
	errContains(t, err, "access denied")
	_, err = e.propose(pub, "nope", map[string]any{"quorum": 3})
	errContains(t, err, "model nope not found")
	bad := []struct {
		in   any
		want string
	}{
		{map[string]any{}, "give at least one of"},
		{map[string]any{"reason": "only words"}, "give at least one of"},
		{map[string]any{"quorum": 4}, "quorum: 4 is out of range [1, 3]"},
		{map[string]any{"quorum": 0}, "quorum: 0 is out of range"},
		{map[string]any{"acceptanceThreshold": 1.5}, "acceptanceThreshold: 1.5 is outside"},
		{map[string]any{"acceptanceThreshold": 1e13}, "acceptanceThreshold"},
		{map[string]any{"deadlineSeconds": 0}, "deadlineSeconds: 0 is out of range"},
		{map[string]any{"removeMember": com4.key()}, "is not on the committee"},
		{map[string]any{"removeMember": "bad"}, "removeMember"},
		{map[string]any{"addMember": seatOf(com1)}, "is already on the committee"},
		{map[string]any{"addMember": seatOf(nobody)}, "does not hold the committee role"},
		{map[string]any{"addMember": map[string]string{"member": com4.key()}}, "addMember.shardCid"},
		{map[string]any{"quorum": 2, "reason": "x\x00"}, "reason: contains a control character"},
		{map[string]any{"quorum": 2, "extra": 1}, `unknown field "extra"`},
		{map[string]any{"removeMember": com1.key(), "quorum": 3}, "quorum must stay within the committee size"},
	}
	for _, c := range bad {
		_, err := e.propose(pub, "m", c.in)
		errContains(t, err, c.want)
	}

	// Raise the quorum to 3: Org1 and Org2 admins approve (majority of 3).
	id, err := e.propose(admin3, "m", map[string]any{"quorum": 3, "reason": "more eyes"})
	require.NoError(t, err)
	ev := e.event()
	require.Equal(t, EvRuleChangeProposed, ev.Type)
	require.Equal(t, id, ev.ProposalID)
	require.Equal(t, int64(2), ev.Quorum)
	errContains(t, e.vote(prov1, id, "true"), "is not an org admin")
	errContains(t, e.vote(admin4, id, "true"), "org Org4MSP is not listed in the governance rule of model m")
	errContains(t, e.vote(admin1, id, "yes"), `approve: "yes"`)
	errContains(t, e.vote(admin1, "zz", "true"), "proposalId")
	errContains(t, e.vote(admin1, shaOf("none"), "true"), "not found")
	require.NoError(t, e.vote(admin1, id, "true"))
	ev = e.event()
	require.Equal(t, EvRuleChangeVoted, ev.Type)
	require.Equal(t, "Org1MSP", ev.Org)
	require.True(t, *ev.Approve)
	require.Equal(t, int64(1), ev.Count)
	// One org, one vote: a second admin of Org1 cannot vote again.
	admin1b := &fakeIdentity{msp: "Org1MSP", name: "Admin2@org1", ous: []string{"admin"}}
	errContains(t, e.vote(admin1b, id, "true"), "org Org1MSP has already voted")
	// Not applied without the policy being met.
	require.Equal(t, int64(2), e.model("m").Quorum)
	require.Equal(t, ChangeOpen, e.ruleChange(id).Status)
	require.NoError(t, e.vote(admin2, id, "true"))
	ev = e.event()
	require.Equal(t, EvRuleChangeApplied, ev.Type)
	require.Equal(t, int64(3), ev.Quorum)
	require.Equal(t, ChangeApplied, ev.Status)
	m := e.model("m")
	require.Equal(t, int64(3), m.Quorum)
	require.Equal(t, int64(1), m.RuleChanges)
	rc := e.ruleChange(id)
	require.Equal(t, ChangeApplied, rc.Status)
	require.Len(t, rc.Votes, 2)
	errContains(t, e.vote(admin3, id, "false"), "voting is closed")

	// The new quorum is in force: an update needs three verdicts.
	u, err := e.submit(prov1, "m", fedUpdate(1, "u1"))
	require.NoError(t, err)
	e.accept(u, 0.8)
	require.Equal(t, UpdatePending, e.update(u.ID).Status)

	// Rejected once the majority can no longer be reached.
	id2, err := e.propose(pub, "m", map[string]any{"acceptanceThreshold": 0.9})
	require.NoError(t, err)
	require.NoError(t, e.vote(admin1, id2, "false"))
	require.NoError(t, e.vote(admin3, id2, "false"))
	ev = e.event()
	require.Equal(t, EvRuleChangeRejected, ev.Type)
	require.Contains(t, ev.Reason, "can no longer be met")
	require.Equal(t, ChangeRejected, e.ruleChange(id2).Status)
	require.Equal(t, 0.5, *e.model("m").Acceptance.Threshold)

	// Membership: replace com3 by com4 and lower the quorum, atomically.
	id3, err := e.propose(admin2, "m", map[string]any{"removeMember": com3.key(), "addMember": seatOf(com4), "quorum": 2, "deadlineSeconds": 900, "acceptanceThreshold": 0.6})
	require.NoError(t, err)
	require.NoError(t, e.vote(admin2, id3, "true"))
	require.NoError(t, e.vote(admin3, id3, "true"))
	require.Equal(t, EvRuleChangeApplied, e.event().Type)
	m = e.model("m")
	require.Equal(t, []string{com1.key(), com2.key(), com4.key()}, committeeKeys(m))
	require.Equal(t, int64(900), m.RoundRules.DeadlineSeconds)
	require.Equal(t, 0.6, *m.Acceptance.Threshold)
	u2, err := e.submit(prov2, "m", fedUpdate(1, "u2"))
	require.NoError(t, err)
	errContains(t, e.verdict(com3, u2.ID, 0.8, true), "is not on the committee of model m")
	require.NoError(t, e.verdict(com4, u2.ID, 0.8, true))

	// A change valid when proposed but invalid when its policy is met is
	// rejected with the reason, and changes nothing.
	idA, err := e.propose(pub, "m", map[string]any{"removeMember": com1.key()})
	require.NoError(t, err)
	idB, err := e.propose(pub, "m", map[string]any{"removeMember": com2.key()})
	require.NoError(t, err)
	require.NoError(t, e.vote(admin1, idA, "true"))
	require.NoError(t, e.vote(admin2, idA, "true"))
	require.NoError(t, e.vote(admin1, idB, "true"))
	require.NoError(t, e.vote(admin2, idB, "true"))
	ev = e.event()
	require.Equal(t, EvRuleChangeRejected, ev.Type)
	require.Contains(t, ev.Reason, "no longer valid")
	require.Equal(t, []string{com2.key(), com4.key()}, committeeKeys(e.model("m")))

	var p struct {
		Items []RuleChange `json:"items"`
		Count int          `json:"count"`
	}
	require.NoError(t, e.query(nobody, &p, func(ctx ctxT) (string, error) { return e.cc.ListRuleChanges(ctx, "m", "", "") }))
	require.Equal(t, 5, p.Count)
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.ListRuleChanges(ctx, "B A D", "", "") }), "modelId")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetRuleChange(ctx, "bad") }), "proposalId")
	var hist []HistoryEntry
	require.NoError(t, e.query(nobody, &hist, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, "rulechange", id) }))
	require.Len(t, hist, 3) // proposed, two votes
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, "rulechange", "x") }), "id")

	// Policy "all": one rejection rejects; a finished model takes no votes.
	s := govSpec("a", PolicyAll)
	s.RoundRules.MaxRounds = 1
	e.activeModel(s)
	idC, err := e.propose(admin1, "a", map[string]any{"quorum": 3})
	require.NoError(t, err)
	require.NoError(t, e.vote(admin1, idC, "true"))
	require.NoError(t, e.vote(admin2, idC, "true"))
	require.Equal(t, EvRuleChangeVoted, e.event().Type) // 2 of 3 is not "all"
	idD, err := e.propose(admin1, "a", map[string]any{"quorum": 1})
	require.NoError(t, err)
	require.NoError(t, e.vote(admin2, idD, "false"))
	require.Equal(t, EvRuleChangeRejected, e.event().Type)
	e.l.now += 601
	require.NoError(t, e.closeRound(pub, "a", "1"))
	errContains(t, e.vote(admin3, idC, "true"), "model a is finished, not active")

	// Gossip models have no deadline; threshold needs rule threshold.
	g := gossipSpec("g")
	g.Governance = &GovernanceRule{Policy: PolicyMajority, Orgs: []string{"Org1MSP"}}
	g.Acceptance = Acceptance{Rule: RuleMajority, ScoreMax: 1}
	e.activeModel(g)
	_, err = e.propose(pub, "g", map[string]any{"deadlineSeconds": 10})
	errContains(t, err, "gossip mode")
	_, err = e.propose(pub, "g", map[string]any{"acceptanceThreshold": 0.5})
	errContains(t, err, "uses rule majority, not threshold")
}

func TestRotation(t *testing.T) { bothModes(t, rotation) }

func rotation(t *testing.T, e *env) {
	e.setupRoles()
	for _, c := range []*fakeIdentity{candA, candB, candC} {
		e.grant(c, RoleProvider, RoleCommittee)
	}
	s := spec("m")
	s.RoundRules = RoundRules{MinAccepted: 3, DeadlineSeconds: 600, MaxRounds: 4}
	s.Rotation = &RotationRule{Size: 2, Candidates: []CommitteeSeat{seatOf(candC), seatOf(candB), seatOf(candA)}}
	s.Governance = &GovernanceRule{Policy: PolicyMajority, Orgs: []string{"Org1MSP"}}
	e.activeModel(s)
	_, err := e.propose(pub, "m", map[string]any{"quorum": 3})
	errContains(t, err, "quorum: 3 is above rotation.size 2")

	// Round 1: candA 0.9, candB 0.7, candC 0.6, all accepted.
	for i, c := range []struct {
		who   *fakeIdentity
		score float64
	}{{candA, 0.9}, {candB, 0.7}, {candC, 0.6}} {
		u, err := e.submit(c.who, "m", fedUpdate(1, fmt.Sprint("r1-", i)))
		require.NoError(t, err)
		e.accept(u, c.score)
	}
	require.NoError(t, e.closeRound(pub, "m", "1"))
	require.NoError(t, e.recordAgg(pub, "m", "1", "agg1"))
	require.NoError(t, e.confirmAgg(com1, "m", "1", "agg1", 0.8))
	require.NoError(t, e.confirmAgg(com2, "m", "1", "agg1", 0.8))
	ev := e.event()
	require.Equal(t, EvRoundOpened, ev.Type)
	want := []string{candA.key(), candB.key()}
	require.Equal(t, want, ev.Committee)
	require.Equal(t, want, committeeKeys(e.model("m")))
	require.Equal(t, seatOf(candA), e.model("m").Committee[0]) // shard from the candidate list
	var rot Rotation
	require.NoError(t, e.query(nobody, &rot, func(ctx ctxT) (string, error) { return e.cc.GetRotation(ctx, "m", "2") }))
	require.Equal(t, int64(1), rot.FromRound)
	require.Equal(t, []string{com1.key(), com2.key(), com3.key()}, rot.Previous)
	require.Len(t, rot.Ranking, 3)
	require.Equal(t, candC.key(), rot.Ranking[2].Member)
	require.False(t, rot.Kept)

	// The old committee is out; the new one judges round 2.
	u, err := e.submit(candC, "m", onGlobal(2, "r2c", "agg1"))
	require.NoError(t, err)
	errContains(t, e.verdict(com1, u.ID, 0.8, true), "not on the committee")
	e.accept(u, 0.8, candA, candB)
	// Only candC scored: the second seat is filled from the current committee in order.
	e.finishRound("m", 2, "agg2", 0.85, candA, candB)
	require.Equal(t, []string{candC.key(), candA.key()}, e.event().Committee)

	// Round 3: no candidate scored (prov1 is not a candidate) and candC has
	// lost the committee role by rotation time: only candA is left, 1 <
	// quorum 2, so the committee is kept.
	u, err = e.submit(prov1, "m", onGlobal(3, "r3", "agg2"))
	require.NoError(t, err)
	e.accept(u, 0.8, candC, candA)
	e.l.now += 601
	require.NoError(t, e.closeRound(pub, "m", "3"))
	require.NoError(t, e.recordAgg(pub, "m", "3", "agg3"))
	require.NoError(t, e.confirmAgg(candC, "m", "3", "agg3", 0.9))
	require.NoError(t, e.tx(admin2, func(ctx ctxT) error { return e.cc.RevokeRole(ctx, candC.key(), RoleCommittee) }))
	require.NoError(t, e.confirmAgg(candA, "m", "3", "agg3", 0.9))
	ev = e.event()
	require.Equal(t, EvRoundOpened, ev.Type)
	require.NoError(t, e.query(nobody, &rot, func(ctx ctxT) (string, error) { return e.cc.GetRotation(ctx, "m", "4") }))
	require.True(t, rot.Kept)
	require.Equal(t, []string{candC.key(), candA.key()}, rot.Committee)
	require.Empty(t, rot.Ranking)

	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetRotation(ctx, "m", "1") }), "no rotation recorded")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetRotation(ctx, "B A D", "1") }), "modelId")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetRotation(ctx, "m", "x") }), "round")
}

// Members vote while providers register (every RegisterData reads the model
// record): a vote that decides nothing writes only its own vote record, so it
// invalidates no registration of its block; only the deciding vote, which
// activates the model, rewrites the record. Readers still see the running
// counts, derived from the vote records.
func TestUndecidedVotesLeaveRegistrationsValid(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	s := spec("m")
	s.Quorum = 3
	_, err := e.publish(s)
	require.NoError(t, err)
	_, err = e.registerData(prov1, "m", dataIn(10))
	require.NoError(t, err)
	registration := e.l.lastRWSet()

	require.NoError(t, e.approve(com1, "m", "0.4"))
	first := e.l.lastRWSet()
	require.NoError(t, e.approve(com2, "m", "0.5"))
	second := e.l.lastRWSet()
	require.Empty(t, registration.conflicts(first))
	require.Empty(t, registration.conflicts(second))
	require.NotEmpty(t, first.conflicts(second), "votes still see each other (the range of vote records)")

	m := e.model("m")
	require.Equal(t, ModelProposed, m.Status)
	require.Equal(t, [2]int64{2, 0}, [2]int64{m.Approvals, m.Rejections})
	var page struct{ Items []Model }
	require.NoError(t, e.query(nobody, &page, func(ctx ctxT) (string, error) { return e.cc.ListModels(ctx, "", "") }))
	require.Len(t, page.Items, 1)
	require.Equal(t, [2]int64{2, 0}, [2]int64{page.Items[0].Approvals, page.Items[0].Rejections})

	require.NoError(t, e.tx(com3, func(ctx ctxT) error { return e.cc.RejectModel(ctx, "m", "shard mismatch") }))
	require.NotEmpty(t, registration.conflicts(e.l.lastRWSet()), "the deciding vote rewrites the model record")
	m = e.model("m")
	require.Equal(t, ModelRejected, m.Status, "quorum 3 of 3 with one rejection cannot approve")
	require.Equal(t, [2]int64{2, 1}, [2]int64{m.Approvals, m.Rejections})
}
