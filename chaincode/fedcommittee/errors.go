package fedcommittee

import (
	"errors"
	"fmt"
)

// Kinds of refusal. A refusal keeps the exact message the caller reads and
// says its kind through errors.Is, so code decides on the kind, never on the
// text.
var (
	errNotFound  = errors.New("not found")     // the named record is not on the ledger
	errDenied    = errors.New("access denied") // the caller may not do this
	errDuplicate = errors.New("duplicate")     // the record (vote, object, id) is already there
	errState     = errors.New("wrong state")   // the record is not in a state that allows this
)

type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == r.kind }

func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// notFound says that a record is absent, in the words the caller reads
// ("model m1 not found"); the boundary puts CodeNotFound in front.
func notFound(format string, args ...any) error { return refuse(errNotFound, format, args...) }

// denied messages all start "access denied: ", as clients have always read them.
func denied(format string, args ...any) error {
	return refuse(errDenied, "access denied: "+format, args...)
}

func duplicate(format string, args ...any) error { return refuse(errDuplicate, format, args...) }

func wrongState(format string, args ...any) error { return refuse(errState, format, args...) }

// coded is the last thing a refusal passes before it leaves the contract:
// a missing record is announced by its stable code first, however deep the
// refusal was wrapped ("NOT_FOUND: verdicts[1]: update … not found"), so a
// client can tell "absent" from every other refusal without reading prose.
func coded(err error) error {
	if errors.Is(err, errNotFound) {
		return fmt.Errorf("%s: %w", CodeNotFound, err)
	}
	return err
}

// ledgerError marks a failed ledger call inside a check whose other errors
// are verdicts on the input (applyChange), so the caller can tell the two
// apart with errors.As: a ledger failure fails the transaction.
type ledgerError struct{ err error }

func (e ledgerError) Error() string { return e.err.Error() }
func (e ledgerError) Unwrap() error { return e.err }
