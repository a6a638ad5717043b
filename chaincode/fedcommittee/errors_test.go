package fedcommittee

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every refusal that names an absent record starts with CodeNotFound, at the
// very front even when the refusal names the argument it came from; no
// other refusal does.
func TestNotFoundCode(t *testing.T) {
	e := newEnv(t)
	e.setupRoles()
	e.activeModel(spec("m"))
	zero := strings.Repeat("0", 64)
	q := func(f func(ctx ctxT) (string, error)) error { return e.query(nobody, nil, f) }
	exact := map[string]error{
		"NOT_FOUND: model nope not found":               q(func(ctx ctxT) (string, error) { return e.cc.GetModel(ctx, "nope") }),
		"NOT_FOUND: round 9 of model m not found":       q(func(ctx ctxT) (string, error) { return e.cc.GetRound(ctx, "m", "9") }),
		"NOT_FOUND: update " + zero + " not found":      q(func(ctx ctxT) (string, error) { return e.cc.GetUpdate(ctx, zero) }),
		"NOT_FOUND: rule change " + zero + " not found": q(func(ctx ctxT) (string, error) { return e.cc.GetRuleChange(ctx, zero) }),
		"NOT_FOUND: account " + nobody.key() + " not found": q(func(ctx ctxT) (string, error) {
			return e.cc.GetAccount(ctx, nobody.key())
		}),
		"NOT_FOUND: provider " + prov1.key() + " has no data registration for model m": q(func(ctx ctxT) (string, error) {
			return e.cc.GetDataRegistration(ctx, "m", prov1.key())
		}),
		"NOT_FOUND: no rotation recorded for round 2 of model m": q(func(ctx ctxT) (string, error) { return e.cc.GetRotation(ctx, "m", "2") }),
		"NOT_FOUND: verdicts[0]: update " + zero + " not found": e.tx(com1, func(ctx ctxT) error {
			_, err := e.cc.SubmitVerdicts(ctx, mustJSON(map[string]any{"verdicts": []any{verdictOn(zero, 0.5, true)}}))
			return err
		}),
	}
	e.activeModel(gossipSpec("g"))
	_, err := e.submit(prov1, "g", gossipUpdate("child", zero))
	exact["NOT_FOUND: parents[0]: update "+zero+" not found"] = err
	for want, err := range exact {
		require.Error(t, err, want)
		require.Equal(t, want, err.Error())
		require.True(t, errors.Is(err, errNotFound), want)
	}
	// A refusal of another kind carries no code.
	err = e.approve(com1, "m", "0.5")
	require.Error(t, err)
	require.False(t, strings.HasPrefix(err.Error(), CodeNotFound))
	require.False(t, errors.Is(err, errNotFound))
}
