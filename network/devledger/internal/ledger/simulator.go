package ledger

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"google.golang.org/protobuf/proto"
)

// KV is one state entry returned by a range query.
type KV struct {
	Namespace, Key string
	Value          []byte
}

// RangeIterator walks a range in key order. Next returns (nil, nil) at the end.
type RangeIterator interface {
	Next() (*KV, error)
	Close()
}

// Simulator runs ONE transaction against a consistent committed snapshot and records its read-write set
// exactly as Fabric's tx simulator does (reads with versions, range query info for phantom checks, writes).
type Simulator interface {
	GetState(ns, key string) ([]byte, error)
	PutState(ns, key string, value []byte) error
	DelState(ns, key string) error
	GetStateRange(ns, start, end string) (RangeIterator, error)
	GetStateRangePage(ns, start, end string, pageSize int32, bookmark string) (RangeIterator, func() (fetched int32, nextBookmark string), error)
	GetHistoryForKey(ns, key string) ([]KeyMod, error)
	Results() ([]byte, error)
	Done()
}

// Error texts are Fabric's own (core/ledger/kvledger/txmgmt/txmgr/tx_simulator.go and query_executor.go,
// spelling included), because chaincode and clients see them.
var errAfterDone = errors.New("this instance should not be used after calling Done()")

// simulator records one transaction's reads and writes. Like Fabric's simulator it does not read its own
// writes: GetState always returns the committed value of the snapshot and records that value's version, even
// for a key the transaction has already written (txmgr/query_executor.go reads the state db only).
//
// Snapshot choice: the simulator holds an immutable copy-on-write clone of the state (see stateTree) taken at
// NewSimulator, so it never blocks a commit and a commit never blocks it; a simulation that runs long only
// risks an MVCC conflict at commit, as on Fabric. (Fabric instead holds a read lock until Done.)
type simulator struct {
	mu        sync.Mutex
	l         *Ledger
	txid      string
	snap      *stateTree
	height    uint64
	ns        map[string]*nsRW
	iters     []*rangeIter // every range iterator in creation order, as Fabric's queryExecutor.itrs
	paginated bool         // a paginated query was performed: writes are refused from now on
	wrote     bool         // a write was performed: paginated queries are refused from now on
	done      bool
	resultsOK bool
}

// nsRW is one namespace's part of the rwset (rwsetutil/rwset_builder.go, nsPubRwBuilder).
type nsRW struct {
	reads   map[string]*kvrwset.KVRead
	writes  map[string]*kvrwset.KVWrite
	rqs     []*kvrwset.RangeQueryInfo
	rqIndex map[rqKey]bool
}

// rqKey deduplicates identical range queries; the first one recorded is kept (rwset_builder.go).
type rqKey struct {
	start, end string
	exhausted  bool
}

func (s *simulator) nsFor(ns string) *nsRW {
	n := s.ns[ns]
	if n == nil {
		n = &nsRW{reads: map[string]*kvrwset.KVRead{}, writes: map[string]*kvrwset.KVWrite{}, rqIndex: map[rqKey]bool{}}
		s.ns[ns] = n
	}
	return n
}

func (s *simulator) GetState(ns, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil, errAfterDone
	}
	read := &kvrwset.KVRead{Key: key}
	var value []byte
	if e, ok := s.snap.get(ns, key); ok {
		read.Version = e.ver.proto()
		value = e.v
	}
	// A missing key is recorded with a nil version: MVCC then requires it to be still missing at commit.
	s.nsFor(ns).reads[key] = read
	return value, nil
}

func (s *simulator) PutState(ns, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errAfterDone
	}
	if s.paginated {
		return fmt.Errorf("txid [%s]: unsuppored transaction. Transaction has already performed a paginated query. Writes are not allowed", s.txid)
	}
	s.wrote = true
	// An empty value is a delete, as in rwsetutil/rwset_proto_util.go (newKVWrite).
	s.nsFor(ns).writes[key] = &kvrwset.KVWrite{Key: key, IsDelete: len(value) == 0, Value: value}
	return nil
}

func (s *simulator) DelState(ns, key string) error { return s.PutState(ns, key, nil) }

func (s *simulator) GetStateRange(ns, start, end string) (RangeIterator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil, errAfterDone
	}
	return s.newIter(ns, start, end, 0), nil
}

// GetStateRangePage is the chaincode handler's paginated range query (core/chaincode/handler.go,
// HandleGetStateByRange): a non-empty bookmark replaces the start key, at most pageSize results are returned,
// and the bookmark for the next page is the key that follows the last result ("" when the range is done).
// Like Fabric it still records range query info (the query executor does so for every range iterator).
func (s *simulator) GetStateRangePage(ns, start, end string, pageSize int32, bookmark string) (RangeIterator, func() (int32, string), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil, nil, errAfterDone
	}
	if s.wrote {
		return nil, nil, fmt.Errorf("txid [%s]: unsuppored transaction. Paginated queries are supported only in a read-only transaction", s.txid)
	}
	s.paginated = true
	if bookmark != "" {
		start = bookmark
	}
	it := s.newIter(ns, start, end, pageSize)
	return it, it.page, nil
}

