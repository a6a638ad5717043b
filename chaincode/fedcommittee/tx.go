package fedcommittee

import (
	"slices"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// Every transaction and query is an opening (who may call, on which model
// and round, in which state, with which arguments) followed by a body that
// is the transaction's rule. The opening is a list of steps run in the
// order written, so each transaction keeps exactly the order of refusals it
// has always had, and the body runs only when every step passed.

// A step is one check of an opening. Steps that load a record leave it on
// the txCtx (t.model, t.round) for the steps after them and the body.
type step func(t *txCtx) error

type opening []step

// run performs a transaction by the authenticated caller (t.who).
func run(ctx contractapi.TransactionContextInterface, o opening, body func(t *txCtx) error) error {
	_, err := perform(ctx, true, o, func(t *txCtx) (struct{}, error) { return struct{}{}, body(t) })
	return err
}

// runJSON is run for a transaction that returns a record: the caller reads it as JSON.
func runJSON(ctx contractapi.TransactionContextInterface, o opening, body func(t *txCtx) (any, error)) (string, error) {
	v, err := perform(ctx, true, o, body)
	if err != nil {
		return "", err
	}
	return toJSON(v)
}

// query performs a read: no caller identity is needed, the result is JSON.
func query(ctx contractapi.TransactionContextInterface, o opening, body func(t *txCtx) (any, error)) (string, error) {
	v, err := perform(ctx, false, o, body)
	if err != nil {
		return "", err
	}
	return toJSON(v)
}

// perform opens the transaction, reads the caller when identify is set,
// runs the opening and the body, and codes any refusal (see coded).
func perform[T any](ctx contractapi.TransactionContextInterface, identify bool, o opening, body func(t *txCtx) (T, error)) (T, error) {
	var zero T
	t, err := newTx(ctx)
	if err == nil && identify {
		t.who, err = getCaller(ctx)
	}
	for _, s := range o {
		if err != nil {
			break
		}
		err = s(t)
	}
	if err != nil {
		return zero, coded(err)
	}
	v, err := body(t)
	if err != nil {
		return zero, coded(err)
	}
	return v, nil
}

// ---------------------------------------------------------------- who may call

// holds: the caller must hold role.
func holds(role string) step { return func(t *txCtx) error { return t.requireRole(t.who, role) } }

// orgAdmin: the caller's certificate must carry the admin NodeOU.
func orgAdmin(t *txCtx) error {
	if !t.who.Admin {
		return denied("caller %s is not an org admin (OU=%s)", t.who.Key, AdminOU)
	}
	return nil
}

// onCommittee: the caller must sit on the model's committee and still hold
// the committee role.
func onCommittee(t *txCtx) error { return t.requireMember(t.who, t.model) }

// participant: any of the model's publisher, its committee, or a provider
// may drive the round machinery (closing, recording aggregates); the rules,
// not the caller, decide what happens.
func participant(t *txCtx) error {
	m, who := t.model, t.who
	if who.Key == m.Publisher || isMember(m, who.Key) {
		return nil
	}
	ok, err := t.hasRole(who.Key, RoleProvider)
	if err != nil {
		return err
	}
	if !ok {
		return denied("caller %s is neither the publisher, a committee member of model %s, nor a provider", who.Key, m.ID)
	}
	return nil
}

// publisherOnly: only the model's publisher may do what (e.g. "finish it").
func publisherOnly(what string) step {
	return func(t *txCtx) error {
		if t.who.Key != t.model.Publisher {
			return denied("only the publisher of model %s may %s", t.model.ID, what)
		}
		return nil
	}
}

// ---------------------------------------------------------------- which model and round, in which state

// onModel loads the model the transaction acts on.
func onModel(modelID string) step {
	return func(t *txCtx) (err error) {
		t.model, err = t.loadModel(modelID)
		return err
	}
}

// modelIs: the model's status must be one of allowed; the refusal reads
// "model <id> is <status>" followed by why.
func modelIs(why string, allowed ...string) step {
	return func(t *txCtx) error {
		if !slices.Contains(allowed, t.model.Status) {
			return wrongState("model %s is %s%s", t.model.ID, t.model.Status, why)
		}
		return nil
	}
}

// inMode: the model must be in mode; the refusal reads "model <id> " followed by refusal.
func inMode(mode, refusal string) step {
	return func(t *txCtx) error {
		if t.model.Mode != mode {
			return wrongState("model %s %s", t.model.ID, refusal)
		}
		return nil
	}
}

// federatedRound loads an active federated model and one of its rounds.
func federatedRound(modelID, roundArg string) step {
	return func(t *txCtx) error {
		var n int64
		return opening{onModel(modelID), inMode(ModeFederated, "is in gossip mode: it has no rounds"),
			modelIs(", not active", ModelActive), roundNumber(roundArg, &n),
			func(t *txCtx) (err error) {
				t.round, err = t.loadRound(t.model.ID, n)
				return err
			}}.all(t)
	}
}

// roundIs: the round's status must be want; the refusal reads "round <n> of
// model <id> is <status>" followed by why.
func roundIs(want, why string) step {
	return func(t *txCtx) error {
		if r := t.round; r.Status != want {
			return wrongState("round %d of model %s is %s%s", r.Number, r.ModelID, r.Status, why)
		}
		return nil
	}
}

func (o opening) all(t *txCtx) error {
	for _, s := range o {
		if err := s(t); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------- arguments

// decoded decodes the JSON argument input into into (see decodeStrict).
func decoded(what, input string, into any) step {
	return func(*txCtx) error { return decodeStrict(what, input, into) }
}

// valid runs an argument check that needs nothing from the ledger.
func valid(check func() error) step { return func(*txCtx) error { return check() } }

func modelIDArg(v string) step { return valid(func() error { return checkModelID(v) }) }

func updateIDArg(field, v string) step { return valid(func() error { return checkUpdateID(field, v) }) }

func identityArg(field, v string) step {
	return valid(func() error {
		_, err := checkIdentityKey(field, v)
		return err
	})
}

func roleArg(v string) step { return valid(func() error { return checkRole(v) }) }

// roundNumber parses a round argument into n.
func roundNumber(v string, n *int64) step {
	return valid(func() (err error) {
		*n, err = parseRoundArg(v)
		return err
	})
}
