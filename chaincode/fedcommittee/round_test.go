package fedcommittee

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/queryresult"
	"github.com/stretchr/testify/require"
)

func (e *env) closeRound(who *fakeIdentity, model, round string) error {
	return e.tx(who, func(ctx ctxT) error { return e.cc.CloseRound(ctx, model, round) })
}

func (e *env) recordAgg(who *fakeIdentity, model, round, name string) error {
	return e.tx(who, func(ctx ctxT) error {
		return e.cc.RecordAggregate(ctx, model, round, mustJSON(map[string]string{"cid": cidOf(name), "sha256": shaOf(name)}))
	})
}

func (e *env) closeWithAgg(who *fakeIdentity, model, round, name string, accepted []string) error {
	return e.tx(who, func(ctx ctxT) error {
		return e.cc.CloseRoundWithAggregate(ctx, model, round,
			mustJSON(map[string]any{"cid": cidOf(name), "sha256": shaOf(name), "acceptedSha256": acceptedDigest(accepted)}))
	})
}

// The agents compute the same digest (fedcommittee/ledger/contract.py): both tests pin this value.
func TestAcceptedDigestKnownAnswer(t *testing.T) {
	require.Equal(t, "9817499bfd92d44502b30a383f35ffa91dd38283d3f4dcc2354bb2a945152878", acceptedDigest([]string{"u1", "u2"}))
}

func (e *env) confirmAgg(who *fakeIdentity, model, round, name string, score float64) error {
	return e.tx(who, func(ctx ctxT) error {
		return e.cc.ConfirmAggregate(ctx, model, round, mustJSON(map[string]any{"sha256": shaOf(name), "score": score}))
	})
}

func TestFederatedFullFlow(t *testing.T) { bothModes(t, federatedFullFlow) }

