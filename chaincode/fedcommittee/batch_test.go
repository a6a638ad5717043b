package fedcommittee

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type bv = map[string]any

func (e *env) verdicts(who *fakeIdentity, items ...bv) (*BatchVerdictResult, error) {
	var res *BatchVerdictResult
	err := e.tx(who, func(ctx ctxT) error {
		var err error
		res, err = e.cc.SubmitVerdicts(ctx, mustJSON(map[string]any{"verdicts": items}))
		return err
	})
	return res, err
}

func verdictOn(id string, score float64, accept bool) bv {
	return bv{"updateId": id, "score": score, "accept": accept}
}

func TestSubmitVerdictsBatch(t *testing.T) { bothModes(t, submitVerdictsBatch) }

func submitVerdictsBatch(t *testing.T, e *env) {
	e.setupRoles()
	e.activeModel(spec("m"))
	u1, err := e.submit(prov1, "m", fedUpdate(1, "u1"))
	require.NoError(t, err)
	u2, err := e.submit(prov2, "m", fedUpdate(1, "u2"))
	require.NoError(t, err)
	u3, err := e.submit(prov3, "m", fedUpdate(1, "u3"))
	require.NoError(t, err)

	// One member judges the whole round in one transaction.
	res, err := e.verdicts(com1, verdictOn(u1.ID, 0.9, true), verdictOn(u2.ID, 0.2, false), verdictOn(u3.ID, 0.7, true))
	require.NoError(t, err)
	require.Equal(t, []string{u1.ID, u2.ID, u3.ID}, res.Recorded)
	require.Empty(t, res.Skipped)
	ev := e.event()
	require.Equal(t, EvVerdictsSubmitted, ev.Type)
	require.Equal(t, "m", ev.ModelID)
	require.Equal(t, int64(3), ev.Count)
	require.Equal(t, int64(1), ev.Round)
	require.Empty(t, ev.Finalized) // quorum is 2: nothing final yet
	// The member is credited once per verdict (its account is updated three times in one transaction).
	a := e.account(com1)
	require.Equal(t, int64(3), a.Verdicts)
	require.Equal(t, int64(3), a.Rewards)
	require.Equal(t, int64(1), e.update(u1.ID).VerdictCount)

	// A second member's batch reaches quorum on all three, exactly as three SubmitVerdict calls would.
	res, err = e.verdicts(com2, verdictOn(u1.ID, 0.7, true), verdictOn(u2.ID, 0.4, false), verdictOn(u3.ID, 0.5, true))
	require.NoError(t, err)
	require.Len(t, res.Recorded, 3)
	ev = e.event()
	require.Equal(t, []string{u1.ID, u2.ID, u3.ID}, ev.Finalized)
	require.Equal(t, UpdateAccepted, e.update(u1.ID).Status)
	require.InDelta(t, 0.8, *e.update(u1.ID).MedianScore, 1e-12)
	require.Equal(t, UpdateRejected, e.update(u2.ID).Status)
	require.Equal(t, UpdateAccepted, e.update(u3.ID).Status)
	require.Equal(t, int64(3), e.account(com2).Verdicts)
	require.Equal(t, int64(1), e.account(prov1).Accepted)
	require.Equal(t, int64(1), e.account(prov2).Rejected)
	require.Equal(t, int64(3), e.account(prov2).Penalties)
	// The round can close: two accepted.
	require.NoError(t, e.closeRound(prov1, "m", "1"))

	// Too late: every verdict lost its race, so the batch is skipped whole, with the reasons.
	before := e.account(com3)
	res, err = e.verdicts(com3, verdictOn(u1.ID, 0.9, true), verdictOn(u2.ID, 0.9, true))
	require.NoError(t, err)
	require.Empty(t, res.Recorded)
	require.Len(t, res.Skipped, 2)
	require.Contains(t, res.Skipped[0].Reason, "not pending: verdicts are closed")
	require.Equal(t, before, e.account(com3))
}

func TestSubmitVerdictsSkipsOnlyTheLateOnes(t *testing.T) { bothModes(t, submitVerdictsSkipsLate) }

