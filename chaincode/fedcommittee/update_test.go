package fedcommittee

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSubmitUpdateRejections(t *testing.T) { bothModes(t, submitUpdateRejections) }

func submitUpdateRejections(t *testing.T, e *env) {
	e.setupRoles()
	e.activeModel(spec("m"))

	_, err := e.submit(pub, "m", fedUpdate(1, "u"))
	errContains(t, err, "does not hold the provider role")
	_, err = e.submit(prov1, "nope", fedUpdate(1, "u"))
	errContains(t, err, "model nope not found")

	cases := []struct {
		name string
		mut  func(map[string]any)
		want string
	}{
		{"bad cid", func(in map[string]any) { in["cid"] = "QmTooShort" }, "update.cid"},
		{"cidv1 garbage", func(in map[string]any) { in["cid"] = "bafyyyyyyyyyyyyyyyyy" }, "update.cid"},
		{"bad sha", func(in map[string]any) { in["sha256"] = strings.Repeat("g", 64) }, "update.sha256"},
		{"no samples", func(in map[string]any) { in["numSamples"] = 0 }, "numSamples: 0 is out of range"},
		{"bad metric name", func(in map[string]any) { in["metrics"] = map[string]float64{"a b": 1} }, "metrics key"},
		{"huge metric", func(in map[string]any) { in["metrics"] = map[string]float64{"loss": 1e300} }, "metrics.loss"},
		{"parents in federated", func(in map[string]any) { in["parents"] = []string{shaOf("p")} }, "parents: not used in federated mode"},
		{"unknown field", func(in map[string]any) { in["sneaky"] = true }, `unknown field "sneaky"`},
		{"wrong round", func(in map[string]any) { in["round"] = 2 }, "round: 2 is not the open round"},
		{"wrong base", func(in map[string]any) { in["baseSha256"] = shaOf("other") }, "must start from the global model of round 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := fedUpdate(1, "u")
			c.mut(in)
			_, err := e.submit(prov1, "m", in)
			errContains(t, err, c.want)
		})
	}
	many := map[string]float64{}
	for i := 0; i <= MaxMetrics; i++ {
		many["m"+strings.Repeat("x", i)] = 1
	}
	in := fedUpdate(1, "u")
	in["metrics"] = many
	_, err = e.submit(prov1, "m", in)
	errContains(t, err, "metrics: 33 entries")

	u, err := e.submit(prov1, "m", fedUpdate(1, "u"))
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"loss": 0.3}, u.Metrics)
	// Same object again from another provider: recorded, but rejected on
	// the spot (no free riding by copy), so it fills prov2's place.
	cp, err := e.submit(prov2, "m", fedUpdate(1, "u"))
	require.NoError(t, err)
	require.Equal(t, UpdateRejected, cp.Status)
	require.Contains(t, cp.Refusal, "replay: sha256 "+shaOf("u")+" was already submitted to model m as update "+u.ID)
	penalty := e.model("m").RewardRules.RejectPenalty
	require.Equal(t, penalty, cp.Penalty)
	acc := e.account(prov2)
	require.Equal(t, int64(1), acc.Rejected)
	require.Equal(t, penalty, acc.Penalties)
	require.Equal(t, UpdateRejected, e.update(cp.ID).Status)
	errContains(t, e.verdict(com1, cp.ID, 0.9, true), "not pending: verdicts are closed")
	_, err = e.submit(prov2, "m", fedUpdate(1, "again"))
	errContains(t, err, "provider "+prov2.key()+" already submitted an update to round 1")
	// The sha256 still names the first update: a third copy cites it too.
	cp3, err := e.submit(prov3, "m", fedUpdate(1, "u"))
	require.NoError(t, err)
	require.Contains(t, cp3.Refusal, "as update "+u.ID)
	require.Equal(t, UpdatePending, e.update(u.ID).Status)

	in = fedUpdate(1, "nometrics")
	delete(in, "metrics")
	e.grant(com1, RoleProvider)
	u2, err := e.submit(com1, "m", in)
	require.NoError(t, err)
	require.NotNil(t, u2.Metrics)
}

func TestVerdictRejections(t *testing.T) { bothModes(t, verdictRejections) }

