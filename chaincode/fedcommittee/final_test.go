package fedcommittee

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// finalEnv is an active gossip model with two accepted updates, a
// rejected one and a pending one.
type finalEnv struct {
	*env
	a, b, rejected *Update
}

func newFinalEnv(t *testing.T, e *env) *finalEnv {
	e.setupRoles()
	e.activeModel(gossipSpec("g"))
	judged := func(who *fakeIdentity, name string, score float64) *Update {
		u, err := e.submit(who, "g", gossipUpdate(name))
		require.NoError(t, err)
		require.NoError(t, e.verdict(com1, u.ID, score, score >= 0.5))
		require.NoError(t, e.verdict(com2, u.ID, score, score >= 0.5))
		return u
	}
	f := &finalEnv{env: e}
	f.a, f.b, f.rejected = judged(prov1, "a", 0.9), judged(prov2, "b", 0.9), judged(prov3, "r", 0.1)
	require.Equal(t, UpdateRejected, e.update(f.rejected.ID).Status)
	return f
}

func (f *finalEnv) propose(who *fakeIdentity, model string, mix, candidates []string, obj string) error {
	in := mustJSON(map[string]any{"mix": mix, "cid": cidOf(obj), "sha256": shaOf(obj), "candidates": candidates})
	return f.tx(who, func(ctx ctxT) error { return f.cc.ProposeFinal(ctx, model, in) })
}

func (f *finalEnv) judge(who *fakeIdentity, model string, qualities ...float64) error {
	in := mustJSON(map[string]any{"qualities": qualities})
	return f.tx(who, func(ctx ctxT) error { return f.cc.JudgeFinal(ctx, model, in) })
}

func TestProposeFinalRefusals(t *testing.T) { bothModes(t, proposeFinalRefusals) }

// proposeFinalRefusals: only the publisher proposes, once, accepted updates
// of its own active gossip model with none pending; a refusal writes nothing.
func proposeFinalRefusals(t *testing.T, e *env) {
	f := newFinalEnv(t, e)
	a, b := f.a.ID, f.b.ID
	pending, err := f.submit(prov3, "g", gossipUpdate("p"))
	require.NoError(t, err)
	errContains(t, f.propose(prov1, "g", []string{a}, nil, "m"), "only the publisher of model g")
	errContains(t, f.propose(pub, "g", nil, nil, "m"), "mix: need 1 to 256 updates, got 0")
	errContains(t, f.propose(pub, "g", []string{a, a}, nil, "m"), "mix[1]: "+a+" is listed twice")
	errContains(t, f.propose(pub, "g", []string{"bad"}, nil, "m"), "mix[0]")
	errContains(t, f.propose(pub, "g", []string{a}, []string{b, b}, "m"), "candidates[1]: "+b+" is listed twice")
	errContains(t, f.propose(pub, "g", []string{a}, nil, "m"),
		"update "+pending.ID+" of model g is pending: propose the final model once every update is judged")
	require.NoError(t, f.verdict(com1, pending.ID, 0.9, true))
	require.NoError(t, f.verdict(com2, pending.ID, 0.9, true))
	pendingNow, err := f.submit(prov1, "g", gossipUpdate("p2"))
	require.NoError(t, err)
	errContains(t, f.propose(pub, "g", []string{a}, nil, "m"), "update "+pendingNow.ID+" of model g is pending")
	require.NoError(t, f.verdict(com1, pendingNow.ID, 0.1, false))
	require.NoError(t, f.verdict(com3, pendingNow.ID, 0.1, false))
	errContains(t, f.propose(pub, "g", []string{a, pendingNow.ID}, nil, "m"),
		"mix[1]: update "+pendingNow.ID+" is not an accepted update of model g")
	errContains(t, f.propose(pub, "g", []string{a}, []string{f.rejected.ID}, "m"),
		"candidates[0]: update "+f.rejected.ID+" is not an accepted update of model g")
	errContains(t, f.propose(pub, "g", []string{a, shaOf("none")}, nil, "m"), "not found")
	errContains(t, f.tx(pub, func(ctx ctxT) error {
		return f.cc.ProposeFinal(ctx, "g", `{"mix":["`+a+`"],"cid":"QmTooShort","sha256":"`+shaOf("m")+`","candidates":[]}`)
	}), "mix.cid")
	errContains(t, f.judge(com1, "g", 0.5), "model g has no proposed final model to judge")
	require.Nil(t, f.model("g").FinalProposal) // nothing written by a refusal

	require.NoError(t, f.propose(pub, "g", []string{a, b}, []string{b, a}, "mean"))
	ev := f.event()
	require.Equal(t, EvFinalProposed, ev.Type)
	require.Equal(t, []string{a, b}, ev.Parents)
	require.Equal(t, int64(2), ev.Count)
	require.Equal(t, ModelActive, f.model("g").Status)
	errContains(t, f.propose(pub, "g", []string{a}, nil, "m"), "model g is finishing")
	_, err = f.submit(prov2, "g", gossipUpdate("late"))
	errContains(t, err, "model g is finishing")
	errContains(t, f.tx(pub, func(ctx ctxT) error { return f.cc.FinishModel(ctx, "g", a) }), "model g is finishing")

	e.activeModel(spec("fed"))
	errContains(t, f.propose(pub, "fed", []string{a}, nil, "m"), "model fed is federated")
	errContains(t, f.judge(com1, "fed", 0.5), "model fed is federated")
}

