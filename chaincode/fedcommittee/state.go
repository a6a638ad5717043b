package fedcommittee

import (
	"encoding/json"
	"fmt"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// txCtx bundles what every transaction needs, read once.
type txCtx struct {
	stub shim.ChaincodeStubInterface
	txID string
	now  int64 // transaction timestamp (seconds): the only clock the contract uses
	// This transaction's own writes by key. Fabric's GetState returns committed state only, so a
	// transaction that updates one record twice (SubmitVerdicts crediting the member once per
	// verdict) reads its earlier writes from here instead of losing them.
	written map[string][]byte
}

func newTx(ctx contractapi.TransactionContextInterface) (*txCtx, error) {
	stub := ctx.GetStub()
	ts, err := stub.GetTxTimestamp()
	if err != nil {
		return nil, fmt.Errorf("reading transaction timestamp: %v", err)
	}
	if ts == nil {
		return nil, fmt.Errorf("reading transaction timestamp: missing")
	}
	return &txCtx{stub: stub, txID: stub.GetTxID(), now: ts.GetSeconds(), written: map[string][]byte{}}, nil
}

func roundAttr(r int64) string { return fmt.Sprintf("%0*d", roundKeyWidth, r) }

func (t *txCtx) key(objectType string, attrs ...string) (string, error) {
	k, err := t.stub.CreateCompositeKey(objectType, attrs)
	if err != nil {
		return "", fmt.Errorf("building %s key: %v", objectType, err)
	}
	return k, nil
}

// getJSON loads key into out; found is false when the key is absent.
func (t *txCtx) getJSON(key string, out any) (bool, error) {
	b, err := t.getState(key)
	if err != nil {
		return false, err
	}
	if b == nil {
		return false, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return false, fmt.Errorf("decoding stored record: %v", err)
	}
	return true, nil
}

// mustLoad reads the record under objectType~attrs; an absent one is an error
// saying "<what> not found", as every transaction reports it.
func mustLoad[T any](t *txCtx, what, objectType string, attrs ...string) (*T, error) {
	k, err := t.key(objectType, attrs...)
	if err != nil {
		return nil, err
	}
	var v T
	found, err := t.getJSON(k, &v)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s not found", what)
	}
	return &v, nil
}

// absentKey builds the key objectType~attrs and returns it only when nothing is
// stored there yet; otherwise it returns refusal (a duplicate vote, object, id…).
func (t *txCtx) absentKey(refusal error, objectType string, attrs ...string) (string, error) {
	k, err := t.key(objectType, attrs...)
	if err != nil {
		return "", err
	}
	if ok, err := t.exists(k); err != nil {
		return "", err
	} else if ok {
		return "", refusal
	}
	return k, nil
}

func (t *txCtx) exists(key string) (bool, error) {
	b, err := t.getState(key)
	if err != nil {
		return false, err
	}
	return b != nil, nil
}

// getState reads key as this transaction sees it: its own earlier write, else committed state.
func (t *txCtx) getState(key string) ([]byte, error) {
	if b, ok := t.written[key]; ok {
		return b, nil
	}
	b, err := t.stub.GetState(key)
	if err != nil {
		return nil, fmt.Errorf("reading state: %v", err)
	}
	return b, nil
}

func (t *txCtx) putJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding record: %v", err)
	}
	if err := t.stub.PutState(key, b); err != nil {
		return fmt.Errorf("writing state: %v", err)
	}
	if t.written != nil {
		t.written[key] = b
	}
	return nil
}

// scan returns up to limit entries under a partial composite key, in key
// order. More than limit entries is an error, never a silent truncation.
func (t *txCtx) scan(objectType string, attrs []string, limit int) ([]kv, error) {
	it, err := t.stub.GetStateByPartialCompositeKey(objectType, attrs)
	if err != nil {
		return nil, fmt.Errorf("range query on %s: %v", objectType, err)
	}
	defer it.Close()
	var out []kv
	for it.HasNext() {
		r, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("range query on %s: %v", objectType, err)
		}
		if len(out) == limit {
			return nil, fmt.Errorf("range query on %s returned more than %d entries", objectType, limit)
		}
		out = append(out, kv{Key: r.GetKey(), Value: r.GetValue()})
	}
	return out, nil
}

// page returns one page under a partial composite key (read-only queries).
func (t *txCtx) page(objectType string, attrs []string, pageSize, bookmark string) ([]kv, string, error) {
	n, err := parsePageSize(pageSize)
	if err != nil {
		return nil, "", err
	}
	it, meta, err := t.stub.GetStateByPartialCompositeKeyWithPagination(objectType, attrs, n, bookmark)
	if err != nil {
		return nil, "", fmt.Errorf("range query on %s: %v", objectType, err)
	}
	defer it.Close()
	var out []kv
	for it.HasNext() {
		r, err := it.Next()
		if err != nil {
			return nil, "", fmt.Errorf("range query on %s: %v", objectType, err)
		}
		out = append(out, kv{Key: r.GetKey(), Value: r.GetValue()})
	}
	next := ""
	if meta != nil {
		next = meta.GetBookmark()
	}
	return out, next, nil
}

type kv struct {
	Key   string
	Value []byte
}

// lastAttr returns the last attribute of a composite key.
func (t *txCtx) lastAttr(key string) (string, error) {
	_, attrs, err := t.stub.SplitCompositeKey(key)
	if err != nil || len(attrs) == 0 {
		return "", fmt.Errorf("malformed composite key")
	}
	return attrs[len(attrs)-1], nil
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encoding result: %v", err)
	}
	return string(b), nil
}

func jsonUnmarshal(b []byte, out any) error {
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding stored record: %v", err)
	}
	return nil
}