func verdictRejections(t *testing.T, e *env) {
	e.setupRoles()
	e.grant(com1, RoleProvider) // a committee member that also provides
	e.activeModel(spec("m"))
	u, err := e.submit(prov1, "m", fedUpdate(1, "u"))
	require.NoError(t, err)
	own, err := e.submit(com1, "m", fedUpdate(1, "own"))
	require.NoError(t, err)

	raw := func(who *fakeIdentity, id, input string) error {
		return e.tx(who, func(ctx ctxT) error { return e.cc.SubmitVerdict(ctx, id, input) })
	}
	errContains(t, e.verdict(prov2, u.ID, 0.5, true), "is not on the committee of model m")
	errContains(t, e.verdict(com1, own.ID, 0.5, true), "cannot judge its own update")
	errContains(t, e.verdict(com1, "xyz", 0.5, true), "is not an update id")
	errContains(t, e.verdict(com1, shaOf("missing"), 0.5, true), "not found")
	errContains(t, e.verdict(com1, u.ID, 1.5, true), "outside the model's score range [0, 1]")
	errContains(t, e.verdict(com1, u.ID, -0.1, true), "outside the model's score range")
	errContains(t, raw(com1, u.ID, `{"accept":true}`), "score: required")
	errContains(t, raw(com1, u.ID, `{"score":0.5}`), "accept: required")
	errContains(t, raw(com1, u.ID, `{"score":0.5,"accept":true,"weight":2}`), `unknown field "weight"`)
	errContains(t, raw(com1, u.ID, `{"score":0.5,"accept":true,"reason":"`+strings.Repeat("r", 600)+`"}`), "reason")
	require.NoError(t, raw(com1, u.ID, `{"score":0.5,"accept":true,"reason":"fine"}`))
	errContains(t, e.verdict(com1, u.ID, 0.5, true), "has already submitted a verdict on update")

	var vs []Verdict
	require.NoError(t, e.query(nobody, &vs, func(ctx ctxT) (string, error) { return e.cc.GetVerdicts(ctx, u.ID) }))
	require.Len(t, vs, 1)
	require.Equal(t, "fine", vs[0].Reason)
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetVerdicts(ctx, "x") }), "update id")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetUpdate(ctx, "x") }), "update id")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetUpdate(ctx, shaOf("zz")) }), "not found")
}

func TestAcceptanceRules(t *testing.T) {
	m := &Model{ModelTerms: ModelTerms{Metric: Metric{HigherIsBetter: true}, Acceptance: Acceptance{Rule: RuleThreshold, Threshold: ptr(0.5), ScoreMax: 1}}}
	u := &Update{}
	require.True(t, decide(m, u, 0.5))
	require.False(t, decide(m, u, 0.49))
	m.Metric.HigherIsBetter = false // e.g. loss
	require.True(t, decide(m, u, 0.4))
	require.False(t, decide(m, u, 0.6))

	m.Acceptance = Acceptance{Rule: RuleImprovement, MinDelta: ptr(0.1), ScoreMax: 1}
	require.True(t, decide(m, u, 0.9-0.1-0.1)) // no baseline: scoreMax for lower-is-better
	u.Baseline = ptr(0.5)
	require.True(t, decide(m, u, 0.4))
	require.False(t, decide(m, u, 0.45))
	m.Metric.HigherIsBetter = true
	require.True(t, decide(m, u, 0.6))
	require.False(t, decide(m, u, 0.55))
	u.Baseline = nil
	require.True(t, decide(m, u, 0.1))

	m.Acceptance = Acceptance{Rule: RuleMajority, ScoreMax: 1}
	require.True(t, decide(m, &Update{VerdictCount: 3, AcceptVotes: 2}, 0))
	require.False(t, decide(m, &Update{VerdictCount: 2, AcceptVotes: 1}, 1))

	require.Equal(t, 2.0, median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
	require.Equal(t, 0.0, median(nil))
}

func TestImprovementRuleEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	s := spec("m")
	s.Acceptance = Acceptance{Rule: RuleImprovement, MinDelta: ptr(0.05), ScoreMin: 0, ScoreMax: 1}
	e.activeModel(s) // baseline = median(0.4, 0.5) = 0.45
	u, err := e.submit(prov1, "m", fedUpdate(1, "u"))
	require.NoError(t, err)
	require.InDelta(t, 0.45, *u.Baseline, 1e-12)
	require.NoError(t, e.verdict(com1, u.ID, 0.49, true))
	require.NoError(t, e.verdict(com2, u.ID, 0.49, true))
	require.Equal(t, UpdateRejected, e.update(u.ID).Status) // 0.49 < 0.45+0.05
	v, err := e.submit(prov2, "m", fedUpdate(1, "v"))
	require.NoError(t, err)
	require.NoError(t, e.verdict(com1, v.ID, 0.6, false))
	require.NoError(t, e.verdict(com3, v.ID, 0.5, false))
	require.Equal(t, UpdateAccepted, e.update(v.ID).Status)
}