func federatedFullFlow(t *testing.T, e *env) {
	e.setupRoles()
	e.activeModel(spec("m"))

	// Round 1: three providers submit.
	u1, err := e.submit(prov1, "m", fedUpdate(1, "u1"))
	require.NoError(t, err)
	ev := e.event()
	require.Equal(t, EvUpdateSubmitted, ev.Type)
	require.Equal(t, u1.ID, ev.UpdateID)
	require.Equal(t, int64(1), ev.Round)
	require.Equal(t, prov1.key(), ev.Provider)
	require.Equal(t, shaOf("u1"), ev.SHA256)
	require.Equal(t, UpdatePending, u1.Status)
	require.Equal(t, e.l.txSeq, e.l.txSeq) // ids are tx ids
	u2, err := e.submit(prov2, "m", fedUpdate(1, "u2"))
	require.NoError(t, err)
	u3, err := e.submit(prov3, "m", fedUpdate(1, "u3"))
	require.NoError(t, err)

	// Round cannot close before any acceptance or the deadline.
	errContains(t, e.closeRound(prov1, "m", "1"), "cannot close yet: 0 of 2 required updates accepted, an expected provider's update still missing or pending, and deadline")

	// u1 accepted (median 0.8), u2 rejected (median 0.3: a free rider), u3 accepted.
	require.NoError(t, e.verdict(com1, u1.ID, 0.9, true))
	ev = e.event()
	require.Equal(t, EvVerdictSubmitted, ev.Type)
	require.Equal(t, int64(1), ev.Count)
	require.NoError(t, e.verdict(com2, u1.ID, 0.7, true))
	ev = e.event()
	require.Equal(t, EvUpdateFinalized, ev.Type)
	require.Equal(t, UpdateAccepted, ev.Status)
	require.InDelta(t, 0.8, *ev.Score, 1e-12)
	require.Equal(t, int64(10), ev.Reward)
	errContains(t, e.verdict(com3, u1.ID, 0.9, true), "not pending: verdicts are closed")

	require.NoError(t, e.verdict(com1, u2.ID, 0.2, false))
	require.NoError(t, e.verdict(com3, u2.ID, 0.4, false))
	ev = e.event()
	require.Equal(t, UpdateRejected, ev.Status)
	require.Equal(t, int64(3), ev.Penalty)

	errContains(t, e.closeRound(prov1, "m", "1"), "1 of 2 required updates accepted")

	require.NoError(t, e.verdict(com2, u3.ID, 0.6, true))
	require.NoError(t, e.verdict(com3, u3.ID, 0.5, true))

	// Aggregates cannot be recorded for an open round.
	errContains(t, e.recordAgg(prov1, "m", "1", "agg1"), "is open, not closed")

	require.NoError(t, e.closeRound(nobody.withRole(e, RoleProvider), "m", "1"))
	ev = e.event()
	require.Equal(t, EvRoundClosed, ev.Type)
	want := []string{u1.ID, u3.ID}
	slices.Sort(want)
	require.Equal(t, want, ev.Accepted)
	r := e.round("m", "1")
	require.Equal(t, RoundClosed, r.Status)
	require.Equal(t, want, r.Accepted)
	require.Equal(t, int64(200), r.TotalSamples)
	errContains(t, e.closeRound(prov1, "m", "1"), "is closed, not open")

	// Late update to a closed round.
	_, err = e.submit(prov1, "m", fedUpdate(1, "late"))
	errContains(t, err, "round 1 of model m is closed: updates are closed")
	// Confirm before any aggregate is recorded.
	errContains(t, e.confirmAgg(com1, "m", "1", "agg1", 0.8), CodeNotFound+": no aggregate with sha256")

	// A bad aggregator records a wrong aggregate; an honest one the right one.
	require.NoError(t, e.recordAgg(prov2, "m", "1", "evil"))
	ev = e.event()
	require.Equal(t, EvAggregateRecorded, ev.Type)
	require.Equal(t, want, ev.Accepted)
	require.NoError(t, e.recordAgg(pub, "m", "1", "agg1"))
	errContains(t, e.recordAgg(com1, "m", "1", "agg1"), "already recorded")

	// The committee confirms only the correct one. The evil one has one vote.
	require.NoError(t, e.confirmAgg(com3, "m", "1", "evil", 0.1))
	require.NoError(t, e.confirmAgg(com1, "m", "1", "agg1", 0.8))
	ev = e.event()
	require.Equal(t, EvAggregateConfirmed, ev.Type)
	require.Equal(t, int64(1), ev.Count)
	require.Equal(t, RoundClosed, e.round("m", "1").Status) // not yet the global model
	errContains(t, e.confirmAgg(com1, "m", "1", "agg1", 0.8), "already confirmed an aggregate for round 1")
	errContains(t, e.confirmAgg(prov1, "m", "1", "agg1", 0.8), "not on the committee")
	errContains(t, e.confirmAgg(com2, "m", "1", "agg1", 7), "outside the model's score range")
	require.NoError(t, e.confirmAgg(com2, "m", "1", "agg1", 0.9))
	ev = e.event()
	require.Equal(t, EvRoundOpened, ev.Type)
	require.Equal(t, int64(2), ev.Round)
	require.Equal(t, int64(1), ev.PreviousRound)
	require.Equal(t, cidOf("agg1"), ev.CID)
	require.Equal(t, shaOf("agg1"), ev.SHA256)
	require.InDelta(t, 0.85, *ev.Score, 1e-12)

	r = e.round("m", "1")
	require.Equal(t, RoundDone, r.Status)
	require.Equal(t, shaOf("agg1"), r.Aggregate.SHA256)
	require.Equal(t, pub.key(), r.AggregateBy)
	r2 := e.round("m", "2")
	require.Equal(t, RoundOpen, r2.Status)
	require.Equal(t, shaOf("agg1"), r2.Global.SHA256)
	m := e.model("m")
	require.Equal(t, int64(2), m.CurrentRound)
	require.Equal(t, shaOf("agg1"), m.Global.SHA256)

	var aggs []AggregateCandidate
	require.NoError(t, e.query(nobody, &aggs, func(ctx ctxT) (string, error) { return e.cc.GetAggregates(ctx, "m", "1") }))
	require.Len(t, aggs, 2)

	// Round 2: updates must start from the new global model.
	in := fedUpdate(2, "r2u1")
	_, err = e.submit(prov1, "m", in)
	errContains(t, err, "must start from the global model of round 2")
	in["baseCid"], in["baseSha256"] = cidOf("agg1"), shaOf("agg1")
	_, err = e.submit(prov1, "m", fedUpdate(1, "old"))
	errContains(t, err, "round: 1 is not the open round of model m (current round 2)")
	v1, err := e.submit(prov1, "m", in)
	require.NoError(t, err)
	in2 := fedUpdate(2, "r2u1b")
	in2["baseCid"], in2["baseSha256"] = cidOf("agg1"), shaOf("agg1")
	_, err = e.submit(prov1, "m", in2)
	errContains(t, err, "already submitted an update to round 2")
	require.NoError(t, e.verdict(com1, v1.ID, 0.9, true))
	require.NoError(t, e.verdict(com2, v1.ID, 0.9, true))

	// Deadline passes with 1 of 2 accepted: the round may close.
	e.l.now += 601
	in3 := fedUpdate(2, "tooLate")
	in3["baseCid"], in3["baseSha256"] = cidOf("agg1"), shaOf("agg1")
	_, err = e.submit(prov2, "m", in3)
	errContains(t, err, "deadline")
	require.NoError(t, e.closeRound(com1, "m", "2"))
	require.NoError(t, e.recordAgg(prov1, "m", "2", "agg2"))
	require.NoError(t, e.confirmAgg(com1, "m", "2", "agg2", 0.9))
	require.NoError(t, e.confirmAgg(com3, "m", "2", "agg2", 0.92))
	ev = e.event()
	require.Equal(t, EvModelFinished, ev.Type)
	require.Equal(t, cidOf("agg2"), ev.CID)
	m = e.model("m")
	require.Equal(t, ModelFinished, m.Status)
	require.Equal(t, shaOf("agg2"), m.Final.SHA256)

	_, err = e.submit(prov2, "m", in3)
	errContains(t, err, "model m is finished, not active")
	errContains(t, e.closeRound(com1, "m", "2"), "model m is finished, not active")

	// Rewards and reputation.
	var lb []RewardEntry
	require.NoError(t, e.query(nobody, &lb, func(ctx ctxT) (string, error) { return e.cc.GetLeaderboard(ctx, "m") }))
	require.Equal(t, prov1.key(), lb[0].Identity)
	require.Equal(t, int64(20), lb[0].Net)
	require.Equal(t, int64(2), lb[0].Accepted)
	for i := 1; i < len(lb); i++ {
		require.GreaterOrEqual(t, lb[i-1].Net, lb[i].Net)
	}
	// The paged listing holds the same entries, in identity order.
	var paged []RewardEntry
	for bookmark := ""; ; {
		var p struct {
			Items    []RewardEntry `json:"items"`
			Bookmark string        `json:"bookmark"`
		}
		require.NoError(t, e.query(nobody, &p, func(ctx ctxT) (string, error) { return e.cc.ListRewards(ctx, "m", "2", bookmark) }))
		require.LessOrEqual(t, len(p.Items), 2)
		paged, bookmark = append(paged, p.Items...), p.Bookmark
		if bookmark == "" {
			break
		}
	}
	require.ElementsMatch(t, lb, paged)
	require.Greater(t, len(paged), 2)
	require.True(t, slices.IsSortedFunc(paged, func(a, b RewardEntry) int { return strings.Compare(a.Identity, b.Identity) }))
	a := e.account(prov2)
	require.Equal(t, int64(3), a.Penalties)
	require.Equal(t, int64(1), a.Rejected)
	require.InDelta(t, 1.0/3.0, a.Reputation, 1e-12)
	a = e.account(com1)
	require.Equal(t, int64(3), a.Verdicts)
	require.Equal(t, int64(3), a.Rewards)

	var hist []HistoryEntry
	require.NoError(t, e.query(nobody, &hist, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, "round", "m:1") }))
	require.Len(t, hist, 5) // opened, closed, two candidates, confirmed
	// Oldest first: the round as opened, then as it ended.
	var first, last Round
	require.NoError(t, json.Unmarshal(hist[0].Value, &first))
	require.NoError(t, json.Unmarshal(hist[4].Value, &last))
	require.Equal(t, RoundOpen, first.Status)
	require.Equal(t, RoundDone, last.Status)
	require.NoError(t, e.query(nobody, &hist, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, "update", u1.ID) }))
	require.Len(t, hist, 3)
}

