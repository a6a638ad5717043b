package ledger

import (
	"bytes"
	"crypto/sha256"

	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"google.golang.org/protobuf/proto"
)

// rangeMaxDegree is the fan-out Fabric's simulator uses when it summarises a long range query
// (maxDegreeQueryReadsHashing in core/ledger/kvledger/txmgmt/txmgr/query_executor.go; hashing is always on).
// Up to this many results are recorded as raw KVReads; beyond it the reads become a Merkle summary, so the
// endorsed rwset bytes stay identical to a Fabric peer's.
const rangeMaxDegree = 50

// rangeReads accumulates the (key, version) results of one range query the way Fabric's RangeQueryResultsHelper
// does (core/ledger/kvledger/txmgmt/rwsetutil/query_results_helper.go): results are buffered; whenever more than
// maxDegree are pending, their serialized QueryReads is hashed (SHA-256) into a leaf of a Merkle tree whose
// levels are collapsed the same way (a level with more than maxDegree hashes becomes one hash of the level
// above). It is used both when simulating and when re-checking a range at commit (phantom validation).
type rangeReads struct {
	maxDegree uint32
	pending   []*kvrwset.KVRead
	levels    map[uint32][][]byte // level 1 = hashes of batches of reads
	maxLevel  uint32
}

func newRangeReads(maxDegree uint32) *rangeReads {
	return &rangeReads{maxDegree: maxDegree, levels: map[uint32][][]byte{}, maxLevel: 1}
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func combine(hashes [][]byte) []byte { return sha(bytes.Join(hashes, nil)) }

func (r *rangeReads) add(read *kvrwset.KVRead) error {
	r.pending = append(r.pending, read)
	if uint32(len(r.pending)) > r.maxDegree {
		return r.flush()
	}
	return nil
}

// flush hashes the pending reads into a new leaf and collapses every level that grew past maxDegree.
func (r *rangeReads) flush() error {
	b, err := proto.Marshal(&kvrwset.QueryReads{KvReads: r.pending})
	if err != nil {
		return err
	}
	r.pending = nil
	r.levels[1] = append(r.levels[1], sha(b))
	for lvl := uint32(1); uint32(len(r.levels[lvl])) > r.maxDegree; lvl++ {
		h := combine(r.levels[lvl])
		delete(r.levels, lvl)
		r.levels[lvl+1] = append(r.levels[lvl+1], h)
		if lvl+1 > r.maxLevel {
			r.maxLevel = lvl + 1
		}
	}
	return nil
}

func (r *rangeReads) treeEmpty() bool { return r.maxLevel == 1 && len(r.levels[1]) == 0 }

// done returns either the raw reads (at most maxDegree results; nil when there were none) or, when hashing
// happened, a Merkle summary. Call once.
func (r *rangeReads) done() ([]*kvrwset.KVRead, *kvrwset.QueryReadsMerkleSummary, error) {
	if r.treeEmpty() {
		return r.pending, nil, nil
	}
	if len(r.pending) > 0 {
		if err := r.flush(); err != nil {
			return nil, nil, err
		}
	}
	// Carry the incomplete lower levels up to the top level, then collapse the top if it is too wide.
	for lvl := uint32(1); lvl < r.maxLevel; lvl++ {
		hs := r.levels[lvl]
		if len(hs) == 0 {
			continue
		}
		h := hs[0]
		if len(hs) > 1 {
			h = combine(hs)
		}
		delete(r.levels, lvl)
		r.levels[lvl+1] = append(r.levels[lvl+1], h)
	}
	if top := r.levels[r.maxLevel]; uint32(len(top)) > r.maxDegree {
		delete(r.levels, r.maxLevel)
		r.maxLevel++
		r.levels[r.maxLevel] = [][]byte{combine(top)}
	}
	return nil, &kvrwset.QueryReadsMerkleSummary{
		MaxDegree:      r.maxDegree,
		MaxLevel:       r.maxLevel,
		MaxLevelHashes: r.levels[r.maxLevel],
	}, nil
}

func summariesEqual(a, b *kvrwset.QueryReadsMerkleSummary) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.MaxDegree != b.MaxDegree || a.MaxLevel != b.MaxLevel || len(a.MaxLevelHashes) != len(b.MaxLevelHashes) {
		return false
	}
	for i := range a.MaxLevelHashes {
		if !bytes.Equal(a.MaxLevelHashes[i], b.MaxLevelHashes[i]) {
			return false
		}
	}
	return true
}