func submitVerdictsSkipsLate(t *testing.T, e *env) {
	e.setupRoles()
	e.activeModel(spec("m"))
	u1, err := e.submit(prov1, "m", fedUpdate(1, "u1"))
	require.NoError(t, err)
	u2, err := e.submit(prov2, "m", fedUpdate(1, "u2"))
	require.NoError(t, err)
	require.NoError(t, e.verdict(com1, u1.ID, 0.9, true))
	require.NoError(t, e.verdict(com2, u1.ID, 0.9, true)) // u1 final before com3's batch lands
	require.NoError(t, e.verdict(com3, u2.ID, 0.6, true)) // and com3 already judged u2 alone
	u3, err := e.submit(prov3, "m", fedUpdate(1, "u3"))
	require.NoError(t, err)
	res, err := e.verdicts(com3, verdictOn(u1.ID, 0.1, false), verdictOn(u2.ID, 0.6, true), verdictOn(u3.ID, 0.6, true))
	require.NoError(t, err)
	require.Equal(t, []string{u3.ID}, res.Recorded)
	require.Equal(t, []string{u1.ID, u2.ID}, []string{res.Skipped[0].UpdateID, res.Skipped[1].UpdateID})
	require.Contains(t, res.Skipped[1].Reason, "has already submitted a verdict on update "+u2.ID)
	require.Equal(t, UpdateAccepted, e.update(u1.ID).Status) // the late reject changed nothing
	require.Equal(t, int64(1), e.update(u3.ID).VerdictCount)
	require.Equal(t, int64(2), e.account(com3).Verdicts)
}

func TestSubmitVerdictsRefusesBadBatchesWhole(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	e.activeModel(spec("m"))
	e.activeModel(spec("m2"))
	u1, err := e.submit(prov1, "m", fedUpdate(1, "u1"))
	require.NoError(t, err)
	u2, err := e.submit(prov2, "m", fedUpdate(1, "u2"))
	require.NoError(t, err)
	other, err := e.submit(prov2, "m2", fedUpdate(1, "x1"))
	require.NoError(t, err)
	zero := strings.Repeat("0", 64)
	many := make([]bv, maxBatchVerdicts+1)
	for i := range many {
		many[i] = verdictOn(u1.ID, 0.5, true)
	}
	cases := []struct {
		name  string
		who   *fakeIdentity
		items []bv
		want  string
	}{
		{"empty", com1, []bv{}, "verdicts: need 1 to 256, got 0"},
		{"too many", com1, many, "verdicts: need 1 to 256, got 257"},
		{"twice", com1, []bv{verdictOn(u1.ID, 0.5, true), verdictOn(u1.ID, 0.6, true)}, "verdicts[1]: update " + u1.ID + " appears twice"},
		{"unknown update", com1, []bv{verdictOn(u1.ID, 0.5, true), verdictOn(zero, 0.5, true)}, "verdicts[1]: update " + zero + " not found"},
		{"bad id", com1, []bv{verdictOn("nope", 0.5, true)}, "verdicts[0]: updateId"},
		{"score missing", com1, []bv{verdictOn(u1.ID, 0.5, true), {"updateId": u2.ID, "accept": true}}, "verdicts[1]: score: required"},
		{"score out of range", com1, []bv{verdictOn(u2.ID, 7, true)}, "verdicts[0]: score"},
		{"two models", com1, []bv{verdictOn(u1.ID, 0.5, true), verdictOn(other.ID, 0.5, true)}, "one model per batch"},
		{"not a member", prov3, []bv{verdictOn(u1.ID, 0.5, true)}, "access denied: caller " + prov3.key() + " is not on the committee of model m (verdicts[0])"},
		{"publisher", pub, []bv{verdictOn(u1.ID, 0.5, true)}, "access denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.update(u1.ID)
			_, err := e.verdicts(c.who, c.items...)
			errContains(t, err, c.want)
			require.Equal(t, before, e.update(u1.ID)) // (e.tx also fails the test on any write)
		})
	}
	// Unknown fields and trailing data are refused like everywhere else.
	err = e.tx(com1, func(ctx ctxT) error {
		_, err := e.cc.SubmitVerdicts(ctx, `{"verdicts": [], "extra": 1}`)
		return err
	})
	errContains(t, err, "extra")
	err = e.tx(com1, func(ctx ctxT) error {
		_, err := e.cc.SubmitVerdicts(ctx, `{"verdicts": []}{}`)
		return err
	})
	errContains(t, err, "trailing data")
}