// withRole grants role to a fresh identity and returns it.
func (f *fakeIdentity) withRole(e *env, role string) *fakeIdentity {
	id := &fakeIdentity{msp: f.msp, name: f.name + "-" + role, ous: f.ous}
	e.grant(id, role)
	return id
}

func TestRoundSkippedAndFinished(t *testing.T) { bothModes(t, roundSkippedAndFinished) }

func roundSkippedAndFinished(t *testing.T, e *env) {
	e.setupRoles()
	s := spec("m")
	s.RoundRules.MaxRounds = 2
	e.activeModel(s)
	errContains(t, e.closeRound(nobody, "m", "1"), "neither the publisher")
	e.l.now += 600 // deadline reached exactly
	require.NoError(t, e.closeRound(pub, "m", "1"))
	ev := e.event()
	require.Equal(t, EvRoundOpened, ev.Type)
	require.Equal(t, int64(2), ev.Round)
	require.Equal(t, shaOf("w0"), ev.SHA256) // global carried over
	require.Equal(t, RoundSkipped, e.round("m", "1").Status)
	e.l.now += 600
	require.NoError(t, e.closeRound(pub, "m", "2"))
	ev = e.event()
	require.Equal(t, EvModelFinished, ev.Type)
	require.Equal(t, shaOf("w0"), ev.SHA256)
}

