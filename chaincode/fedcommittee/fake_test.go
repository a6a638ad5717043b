package fedcommittee

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/pkg/cid"
	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/queryresult"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeLedger is an in-memory world state with Fabric's transaction
// semantics: a transaction's reads see committed state only, its writes are
// committed when it succeeds and dropped when it fails, and only its last
// event survives.
type fakeLedger struct {
	state   map[string][]byte
	history map[string][]*queryresult.KeyModification
	events  []fakeEvent // one per committed transaction that set one
	rwsets  []rwset     // one per committed transaction: what it read and wrote
	txSeq   int
	now     int64
	// Fault injection: the at-th call of method fails (or, with garbage,
	// returns undecodable data); triggered records that it happened.
	fault     *fault
	calls     map[string]int
	triggered bool
}

type fault struct {
	method  string
	at      int
	garbage bool
}

var errInjected = errors.New("injected ledger failure")

// rwset is what one transaction read (point reads and range prefixes) and
// wrote: two transactions in one Fabric block conflict (MVCC) when one
// writes a key the other read or wrote, or a key inside a range it read.
type rwset struct {
	reads  map[string]bool
	ranges []string
	writes []string
}

type fakeEvent struct {
	Name    string
	Payload []byte
}

func newFakeLedger() *fakeLedger {
	return &fakeLedger{
		state:   map[string][]byte{},
		history: map[string][]*queryresult.KeyModification{},
		now:     1_700_000_000,
	}
}

// fakeStub is one transaction's view of the ledger.
type fakeStub struct {
	shim.ChaincodeStubInterface
	l      *fakeLedger
	txID   string
	writes map[string][]byte // nil value: delete
	order  []string
	event  *fakeEvent
	args   [][]byte
	reads  map[string]bool
	ranges []string
}

func (l *fakeLedger) newStub() *fakeStub {
	l.txSeq++
	sum := sha256.Sum256([]byte(fmt.Sprintf("tx-%d", l.txSeq)))
	return &fakeStub{l: l, txID: hex.EncodeToString(sum[:]), writes: map[string][]byte{}, reads: map[string]bool{}}
}

func (s *fakeStub) fail(name string) error { return s.l.fail(name) }

func (l *fakeLedger) fail(name string) error {
	if l.fault == nil || l.fault.garbage {
		return nil
	}
	l.calls[name]++
	if l.fault.method == name && l.calls[name] == l.fault.at {
		l.triggered = true
		return errInjected
	}
	return nil
}

func (l *fakeLedger) garbage(name string) bool {
	if l.fault == nil || !l.fault.garbage {
		return false
	}
	l.calls[name]++
	if l.fault.method == name && l.calls[name] == l.fault.at {
		l.triggered = true
		return true
	}
	return false
}

func (s *fakeStub) GetTxID() string { return s.txID }

func (s *fakeStub) GetTxTimestamp() (*timestamppb.Timestamp, error) {
	if err := s.fail("GetTxTimestamp"); err != nil {
		return nil, err
	}
	return timestamppb.New(time.Unix(s.l.now, 0)), nil
}

func (s *fakeStub) GetState(key string) ([]byte, error) {
	if err := s.fail("GetState"); err != nil {
		return nil, err
	}
	if s.l.garbage("GetState") {
		return []byte("{garbage"), nil
	}
	s.reads[key] = true
	return s.l.state[key], nil
}

func (s *fakeStub) PutState(key string, value []byte) error {
	if err := s.fail("PutState"); err != nil {
		return err
	}
	if key == "" || value == nil {
		return errors.New("bad PutState")
	}
	if _, ok := s.writes[key]; !ok {
		s.order = append(s.order, key)
	}
	s.writes[key] = append([]byte(nil), value...)
	return nil
}

func (s *fakeStub) DelState(key string) error {
	if err := s.fail("DelState"); err != nil {
		return err
	}
	if _, ok := s.writes[key]; !ok {
		s.order = append(s.order, key)
	}
	s.writes[key] = nil
	return nil
}

func (s *fakeStub) SetEvent(name string, payload []byte) error {
	if err := s.fail("SetEvent"); err != nil {
		return err
	}
	s.event = &fakeEvent{Name: name, Payload: payload}
	return nil
}

func (s *fakeStub) CreateCompositeKey(objectType string, attrs []string) (string, error) {
	if err := s.fail("CreateCompositeKey"); err != nil {
		return "", err
	}
	return shim.CreateCompositeKey(objectType, attrs)
}

func (s *fakeStub) SplitCompositeKey(key string) (string, []string, error) {
	if err := s.fail("SplitCompositeKey"); err != nil {
		return "", nil, err
	}
	parts := strings.Split(key, "\x00")
	// "\x00type\x00a\x00b\x00" -> ["", type, a, b, ""]
	if len(parts) < 3 || parts[0] != "" {
		return "", nil, errors.New("not a composite key")
	}
	return parts[1], parts[2 : len(parts)-1], nil
}