func TestGossipFlow(t *testing.T) { bothModes(t, gossipFlow) }

func gossipFlow(t *testing.T, e *env) {
	e.majorityGossipModel("g")
	m := e.model("g")
	require.Equal(t, ModelActive, m.Status)
	require.Equal(t, int64(0), m.CurrentRound)
	ev := e.event()
	require.Equal(t, EvModelActivated, ev.Type)
	require.Equal(t, int64(0), ev.Round)

	// Root update: no parents (from the initial weights).
	a, err := e.submit(prov1, "g", gossipUpdate("a"))
	require.NoError(t, err)
	require.Empty(t, a.Parents)
	require.Equal(t, int64(0), a.Round)

	_, err = e.submit(prov2, "g", gossipUpdate("b", a.ID))
	errContains(t, err, "parents[0]: update "+a.ID+" is pending, not accepted")
	require.NoError(t, e.verdict(com1, a.ID, 0.7, true))
	require.NoError(t, e.verdict(com2, a.ID, 0.8, true))
	require.Equal(t, UpdateAccepted, e.update(a.ID).Status)

	// Gossip: the same provider may submit many updates.
	r, err := e.submit(prov1, "g", gossipUpdate("r"))
	require.NoError(t, err)
	require.NoError(t, e.verdict(com1, r.ID, 0.1, false))
	require.NoError(t, e.verdict(com2, r.ID, 0.2, true))
	require.Equal(t, UpdateRejected, e.update(r.ID).Status) // 1 of 2 is not a majority

	cases := []struct {
		name    string
		parents []string
		want    string
	}{
		{"rejected parent", []string{r.ID}, "is rejected, not accepted"},
		{"unknown parent", []string{shaOf("nope")}, "parents[0]: update " + shaOf("nope") + " not found"},
		{"malformed parent", []string{"nope"}, "parents[0]: \"nope\" is not an update id"},
		{"duplicate parent", []string{a.ID, a.ID}, "parents[1]: " + a.ID + " is listed twice"},
		{"too many parents", []string{a.ID, r.ID, shaOf("x")}, "parents: 3 given, model g allows at most 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.submit(prov2, "g", gossipUpdate("child", c.parents...))
			errContains(t, err, c.want)
		})
	}
	in := gossipUpdate("child", a.ID)
	in["round"] = 1
	_, err = e.submit(prov2, "g", in)
	errContains(t, err, "not used in gossip mode")

	// A parent from another model is refused.
	e.activeModel(gossipSpec("other"))
	o, err := e.submit(prov3, "other", gossipUpdate("o"))
	require.NoError(t, err)
	require.NoError(t, e.verdict(com1, o.ID, 0.9, true))
	require.NoError(t, e.verdict(com2, o.ID, 0.9, true))
	_, err = e.submit(prov2, "g", gossipUpdate("child", o.ID))
	errContains(t, err, "belongs to model other, not g")

	b, err := e.submit(prov2, "g", gossipUpdate("b", a.ID))
	require.NoError(t, err)
	require.Equal(t, []string{a.ID}, b.Parents)
	require.InDelta(t, 0.75, *b.Baseline, 1e-12) // the parent's median
	ev = e.event()
	require.Equal(t, []string{a.ID}, ev.Parents)
	require.NoError(t, e.verdict(com3, b.ID, 0.9, true))
	require.NoError(t, e.verdict(com2, b.ID, 0.9, true))

	var parents []Update
	require.NoError(t, e.query(nobody, &parents, func(ctx ctxT) (string, error) { return e.cc.GetParents(ctx, b.ID) }))
	require.Len(t, parents, 1)
	require.Equal(t, a.ID, parents[0].ID)
	var page struct {
		Items    []Update `json:"items"`
		Bookmark string   `json:"bookmark"`
	}
	require.NoError(t, e.query(nobody, &page, func(ctx ctxT) (string, error) { return e.cc.GetChildren(ctx, a.ID, "", "") }))
	require.Len(t, page.Items, 1)
	require.Equal(t, b.ID, page.Items[0].ID)
	require.Equal(t, UpdateAccepted, page.Items[0].Status)
	page.Items = nil
	require.NoError(t, e.query(nobody, &page, func(ctx ctxT) (string, error) { return e.cc.ListAcceptedUpdates(ctx, "g", "0", "", "") }))
	require.Len(t, page.Items, 2)
	page.Items = nil
	require.NoError(t, e.query(nobody, &page, func(ctx ctxT) (string, error) { return e.cc.ListRoundUpdates(ctx, "g", "0", "", "") }))
	require.Len(t, page.Items, 3)
	page.Items = nil
	require.NoError(t, e.query(nobody, &page, func(ctx ctxT) (string, error) {
		return e.cc.ListProviderUpdates(ctx, "g", prov1.key(), "1", "")
	}))
	require.Len(t, page.Items, 1)
	require.NotEmpty(t, page.Bookmark)

	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetParents(ctx, "x") }), "update id")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetParents(ctx, shaOf("q")) }), "not found")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetChildren(ctx, "x", "", "") }), "update id")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.ListRoundUpdates(ctx, "g", "-1", "", "") }), "round")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.ListRoundUpdates(ctx, "G", "0", "", "") }), "modelId")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.ListProviderUpdates(ctx, "G", "x", "", "") }), "modelId")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.ListProviderUpdates(ctx, "g", "x", "", "") }), "provider")
	errContains(t, e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.ListProviderUpdates(ctx, "g", prov1.key(), "x", "") }), "pageSize")

	// Finishing a gossip model.
	finish := func(who *fakeIdentity, model, id string) error {
		return e.tx(who, func(ctx ctxT) error { return e.cc.FinishModel(ctx, model, id) })
	}
	errContains(t, finish(prov1, "g", b.ID), "only the publisher of model g")
	errContains(t, finish(pub, "g", "bad"), "is not an update id")
	errContains(t, finish(pub, "g", shaOf("none")), "not found")
	errContains(t, finish(pub, "g", r.ID), "is not an accepted update of model g")
	errContains(t, finish(pub, "g", o.ID), "is not an accepted update of model g")
	errContains(t, finish(pub, "zz", b.ID), "model zz not found")
	require.NoError(t, finish(pub, "g", b.ID))
	ev = e.event()
	require.Equal(t, EvModelFinished, ev.Type)
	require.Equal(t, b.ID, ev.UpdateID)
	require.Equal(t, shaOf("b"), ev.SHA256)
	require.Equal(t, b.ID, e.model("g").FinalUpdate)
	errContains(t, finish(pub, "g", b.ID), "model g is finished, not active")

	e.activeModel(spec("fed"))
	errContains(t, finish(pub, "fed", b.ID), "model fed is federated")
}

