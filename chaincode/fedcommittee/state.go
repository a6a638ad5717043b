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
	// What the transaction's opening established (tx.go): the authenticated
	// caller, and the model and round it acts on, where it names them.
	who   *caller
	model *Model
	round *Round
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

func (t *txCtx) key(k recordKey) (string, error) {
	s, err := t.stub.CreateCompositeKey(k.objectType, k.attrs)
	if err != nil {
		return "", fmt.Errorf("building %s key: %v", k.objectType, err)
	}
	return s, nil
}

// read returns the bytes under k as this transaction sees them: its own
// earlier write, else committed state; nil when absent.
func (t *txCtx) read(k recordKey) ([]byte, error) {
	s, err := t.key(k)
	if err != nil {
		return nil, err
	}
	if b, ok := t.written[s]; ok {
		return b, nil
	}
	b, err := t.stub.GetState(s)
	if err != nil {
		return nil, fmt.Errorf("reading state: %v", err)
	}
	return b, nil
}

func (t *txCtx) stored(k recordKey) (bool, error) {
	b, err := t.read(k)
	return b != nil, err
}

// absent returns refusal (a duplicate vote, object, id…) when k is already stored.
func (t *txCtx) absent(k recordKey, refusal error) error {
	ok, err := t.stored(k)
	if err != nil {
		return err
	}
	if ok {
		return refusal
	}
	return nil
}

// find loads the record under k; found is false when it is absent.
func find[T any](t *txCtx, k recordKey) (*T, bool, error) {
	b, err := t.read(k)
	if err != nil || b == nil {
		return nil, false, err
	}
	var v T
	if err := jsonUnmarshal(b, &v); err != nil {
		return nil, false, err
	}
	return &v, true, nil
}

// load is find for a record the caller named: absent is the refusal
// "<what> not found", as every transaction reports it.
func load[T any](t *txCtx, k recordKey, what string) (*T, error) {
	v, found, err := find[T](t, k)
	if err == nil && !found {
		err = notFound("%s not found", what)
	}
	return v, err
}

func (t *txCtx) save(k recordKey, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding record: %v", err)
	}
	return t.put(k, b)
}

// putIndex writes an index entry whose value is a plain id.
func (t *txCtx) putIndex(k recordKey, id string) error { return t.put(k, []byte(id)) }

func (t *txCtx) put(k recordKey, b []byte) error {
	s, err := t.key(k)
	if err != nil {
		return err
	}
	if err := t.stub.PutState(s, b); err != nil {
		return fmt.Errorf("writing state: %v", err)
	}
	t.written[s] = b
	return nil
}

func (t *txCtx) remove(k recordKey) error {
	s, err := t.key(k)
	if err != nil {
		return err
	}
	if err := t.stub.DelState(s); err != nil {
		return fmt.Errorf("deleting state: %v", err)
	}
	t.written[s] = nil // deleted: later reads in this transaction see it absent
	return nil
}

type kv struct {
	Key   string
	Value []byte
}

// scan returns up to limit entries under a partial key, in key order. More
// than limit entries is an error, never a silent truncation.
func (t *txCtx) scan(k recordKey, limit int) ([]kv, error) {
	return t.rangeRead(k, limit, true)
}

// scanFirst returns the first limit entries under a partial key, in key order.
func (t *txCtx) scanFirst(k recordKey, limit int) ([]kv, error) {
	return t.rangeRead(k, limit, false)
}

func (t *txCtx) rangeRead(k recordKey, limit int, strict bool) ([]kv, error) {
	it, err := t.stub.GetStateByPartialCompositeKey(k.objectType, k.attrs)
	if err != nil {
		return nil, fmt.Errorf("range query on %s: %v", k.objectType, err)
	}
	defer it.Close()
	var out []kv
	for it.HasNext() {
		if len(out) == limit && !strict {
			break
		}
		r, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("range query on %s: %v", k.objectType, err)
		}
		if len(out) == limit {
			return nil, fmt.Errorf("range query on %s returned more than %d entries", k.objectType, limit)
		}
		out = append(out, kv{Key: r.GetKey(), Value: r.GetValue()})
	}
	return out, nil
}

// scanRecords decodes every record under a partial key (see scan).
func scanRecords[T any](t *txCtx, k recordKey, limit int) ([]T, error) {
	entries, err := t.scan(k, limit)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(entries))
	for _, e := range entries {
		var v T
		if err := jsonUnmarshal(e.Value, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// page returns one page under a partial key (read-only queries).
func (t *txCtx) page(k recordKey, pageSize, bookmark string) ([]kv, string, error) {
	n, err := parsePageSize(pageSize)
	if err != nil {
		return nil, "", err
	}
	it, meta, err := t.stub.GetStateByPartialCompositeKeyWithPagination(k.objectType, k.attrs, n, bookmark)
	if err != nil {
		return nil, "", fmt.Errorf("range query on %s: %v", k.objectType, err)
	}
	defer it.Close()
	var out []kv
	for it.HasNext() {
		r, err := it.Next()
		if err != nil {
			return nil, "", fmt.Errorf("range query on %s: %v", k.objectType, err)
		}
		out = append(out, kv{Key: r.GetKey(), Value: r.GetValue()})
	}
	next := ""
	if meta != nil {
		next = meta.GetBookmark()
	}
	return out, next, nil
}

// pageOfRecords pages through records stored under a partial key.
func pageOfRecords[T any](t *txCtx, k recordKey, pageSize, bookmark string) (*Page, error) {
	return pageWith(t, k, pageSize, bookmark, func(e kv) (any, error) {
		var v T
		return v, jsonUnmarshal(e.Value, &v)
	})
}

// pageOfIndex pages through an index whose last key attribute is a record id
// and resolves each id with load, so a page always shows current records.
func pageOfIndex[T any](t *txCtx, k recordKey, pageSize, bookmark string, load func(id string) (*T, error)) (*Page, error) {
	return pageWith(t, k, pageSize, bookmark, func(e kv) (any, error) {
		id, err := t.lastAttr(e.Key)
		if err != nil {
			return nil, err
		}
		return load(id)
	})
}

func pageWith(t *txCtx, k recordKey, pageSize, bookmark string, item func(kv) (any, error)) (*Page, error) {
	entries, next, err := t.page(k, pageSize, bookmark)
	if err != nil {
		return nil, err
	}
	p := &Page{Items: make([]any, 0, len(entries)), Bookmark: next}
	for _, e := range entries {
		v, err := item(e)
		if err != nil {
			return nil, err
		}
		p.Items = append(p.Items, v)
	}
	p.Count = len(p.Items)
	return p, nil
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