func TestRoundArgumentErrors(t *testing.T) { bothModes(t, roundArgumentErrors) }

func roundArgumentErrors(t *testing.T, e *env) {
	e.setupRoles()
	e.activeModel(spec("m"))
	g := gossipSpec("g")
	e.activeModel(g)
	errContains(t, e.closeRound(pub, "m", "x"), `round: "x" is not a round number`)
	errContains(t, e.closeRound(pub, "m", "0"), "is not a round number")
	errContains(t, e.closeRound(pub, "m", "7"), "round 7 of model m not found")
	errContains(t, e.closeRound(pub, "g", "1"), "gossip mode: it has no rounds")
	errContains(t, e.closeRound(pub, "zz", "1"), "model zz not found")
	errContains(t, e.recordAgg(nobody, "m", "1", "a"), "neither the publisher")
	err := e.tx(pub, func(ctx ctxT) error { return e.cc.RecordAggregate(ctx, "m", "1", `{"cid":"x","sha256":"y"}`) })
	errContains(t, err, "aggregate.cid")
	err = e.tx(pub, func(ctx ctxT) error { return e.cc.RecordAggregate(ctx, "m", "1", `{"cid":"x","extra":1}`) })
	errContains(t, err, `unknown field "extra"`)
	err = e.tx(com1, func(ctx ctxT) error { return e.cc.ConfirmAggregate(ctx, "m", "1", `{"sha256":"ab","score":0.5}`) })
	errContains(t, err, "sha256")
	err = e.tx(com1, func(ctx ctxT) error { return e.cc.ConfirmAggregate(ctx, "m", "1", `{"sha256":"`+shaOf("a")+`"}`) })
	errContains(t, err, "score: required")
	err = e.tx(com1, func(ctx ctxT) error { return e.cc.ConfirmAggregate(ctx, "m", "1", `{"sha256":1}`) })
	errContains(t, err, "invalid JSON")
	errContains(t, e.confirmAgg(com1, "m", "1", "a", 0.5), "is open, not closed: nothing to confirm")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetRound(ctx, "m", "9") }), "not found")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetRound(ctx, "m", "-1") }), "round")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetRound(ctx, "M", "1") }), "modelId")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetAggregates(ctx, "M", "1") }), "modelId")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetAggregates(ctx, "m", "q") }), "round")
}