func (s *simulator) GetHistoryForKey(ns, key string) ([]KeyMod, error) {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done {
		return nil, errAfterDone
	}
	// History reads are not part of the rwset (Fabric's history query executor records nothing).
	return s.l.history(ns, key, s.height), nil
}

// Results serializes the rwset: namespaces sorted, reads and writes sorted by key, range query infos in the
// order their iterators were opened (rwsetutil/rwset_builder.go). Every range iterator contributes its info
// now, as in Fabric's GetTxSimulationResults (query_executor.go addRangeQueryInfo).
func (s *simulator) Results() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resultsOK {
		return nil, errors.New("this function should only be called once on a transaction simulator instance")
	}
	s.resultsOK = true
	for _, it := range s.iters {
		raw, summary, err := it.reads.done()
		if err != nil {
			return nil, err
		}
		if raw != nil {
			it.rqi.ReadsInfo = &kvrwset.RangeQueryInfo_RawReads{RawReads: &kvrwset.QueryReads{KvReads: raw}}
		}
		if summary != nil {
			it.rqi.ReadsInfo = &kvrwset.RangeQueryInfo_ReadsMerkleHashes{ReadsMerkleHashes: summary}
		}
		n := s.nsFor(it.ns)
		k := rqKey{it.rqi.StartKey, it.rqi.EndKey, it.rqi.ItrExhausted}
		if !n.rqIndex[k] {
			n.rqIndex[k] = true
			n.rqs = append(n.rqs, it.rqi)
		}
	}
	names := make([]string, 0, len(s.ns))
	for name := range s.ns {
		names = append(names, name)
	}
	sort.Strings(names)
	txrw := &rwset.TxReadWriteSet{DataModel: rwset.TxReadWriteSet_KV}
	for _, name := range names {
		n := s.ns[name]
		kv := &kvrwset.KVRWSet{RangeQueriesInfo: n.rqs}
		for _, k := range sortedKeys(n.reads) {
			kv.Reads = append(kv.Reads, n.reads[k])
		}
		for _, k := range sortedKeys(n.writes) {
			kv.Writes = append(kv.Writes, n.writes[k])
		}
		b, err := proto.Marshal(kv)
		if err != nil {
			return nil, err
		}
		txrw.NsRwset = append(txrw.NsRwset, &rwset.NsReadWriteSet{Namespace: name, Rwset: b})
	}
	return proto.Marshal(txrw)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Done releases the snapshot. Idempotent.
func (s *simulator) Done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	s.done = true
	for _, it := range s.iters {
		it.closed = true
	}
	s.snap = nil
}

// rangeIter is a range query over the simulator's snapshot that records what it returns, like Fabric's
// resultsItr (txmgr/query_executor.go): EndKey follows the last key handed out until the range is exhausted,
// then becomes the query's end key and ItrExhausted is set; the returned (key, version) pairs feed rangeReads.
type rangeIter struct {
	s        *simulator
	ns       string
	end      string
	cursor   string // composite key to resume from (inclusive)
	hi       string // composite upper bound (exclusive)
	pageSize int32  // 0 = unlimited
	returned int32
	closed   bool
	rqi      *kvrwset.RangeQueryInfo
	reads    *rangeReads
}

func (s *simulator) newIter(ns, start, end string, pageSize int32) *rangeIter {
	if pageSize < 0 {
		pageSize = 0
	}
	lo, hi := rangeBounds(ns, start, end)
	it := &rangeIter{
		s: s, ns: ns, end: end, cursor: lo, hi: hi, pageSize: pageSize,
		rqi:   &kvrwset.RangeQueryInfo{StartKey: start},
		reads: newRangeReads(rangeMaxDegree),
	}
	s.iters = append(s.iters, it)
	return it
}

func (it *rangeIter) Next() (*KV, error) {
	s := it.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if it.closed {
		return nil, nil
	}
	var e stateEntry
	found := false
	// A page that is full behaves like an exhausted iterator (stateleveldb.go kvScanner returns nil), which is
	// also what Fabric records in the range query info.
	if it.pageSize == 0 || it.returned < it.pageSize {
		e, found = s.snap.first(it.cursor, it.hi)
	}
	if !found {
		it.rqi.ItrExhausted = true
		it.rqi.EndKey = it.end
		return nil, nil
	}
	it.cursor = e.k + "\x00" // the smallest composite key after e.k
	it.returned++
	_, key := splitCompositeKey(e.k)
	if err := it.reads.add(&kvrwset.KVRead{Key: key, Version: e.ver.proto()}); err != nil {
		return nil, err
	}
	it.rqi.EndKey = key
	return &KV{Namespace: it.ns, Key: key, Value: e.v}, nil
}

func (it *rangeIter) Close() {
	it.s.mu.Lock()
	it.closed = true
	it.s.mu.Unlock()
}

// page reports how many results this page returned and the bookmark of the next page: the next key in the
// range after the last one handed out, or "" when there is none (kvScanner.GetBookmarkAndClose).
func (it *rangeIter) page() (int32, string) {
	s := it.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil {
		return it.returned, ""
	}
	e, ok := s.snap.first(it.cursor, it.hi)
	if !ok {
		return it.returned, ""
	}
	_, key := splitCompositeKey(e.k)
	return it.returned, key
}