func TestVerdictQuality(t *testing.T) { bothModes(t, verdictQuality) }

// verdictQuality: a verdict may carry the member's quality measure of the
// model the update yields; the update gets the median only when every
// deciding verdict has one.
func verdictQuality(t *testing.T, e *env) {
	e.setupRoles()
	e.activeModel(gossipSpec("g"))
	withQuality := func(who *fakeIdentity, id string, q any) error {
		return e.tx(who, func(ctx ctxT) error {
			return e.cc.SubmitVerdict(ctx, id, mustJSON(map[string]any{"score": 0.9, "accept": true, "quality": q}))
		})
	}
	u, err := e.submit(prov1, "g", gossipUpdate("a"))
	require.NoError(t, err)
	errContains(t, withQuality(com1, u.ID, 1.5), "quality: 1.5 is outside [0, 1]")
	errContains(t, withQuality(com1, u.ID, -0.1), "quality: -0.1 is outside [0, 1]")
	require.NoError(t, withQuality(com1, u.ID, 0.7))
	require.NoError(t, withQuality(com2, u.ID, 0.8))
	got := e.update(u.ID)
	require.Equal(t, UpdateAccepted, got.Status)
	require.NotNil(t, got.MedianQuality)
	require.InDelta(t, 0.75, *got.MedianQuality, 1e-12)
	var vs []Verdict
	require.NoError(t, e.query(nobody, &vs, func(ctx ctxT) (string, error) { return e.cc.GetVerdicts(ctx, u.ID) }))
	require.Len(t, vs, 2)
	require.NotNil(t, vs[0].Quality)

	// One deciding verdict without a quality: no median quality at all.
	w, err := e.submit(prov2, "g", gossipUpdate("b"))
	require.NoError(t, err)
	require.NoError(t, withQuality(com1, w.ID, 0.9))
	require.NoError(t, e.verdict(com2, w.ID, 0.9, true))
	require.Nil(t, e.update(w.ID).MedianQuality)

	// The batch carries it too.
	x, err := e.submit(prov3, "g", gossipUpdate("c"))
	require.NoError(t, err)
	for _, who := range []*fakeIdentity{com1, com2} {
		require.NoError(t, e.tx(who, func(ctx ctxT) error {
			_, err := e.cc.SubmitVerdicts(ctx, mustJSON(map[string]any{"verdicts": []map[string]any{
				{"updateId": x.ID, "score": 0.9, "accept": true, "quality": 0.6}}}))
			return err
		}))
	}
	require.InDelta(t, 0.6, *e.update(x.ID).MedianQuality, 1e-12)
}