func TestCloseRoundWithAggregate(t *testing.T) { bothModes(t, closeRoundWithAggregate) }

func closeRoundWithAggregate(t *testing.T, e *env) {
	e.setupRoles()
	e.activeModel(spec("m"))
	var ids []string
	for _, p := range []*fakeIdentity{prov1, prov2, prov3} {
		u, err := e.submit(p, "m", fedUpdate(1, "u-"+p.name))
		require.NoError(t, err)
		ids = append(ids, u.ID)
	}
	// u0 and u1 accepted, u2 rejected.
	for i, id := range ids {
		score := 0.9
		if i == 2 {
			score = 0.1
		}
		require.NoError(t, e.verdict(com1, id, score, score > 0.5))
		require.NoError(t, e.verdict(com2, id, score, score > 0.5))
	}
	want := slices.Clone(ids[:2])
	slices.Sort(want)
	all := slices.Clone(ids)
	slices.Sort(all)

	// Not due yet: the same refusal as CloseRound's.
	s := spec("m2")
	e.activeModel(s)
	errContains(t, e.closeWithAgg(pub, "m2", "1", "agg", want), "cannot close yet")

	// An aggregate over another set than the round's accepted one writes nothing.
	errContains(t, e.closeWithAgg(pub, "m", "1", "agg", all), "another accepted set than the 2 updates round 1 of model m closes with")
	errContains(t, e.closeWithAgg(pub, "m", "1", "agg", want[:1]), "another accepted set")
	errContains(t, e.closeWithAgg(pub, "m", "1", "agg", []string{want[1], want[0]}), "another accepted set") // order counts
	require.Equal(t, RoundOpen, e.round("m", "1").Status)
	// Bad input is named.
	err := e.tx(pub, func(ctx ctxT) error {
		return e.cc.CloseRoundWithAggregate(ctx, "m", "1", `{"cid":"x","sha256":"`+shaOf("a")+`","acceptedSha256":"`+shaOf("b")+`"}`)
	})
	errContains(t, err, "aggregate.cid")
	err = e.tx(pub, func(ctx ctxT) error {
		return e.cc.CloseRoundWithAggregate(ctx, "m", "1", `{"cid":"`+cidOf("a")+`","sha256":"`+shaOf("a")+`","acceptedSha256":"ab"}`)
	})
	errContains(t, err, "acceptedSha256")
	err = e.tx(pub, func(ctx ctxT) error {
		return e.cc.CloseRoundWithAggregate(ctx, "m", "1", `{"cid":"`+cidOf("a")+`","sha256":"`+shaOf("a")+`","accepted":[]}`)
	})
	errContains(t, err, `unknown field "accepted"`)
	errContains(t, e.closeWithAgg(nobody, "m", "1", "agg", want), "neither the publisher")

	// The right set: closed and the caller's candidate recorded, in one transaction with one event.
	require.NoError(t, e.closeWithAgg(pub, "m", "1", "agg", want))
	ev := e.event()
	require.Equal(t, EvRoundClosed, ev.Type)
	require.Equal(t, want, ev.Accepted)
	require.Equal(t, &ObjectRef{CID: cidOf("agg"), SHA256: shaOf("agg")}, ev.Aggregate)
	r := e.round("m", "1")
	require.Equal(t, RoundClosed, r.Status)
	require.Equal(t, want, r.Accepted)
	var aggs []AggregateCandidate
	require.NoError(t, e.query(nobody, &aggs, func(ctx ctxT) (string, error) { return e.cc.GetAggregates(ctx, "m", "1") }))
	require.Len(t, aggs, 1)
	require.Equal(t, pub.key(), aggs[0].RecordedBy)
	require.Equal(t, r.ClosedTx, aggs[0].RecordedTx)
	errContains(t, e.closeWithAgg(pub, "m", "1", "agg", want), "is closed, not open")
	errContains(t, e.recordAgg(pub, "m", "1", "other"), "has already recorded an aggregate for round 1")

	// The committee confirms it as it would a recorded one: the next round opens on it.
	require.NoError(t, e.confirmAgg(com1, "m", "1", "agg", 0.8))
	require.NoError(t, e.confirmAgg(com2, "m", "1", "agg", 0.8))
	ev = e.event()
	require.Equal(t, EvRoundOpened, ev.Type)
	require.Equal(t, shaOf("agg"), e.round("m", "2").Global.SHA256)

	// A round with nothing accepted has nothing to aggregate: CloseRound skips it.
	e.l.now += 600
	errContains(t, e.closeWithAgg(pub, "m", "2", "agg2", want), "has no accepted update")
	require.NoError(t, e.closeRound(pub, "m", "2"))
	require.Equal(t, RoundSkipped, e.round("m", "2").Status)
}

