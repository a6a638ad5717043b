package ledger

import (
	"strings"

	"github.com/google/btree"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
)

// Version is the height of the transaction that last wrote a key: the block number and the transaction's index
// in that block. It is what Fabric records in a read set (kvrwset.Version; core/ledger/internal/version/version.go
// calls it a Height) and what MVCC validation compares.
type Version struct {
	BlockNum uint64
	TxNum    uint64
}

func (v Version) proto() *kvrwset.Version {
	return &kvrwset.Version{BlockNum: v.BlockNum, TxNum: v.TxNum}
}

// sameVersion compares a read-set version (nil = "the key did not exist") with a committed one.
func sameVersion(read *kvrwset.Version, committed *Version) bool {
	if read == nil || committed == nil {
		return read == nil && committed == nil
	}
	return read.BlockNum == committed.BlockNum && read.TxNum == committed.TxNum
}

// stateEntry is one live key of the world state. Deleted keys are removed from the tree, as Fabric's LevelDB
// state database removes them (core/ledger/kvledger/txmgmt/statedb/stateleveldb).
type stateEntry struct {
	k   string // compositeKey(ns, key)
	v   []byte
	ver Version
}

// compositeKey orders keys as Fabric's LevelDB state does (ns, 0x00, key), so that a range inside a namespace
// is one contiguous interval and "" as end key means "up to ns+0x01" (stateleveldb.go, lastKeyIndicator).
func compositeKey(ns, key string) string { return ns + "\x00" + key }

func splitCompositeKey(ck string) (ns, key string) {
	i := strings.IndexByte(ck, 0)
	return ck[:i], ck[i+1:]
}

// rangeBounds gives the composite interval [lo, hi) for a range query [start, end) in ns.
func rangeBounds(ns, start, end string) (lo, hi string) {
	lo = compositeKey(ns, start)
	if end == "" {
		return lo, ns + "\x01"
	}
	return lo, compositeKey(ns, end)
}

func lessEntry(a, b stateEntry) bool { return a.k < b.k }

// stateTree is the world state. The committer owns one mutable tree; after each block it publishes a Clone of
// it. google/btree's Clone is a lazy copy-on-write: the published tree shares nodes with the committer's tree,
// and the committer's later writes copy nodes instead of changing shared ones. A published tree is therefore an
// immutable snapshot that simulators can read without any lock while the next block is being committed.
type stateTree struct{ t *btree.BTreeG[stateEntry] }

func newStateTree() *stateTree { return &stateTree{btree.NewG(32, lessEntry)} }

func (s *stateTree) clone() *stateTree { return &stateTree{s.t.Clone()} }

func (s *stateTree) get(ns, key string) (stateEntry, bool) {
	return s.t.Get(stateEntry{k: compositeKey(ns, key)})
}

func (s *stateTree) put(ns, key string, value []byte, ver Version) {
	s.t.ReplaceOrInsert(stateEntry{k: compositeKey(ns, key), v: value, ver: ver})
}

func (s *stateTree) del(ns, key string) { s.t.Delete(stateEntry{k: compositeKey(ns, key)}) }

// first returns the first live entry with composite key in [from, hi).
func (s *stateTree) first(from, hi string) (stateEntry, bool) {
	var out stateEntry
	found := false
	s.t.AscendRange(stateEntry{k: from}, stateEntry{k: hi}, func(e stateEntry) bool {
		out, found = e, true
		return false
	})
	return out, found
}

// each calls fn for every entry, in key order.
func (s *stateTree) each(fn func(ns, key string, value []byte, ver Version)) {
	s.t.Ascend(func(e stateEntry) bool {
		ns, key := splitCompositeKey(e.k)
		fn(ns, key, e.v, e.ver)
		return true
	})
}