func TestJudgeFinal(t *testing.T) { bothModes(t, judgeFinal) }

// judgeFinal: members judge once each, one quality per entry in [0, 1]; the
// quorum's medians pick the final model, the mix on a tie.
func judgeFinal(t *testing.T, e *env) {
	f := newFinalEnv(t, e)
	a, b := f.a.ID, f.b.ID
	require.NoError(t, f.propose(pub, "g", []string{a, b}, []string{a, b}, "mean"))
	errContains(t, f.judge(pub, "g", 0.5, 0.5, 0.5), "is not on the committee of model g")
	errContains(t, f.judge(com1, "g", 0.5, 0.5), "qualities: need 3 (the mix, then 2 candidates), got 2")
	errContains(t, f.judge(com1, "g", 0.5, 1.5, 0.5), "qualities[1]: 1.5 is outside [0, 1]")
	errContains(t, f.judge(com1, "g"), "qualities: required")
	require.Empty(t, f.model("g").FinalProposal.Judgments)

	require.NoError(t, f.judge(com1, "g", 0.60, 0.70, 0.50))
	ev := f.event()
	require.Equal(t, EvFinalJudged, ev.Type)
	require.Equal(t, int64(1), ev.Count)
	errContains(t, f.judge(com1, "g", 0.60, 0.70, 0.50), "member "+com1.key()+" has already judged")
	require.Equal(t, ModelActive, f.model("g").Status)

	// Quorum 2: medians 0.62, 0.65, 0.50: candidate a wins.
	require.NoError(t, f.judge(com2, "g", 0.64, 0.60, 0.50))
	ev = f.event()
	require.Equal(t, EvModelFinished, ev.Type)
	require.Equal(t, a, ev.UpdateID)
	m := f.model("g")
	require.Equal(t, ModelFinished, m.Status)
	require.Equal(t, a, m.FinalUpdate)
	require.Empty(t, m.FinalMix)
	require.Equal(t, &ObjectRef{CID: f.a.CID, SHA256: f.a.SHA256}, m.Final)
	require.InDeltaSlice(t, []float64{0.62, 0.65, 0.50}, m.FinalProposal.Medians, 1e-12)
	require.Len(t, m.FinalProposal.Judgments, 2)
	errContains(t, f.judge(com3, "g", 0.5, 0.5, 0.5), "model g is finished, not active")
}

func TestJudgeFinalTieGoesToTheMix(t *testing.T) { bothModes(t, judgeFinalTie) }

func judgeFinalTie(t *testing.T, e *env) {
	f := newFinalEnv(t, e)
	a, b := f.a.ID, f.b.ID
	require.NoError(t, f.propose(pub, "g", []string{a, b}, []string{b}, "mean"))
	require.NoError(t, f.judge(com3, "g", 0.7, 0.7))
	require.NoError(t, f.judge(com2, "g", 0.6, 0.6))
	ev := f.event()
	require.Equal(t, EvModelFinished, ev.Type)
	require.Equal(t, []string{a, b}, ev.Parents)
	m := f.model("g")
	require.Equal(t, []string{a, b}, m.FinalMix)
	require.Empty(t, m.FinalUpdate)
	require.Equal(t, &ObjectRef{CID: cidOf("mean"), SHA256: shaOf("mean")}, m.Final)
}