func TestAggregateCandidateLimit(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	s := spec("m")
	s.RoundRules.MinAccepted = 1
	e.activeModel(s)
	u, err := e.submit(prov1, "m", fedUpdate(1, "u"))
	require.NoError(t, err)
	require.NoError(t, e.verdict(com1, u.ID, 0.9, true))
	require.NoError(t, e.verdict(com2, u.ID, 0.9, true))
	require.NoError(t, e.closeRound(prov1, "m", "1"))
	require.NoError(t, e.recordAgg(prov1, "m", "1", "first"))
	errContains(t, e.recordAgg(prov1, "m", "1", "second"), "has already recorded an aggregate for round 1")
	for i := 1; i < MaxAggregateCandidate; i++ {
		p := &fakeIdentity{msp: "Org1MSP", name: "spammer" + string(rune('a'+i))}
		e.grant(p, RoleProvider)
		require.NoError(t, e.recordAgg(p, "m", "1", "agg"+string(rune('a'+i))))
	}
	errContains(t, e.recordAgg(prov2, "m", "1", "one-too-many"), "aggregate candidates from non-members (limit)")
	// Committee members can still record their own aggregate.
	require.NoError(t, e.recordAgg(com1, "m", "1", "honest"))
	require.NoError(t, e.confirmAgg(com1, "m", "1", "honest", 0.9))
	require.NoError(t, e.confirmAgg(com2, "m", "1", "honest", 0.9))
	require.Equal(t, shaOf("honest"), e.round("m", "1").Aggregate.SHA256)
	var aggs []AggregateCandidate
	require.NoError(t, e.query(nobody, &aggs, func(ctx ctxT) (string, error) { return e.cc.GetAggregates(ctx, "m", "1") }))
	require.Len(t, aggs, MaxAggregateCandidate+1)
}

func TestHistoryAndScanLimits(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	hist := func(kind, id string) error {
		return e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, kind, id) })
	}
	errContains(t, hist("model", "B A D"), "modelId")
	errContains(t, hist("update", "x"), "update id")
	errContains(t, hist("account", "x"), "identity key")
	errContains(t, hist("round", "m"), `must be "<modelId>:<round>"`)
	errContains(t, hist("round", "M:1"), "modelId")
	errContains(t, hist("round", "m:x"), "round")
	errContains(t, hist("role", "x"), `must be "<role>:<identity key>"`)
	errContains(t, hist("role", "king:"+prov1.key()), "role")
	errContains(t, hist("role", "provider:x"), "identity key")
	errContains(t, hist("block", "1"), `kind: "block"`)
	require.NoError(t, hist("round", "m:1")) // absent key: empty history
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetLeaderboard(ctx, "B") }), "modelId")

	// Bounded scans fail loudly instead of truncating.
	err := e.tx(nobody, func(ctx ctxT) error {
		tx, err := newTx(ctx)
		require.NoError(t, err)
		_, err = tx.scan(recordKey{keyRole, []string{RoleProvider}}, 2)
		return err
	})
	errContains(t, err, "returned more than 2 entries")
	bigKey, _ := shim.CreateCompositeKey(keyModel, []string{"big"})
	for i := 0; i <= MaxScan; i++ {
		e.l.history[bigKey] = append(e.l.history[bigKey], &queryresult.KeyModification{TxId: "t", Value: []byte("{}")})
	}
	errContains(t, hist("model", "big"), "has more than 1000 versions")
}