func (s *fakeStub) prefixKeys(objectType string, attrs []string) ([]string, error) {
	prefix, err := shim.CreateCompositeKey(objectType, attrs)
	if err != nil {
		return nil, err
	}
	s.ranges = append(s.ranges, prefix)
	var keys []string
	for k := range s.l.state {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *fakeStub) GetStateByPartialCompositeKey(objectType string, attrs []string) (shim.StateQueryIteratorInterface, error) {
	if err := s.fail("GetStateByPartialCompositeKey"); err != nil {
		return nil, err
	}
	keys, err := s.prefixKeys(objectType, attrs)
	if err != nil {
		return nil, err
	}
	return s.iter(keys), nil
}

func (s *fakeStub) GetStateByPartialCompositeKeyWithPagination(objectType string, attrs []string, pageSize int32, bookmark string) (shim.StateQueryIteratorInterface, *peer.QueryResponseMetadata, error) {
	if err := s.fail("GetStateByPartialCompositeKeyWithPagination"); err != nil {
		return nil, nil, err
	}
	keys, err := s.prefixKeys(objectType, attrs)
	if err != nil {
		return nil, nil, err
	}
	if bookmark != "" {
		i := sort.SearchStrings(keys, bookmark)
		keys = keys[i:]
	}
	next := ""
	if len(keys) > int(pageSize) {
		next = keys[pageSize]
		keys = keys[:pageSize]
	}
	return s.iter(keys), &peer.QueryResponseMetadata{FetchedRecordsCount: int32(len(keys)), Bookmark: next}, nil
}

func (s *fakeStub) iter(keys []string) *fakeIter {
	it := &fakeIter{l: s.l}
	for _, k := range keys {
		it.kvs = append(it.kvs, &queryresult.KV{Key: k, Value: s.l.state[k]})
	}
	return it
}

func (s *fakeStub) GetHistoryForKey(key string) (shim.HistoryQueryIteratorInterface, error) {
	if err := s.fail("GetHistoryForKey"); err != nil {
		return nil, err
	}
	// Newest first, as the peer's history database returns it.
	mods := slices.Clone(s.l.history[key])
	slices.Reverse(mods)
	return &fakeHistIter{mods: mods, l: s.l}, nil
}

func (s *fakeStub) GetFunctionAndParameters() (string, []string) {
	if len(s.args) == 0 {
		return "", nil
	}
	out := make([]string, len(s.args)-1)
	for i, a := range s.args[1:] {
		out[i] = string(a)
	}
	return string(s.args[0]), out
}

func (s *fakeStub) GetArgs() [][]byte { return s.args }

// commit applies the transaction's writes in order and records history.
func (s *fakeStub) commit() {
	for _, k := range s.order {
		v := s.writes[k]
		mod := &queryresult.KeyModification{TxId: s.txID, Value: v, Timestamp: timestamppb.New(time.Unix(s.l.now, 0)), IsDelete: v == nil}
		s.l.history[k] = append(s.l.history[k], mod)
		if v == nil {
			delete(s.l.state, k)
		} else {
			s.l.state[k] = v
		}
	}
	if s.event != nil {
		s.l.events = append(s.l.events, *s.event)
	}
	s.l.rwsets = append(s.l.rwsets, rwset{reads: s.reads, ranges: s.ranges, writes: s.order})
}

// conflicts lists the keys by which a and b, run in one block, would
// invalidate one another.
func (a rwset) conflicts(b rwset) []string {
	var out []string
	touch := func(x, y rwset) {
		for _, k := range x.writes {
			inRange := slices.ContainsFunc(y.ranges, func(p string) bool { return strings.HasPrefix(k, p) })
			if y.reads[k] || slices.Contains(y.writes, k) || inRange {
				out = append(out, strings.ReplaceAll(k, "\x00", "~"))
			}
		}
	}
	touch(a, b)
	touch(b, a)
	return out
}

func (l *fakeLedger) lastRWSet() rwset { return l.rwsets[len(l.rwsets)-1] }

type fakeIter struct {
	kvs []*queryresult.KV
	i   int
	l   *fakeLedger
}

func (it *fakeIter) HasNext() bool { return it.i < len(it.kvs) }
func (it *fakeIter) Close() error  { return nil }
func (it *fakeIter) Next() (*queryresult.KV, error) {
	if err := it.l.fail("Next"); err != nil {
		return nil, err
	}
	kv := it.kvs[it.i]
	it.i++
	if it.l.garbage("Next") {
		return &queryresult.KV{Key: kv.Key, Value: []byte("{garbage")}, nil
	}
	return kv, nil
}

type fakeHistIter struct {
	mods []*queryresult.KeyModification
	i    int
	l    *fakeLedger
}

func (it *fakeHistIter) HasNext() bool { return it.i < len(it.mods) }
func (it *fakeHistIter) Close() error  { return nil }
func (it *fakeHistIter) Next() (*queryresult.KeyModification, error) {
	if err := it.l.fail("HistNext"); err != nil {
		return nil, err
	}
	m := it.mods[it.i]
	it.i++
	return m, nil
}

// fakeIdentity implements cid.ClientIdentity.
type fakeIdentity struct {
	msp   string
	name  string
	ous   []string
	attrs map[string]string
	fail  string // which getter fails
}

func (f *fakeIdentity) GetID() (string, error) {
	if f.fail == "id" {
		return "", errors.New("no id")
	}
	return base64.StdEncoding.EncodeToString([]byte("x509::CN=" + f.name + "::CN=ca." + f.msp)), nil
}

func (f *fakeIdentity) GetMSPID() (string, error) {
	if f.fail == "msp" {
		return "", errors.New("no msp")
	}
	return f.msp, nil
}

func (f *fakeIdentity) GetAttributeValue(name string) (string, bool, error) {
	v, ok := f.attrs[name]
	return v, ok, nil
}

func (f *fakeIdentity) AssertAttributeValue(name, value string) error {
	if f.attrs[name] != value {
		return fmt.Errorf("attribute %s is not %s", name, value)
	}
	return nil
}

func (f *fakeIdentity) HasOUValue(ou string) (bool, error) {
	for _, o := range f.ous {
		if o == ou {
			return true, nil
		}
	}
	return false, nil
}

func (f *fakeIdentity) GetX509Certificate() (*x509.Certificate, error) {
	if f.fail == "cert" {
		return nil, errors.New("no cert")
	}
	return &x509.Certificate{Subject: pkix.Name{CommonName: f.name, OrganizationalUnit: f.ous}}, nil
}

func (f *fakeIdentity) key() string {
	id, _ := f.GetID()
	return f.msp + "/" + id
}

// env runs contract calls as transactions on a fake ledger.
type env struct {
	t     *testing.T
	l     *fakeLedger
	cc    *Contract
	sweep bool // before each transaction, replay it with every ledger fault
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{t: t, l: newFakeLedger(), cc: New()}
}

// tx runs f as one transaction by who. On error it checks that nothing was
// written and no event was set, then drops the transaction.
func (e *env) tx(who *fakeIdentity, f func(ctx contractapi.TransactionContextInterface) error) error {
	e.t.Helper()
	if e.sweep {
		e.faultSweep(who, f)
	}
	stub := e.l.newStub()
	ctx := &contractapi.TransactionContext{}
	ctx.SetStub(stub)
	ctx.SetClientIdentity(who)
	err := f(ctx)
	if err != nil {
		if len(stub.writes) != 0 || stub.event != nil {
			e.t.Fatalf("transaction failed (%v) after writing %d keys / an event", err, len(stub.writes))
		}
		return err
	}
	stub.commit()
	return nil
}

func (e *env) lastEvent() fakeEvent {
	e.t.Helper()
	if len(e.l.events) == 0 {
		e.t.Fatal("no event")
	}
	return e.l.events[len(e.l.events)-1]
}

// ctxNoIdentity is a context whose client identity is missing.
type ctxNoIdentity struct {
	contractapi.TransactionContextInterface
}

func (ctxNoIdentity) GetClientIdentity() cid.ClientIdentity { return nil }

var faultMethods = []string{"GetTxTimestamp", "GetState", "PutState", "DelState", "SetEvent",
	"CreateCompositeKey", "SplitCompositeKey", "GetStateByPartialCompositeKey",
	"GetStateByPartialCompositeKeyWithPagination", "GetHistoryForKey", "Next", "HistNext"}

// faultSweep replays f once per possible ledger fault (each call of each
// stub method failing, each read returning garbage) without committing
// anything, and checks that every injected failure surfaces as an error.
func (e *env) faultSweep(who *fakeIdentity, f func(ctx contractapi.TransactionContextInterface) error) {
	e.t.Helper()
	run := func(ft fault) bool {
		e.l.fault, e.l.calls, e.l.triggered = &ft, map[string]int{}, false
		defer func() { e.l.fault = nil }()
		ctx := &contractapi.TransactionContext{}
		ctx.SetStub(e.l.newStub())
		ctx.SetClientIdentity(who)
		err := f(ctx)
		if e.l.triggered && !ft.garbage && err == nil {
			e.t.Fatalf("injected failure of %s call %d was swallowed", ft.method, ft.at)
		}
		return e.l.triggered
	}
	for _, m := range faultMethods {
		for k := 1; run(fault{method: m, at: k}); k++ {
		}
	}
	for _, m := range []string{"GetState", "Next"} {
		for k := 1; run(fault{method: m, at: k, garbage: true}); k++ {
		}
	}
}

// bothModes runs a scenario plainly, then again with fault sweeps.
func bothModes(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("plain", func(t *testing.T) { f(t, newEnv(t)) })
	t.Run("faults", func(t *testing.T) {
		e := newEnv(t)
		e.sweep = true
		f(t, e)
	})
}