func TestGossipStanding(t *testing.T) { bothModes(t, gossipStanding) }

// A gossip update records its provider's standing from the provider's
// earlier updates, which must all be final by then.
func gossipStanding(t *testing.T, e *env) {
	e.majorityGossipModel("g")
	judge := func(id string, accept bool) {
		t.Helper()
		require.NoError(t, e.verdict(com1, id, 0.5, accept))
		require.NoError(t, e.verdict(com2, id, 0.5, accept))
	}

	a, err := e.submit(prov1, "g", gossipUpdate("a"))
	require.NoError(t, err)
	require.Equal(t, &Standing{}, a.Standing)
	_, err = e.submit(prov1, "g", gossipUpdate("b"))
	errContains(t, err, "update "+a.ID+" of provider "+prov1.key()+" to model g is pending")
	require.Equal(t, &Standing{}, e.update(a.ID).Standing) // the refusal left nothing behind
	// Another provider's standing is its own.
	other, err := e.submit(prov2, "g", gossipUpdate("other"))
	require.NoError(t, err)
	require.Equal(t, &Standing{}, other.Standing)

	judge(a.ID, true)
	b, err := e.submit(prov1, "g", gossipUpdate("b", a.ID))
	require.NoError(t, err)
	require.Equal(t, &Standing{Previous: a.ID, Earlier: 1, Accepted: 1}, b.Standing)
	judge(b.ID, false)
	c, err := e.submit(prov1, "g", gossipUpdate("c", a.ID))
	require.NoError(t, err)
	require.Equal(t, &Standing{Previous: b.ID, Earlier: 2, Accepted: 1, LastRejectedAgo: 1}, c.Standing)
	judge(c.ID, true)
	// A replay is rejected on the spot: final at once, and counted as rejected.
	replay, err := e.submit(prov1, "g", gossipUpdate("a"))
	require.NoError(t, err)
	require.Equal(t, UpdateRejected, replay.Status)
	require.Equal(t, &Standing{Previous: c.ID, Earlier: 3, Accepted: 2, LastRejectedAgo: 2}, replay.Standing)
	d, err := e.submit(prov1, "g", gossipUpdate("d", a.ID))
	require.NoError(t, err)
	require.Equal(t, &Standing{Previous: replay.ID, Earlier: 4, Accepted: 2, LastRejectedAgo: 1}, d.Standing)
	require.Equal(t, d.Standing, e.update(d.ID).Standing) // as stored

	// Federated updates carry none: their standing is read from finished rounds.
	e.activeModel(spec("m"))
	f, err := e.submit(prov1, "m", fedUpdate(1, "f"))
	require.NoError(t, err)
	require.Nil(t, f.Standing)
}