func (e *env) modelState(id string) (ModelState, error) {
	var st ModelState
	err := e.query(nobody, &st, func(ctx ctxT) (string, error) { return e.cc.GetModelState(ctx, id) })
	return st, err
}

func TestGetModelState(t *testing.T) { bothModes(t, getModelState) }

func getModelState(t *testing.T, e *env) {
	e.setupRoles()
	s := spec("m")
	s.RoundRules.MaxRounds = 2
	_, err := e.publish(s)
	require.NoError(t, err)
	require.NoError(t, e.approve(com1, "m", "0.4"))
	st, err := e.modelState("m")
	require.NoError(t, err)
	require.Equal(t, ModelProposed, st.Model.Status)
	require.Equal(t, int64(1), st.Model.Approvals) // counted from the votes, as GetModel does
	require.Nil(t, st.Round)

	require.NoError(t, e.approve(com2, "m", "0.5"))
	st, err = e.modelState("m")
	require.NoError(t, err)
	require.Equal(t, *e.model("m"), *st.Model)
	require.Equal(t, *e.round("m", "1"), *st.Round)

	e.l.now += 600
	require.NoError(t, e.closeRound(pub, "m", "1")) // skipped: round 2 opens
	st, err = e.modelState("m")
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Model.CurrentRound)
	require.Equal(t, int64(2), st.Round.Number)
	require.Equal(t, RoundOpen, st.Round.Status)

	e.l.now += 600
	require.NoError(t, e.closeRound(pub, "m", "2")) // the last round: the model finishes
	st, err = e.modelState("m")
	require.NoError(t, err)
	require.Equal(t, ModelFinished, st.Model.Status)
	require.Equal(t, int64(2), st.Round.Number)
	require.Equal(t, RoundSkipped, st.Round.Status)

	// A closed round comes with its candidate aggregates (what its members and providers act on).
	e.activeModel(spec("c"))
	u1, err := e.submit(prov1, "c", fedUpdate(1, "u1"))
	require.NoError(t, err)
	u2, err := e.submit(prov2, "c", fedUpdate(1, "u2"))
	require.NoError(t, err)
	for _, u := range []*Update{u1, u2} {
		require.NoError(t, e.verdict(com1, u.ID, 0.9, true))
		require.NoError(t, e.verdict(com2, u.ID, 0.8, true))
	}
	st, err = e.modelState("c")
	require.NoError(t, err)
	require.Equal(t, RoundOpen, st.Round.Status)
	require.Nil(t, st.Aggregates)
	ids := []string{u1.ID, u2.ID}
	slices.Sort(ids)
	require.NoError(t, e.closeWithAgg(pub, "c", "1", "agg", ids))
	st, err = e.modelState("c")
	require.NoError(t, err)
	require.Equal(t, RoundClosed, st.Round.Status)
	var cands []AggregateCandidate
	require.NoError(t, e.query(nobody, &cands, func(ctx ctxT) (string, error) { return e.cc.GetAggregates(ctx, "c", "1") }))
	require.Len(t, cands, 1)
	require.Equal(t, shaOf("agg"), cands[0].SHA256)
	require.Equal(t, cands, st.Aggregates)

	e.activeModel(gossipSpec("g"))
	st, err = e.modelState("g")
	require.NoError(t, err)
	require.Equal(t, ModelActive, st.Model.Status)
	require.Nil(t, st.Round) // gossip has no rounds

	_, err = e.modelState("zz")
	errContains(t, err, "model zz not found")
	_, err = e.modelState("M")
	errContains(t, err, "modelId")
}

