package ledger

import (
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// parseKVRWSets unmarshals every namespace's KVRWSet of a transaction's rwset.
func parseKVRWSets(rws *rwset.TxReadWriteSet) ([]string, []*kvrwset.KVRWSet, error) {
	var names []string
	var sets []*kvrwset.KVRWSet
	for _, ns := range rws.GetNsRwset() {
		kv := &kvrwset.KVRWSet{}
		if err := proto.Unmarshal(ns.Rwset, kv); err != nil {
			return nil, nil, err
		}
		names = append(names, ns.Namespace)
		sets = append(sets, kv)
	}
	return names, sets, nil
}

// blockView is the state a transaction is validated against: the committed state plus the writes of the
// earlier VALID transactions of the same block (the committer's working tree), and the set of keys those
// transactions wrote.
type blockView struct {
	state   *stateTree
	updated map[string]bool // compositeKey -> written earlier in this block
}

// mvccCheck applies Fabric's state-based validation to one transaction
// (core/ledger/kvledger/txmgmt/validation/validator.go, validateTx), namespace by namespace in rwset order:
//   - every read: if an earlier valid tx of this block wrote the key, MVCC_READ_CONFLICT; else the read
//     version (nil = absent) must equal the committed version;
//   - every range query: re-run over the same view and compare (phantom check), else PHANTOM_READ_CONFLICT.
func (v *blockView) mvccCheck(names []string, sets []*kvrwset.KVRWSet) peer.TxValidationCode {
	for i, ns := range names {
		for _, r := range sets[i].Reads {
			if v.updated[compositeKey(ns, r.Key)] {
				return peer.TxValidationCode_MVCC_READ_CONFLICT
			}
			var committed *Version
			if e, ok := v.state.get(ns, r.Key); ok {
				committed = &e.ver
			}
			if !sameVersion(r.Version, committed) {
				return peer.TxValidationCode_MVCC_READ_CONFLICT
			}
		}
		for _, rqi := range sets[i].RangeQueriesInfo {
			if !v.rangeStillSame(ns, rqi) {
				return peer.TxValidationCode_PHANTOM_READ_CONFLICT
			}
		}
	}
	return peer.TxValidationCode_VALID
}

// rangeStillSame re-executes a recorded range query the way Fabric's combined iterator does
// (validation/combined_iterator.go and rangequery_validator.go): [StartKey, EndKey) over the view, plus EndKey
// itself when the simulation had not exhausted the iterator (EndKey is then the last key it returned). The
// results must match the recorded raw reads key for key and version for version, or rebuild the same Merkle
// summary when the simulation recorded hashes.
func (v *blockView) rangeStillSame(ns string, rqi *kvrwset.RangeQueryInfo) bool {
	var results []*kvrwset.KVRead
	lo, hi := rangeBounds(ns, rqi.StartKey, rqi.EndKey)
	v.state.t.AscendRange(stateEntry{k: lo}, stateEntry{k: hi}, func(e stateEntry) bool {
		_, key := splitCompositeKey(e.k)
		results = append(results, &kvrwset.KVRead{Key: key, Version: e.ver.proto()})
		return true
	})
	if !rqi.ItrExhausted {
		if e, ok := v.state.get(ns, rqi.EndKey); ok {
			results = append(results, &kvrwset.KVRead{Key: rqi.EndKey, Version: e.ver.proto()})
		}
	}
	if want := rqi.GetReadsMerkleHashes(); want != nil {
		rr := newRangeReads(want.MaxDegree)
		if want.MaxDegree < 2 {
			return false // Fabric refuses such a tree (newMerkleTree)
		}
		for _, r := range results {
			if err := rr.add(r); err != nil {
				return false
			}
		}
		_, got, err := rr.done()
		return err == nil && summariesEqual(want, got)
	}
	want := rqi.GetRawReads().GetKvReads()
	if len(want) != len(results) {
		return false
	}
	for i, r := range want {
		if r.Key != results[i].Key || !sameVersion(r.Version, &Version{results[i].Version.BlockNum, results[i].Version.TxNum}) {
			return false
		}
	}
	return true
}

// apply writes a VALID transaction's writes into the view with version {block, tx}.
func (v *blockView) apply(names []string, sets []*kvrwset.KVRWSet, ver Version) {
	for i, ns := range names {
		for _, w := range sets[i].Writes {
			v.updated[compositeKey(ns, w.Key)] = true
			applyWrite(v.state, ns, w, ver)
		}
	}
}

// applyWrite treats a write with IsDelete or an empty value as a delete (rwsetutil.IsKVWriteDelete, FAB-18386).
func applyWrite(st *stateTree, ns string, w *kvrwset.KVWrite, ver Version) {
	if w.IsDelete || len(w.Value) == 0 {
		st.del(ns, w.Key)
		return
	}
	st.put(ns, w.Key, w.Value, ver)
}