func TestCloseWhenEveryoneFinal(t *testing.T) { bothModes(t, closeWhenEveryoneFinal) }

// A round short of minAccepted closes before its deadline once every
// expected provider's update is final: nothing can change its accepted set
// any more.
func closeWhenEveryoneFinal(t *testing.T, e *env) {
	e.setupRoles()
	e.grant(prov4, RoleProvider)
	reject := func(u *Update) {
		require.NoError(t, e.verdict(com1, u.ID, 0.1, false))
		require.NoError(t, e.verdict(com2, u.ID, 0.2, false))
	}
	notYet := "an expected provider's update still missing or pending"

	// Allocation "all": the expected providers are the registrants that
	// still hold the provider role (prov1, prov2; prov4 lost its role).
	_, err := e.publish(spec("m"))
	require.NoError(t, err)
	for _, p := range []*fakeIdentity{prov1, prov2, prov4} {
		_, err := e.registerData(p, "m", dataIn(100))
		require.NoError(t, err)
	}
	require.NoError(t, e.tx(admin1, func(ctx ctxT) error { return e.cc.RevokeRole(ctx, prov4.key(), RoleProvider) }))
	e.activeModel2("m")
	u1, err := e.submit(prov1, "m", fedUpdate(1, "u1"))
	require.NoError(t, err)
	reject(u1)
	errContains(t, e.closeRound(pub, "m", "1"), notYet) // prov2 has not submitted
	u2, err := e.submit(prov2, "m", fedUpdate(1, "u2"))
	require.NoError(t, err)
	errContains(t, e.closeRound(pub, "m", "1"), notYet) // u2 pending
	e.accept(u2, 0.8)
	u3, err := e.submit(prov3, "m", fedUpdate(1, "u3")) // not registered: not waited for, but
	require.NoError(t, err)
	errContains(t, e.closeRound(pub, "m", "1"), notYet) // its pending update is
	reject(u3)
	require.NoError(t, e.closeRound(pub, "m", "1"))
	r := e.round("m", "1")
	require.Equal(t, RoundClosed, r.Status)
	require.Equal(t, []string{u2.ID}, r.Accepted)
	require.Less(t, r.ClosedAt, r.Deadline)

	// Nobody registered: nobody is expected, so the round waits for its
	// deadline even with every update final.
	e.activeModel(spec("n"))
	u, err := e.submit(prov1, "n", fedUpdate(1, "n1"))
	require.NoError(t, err)
	reject(u)
	errContains(t, e.closeRound(pub, "n", "1"), notYet)

	// A restricting allocation: the allocated providers are expected; with
	// both rejected the round is skipped at once.
	s := spec("k")
	s.Allocation = &AllocationRule{Rule: AllocRandom, K: 2}
	_, err = e.publish(s)
	require.NoError(t, err)
	for _, p := range []*fakeIdentity{prov1, prov2, prov3} {
		_, err := e.registerData(p, "k", dataIn(100))
		require.NoError(t, err)
	}
	e.activeModel2("k")
	ids := map[string]*fakeIdentity{prov1.key(): prov1, prov2.key(): prov2, prov3.key(): prov3}
	allocated := e.round("k", "1").Allocated
	require.Len(t, allocated, 2)
	for i, p := range allocated {
		u, err := e.submit(ids[p], "k", fedUpdate(1, fmt.Sprint("k", i)))
		require.NoError(t, err)
		if i == 0 {
			errContains(t, e.closeRound(pub, "k", "1"), notYet)
		}
		reject(u)
	}
	require.NoError(t, e.closeRound(pub, "k", "1"))
	require.Equal(t, RoundSkipped, e.round("k", "1").Status)
	require.Equal(t, int64(2), e.model("k").CurrentRound)
}
