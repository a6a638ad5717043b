package ledger

import "google.golang.org/protobuf/types/known/timestamppb"

// KeyMod is one history entry of a key (GetHistoryForKey), newest first.
type KeyMod struct {
	TxID      string
	Value     []byte
	Timestamp *timestamppb.Timestamp
	IsDelete  bool
}

// historyEntry records one VALID transaction's write of a key. Fabric's history database keeps only the
// (ns, key, block, tx) coordinates and re-reads the write and the channel header timestamp from the block store
// (core/ledger/kvledger/history/query_executer.go); we keep the same facts in memory, rebuilt on replay.
type historyEntry struct {
	block, tx uint64
	mod       KeyMod
}

// historyIndex maps compositeKey(ns, key) to its writes, oldest first. It is guarded by Ledger.mu; entries are
// only appended, in commit order.
type historyIndex map[string][]historyEntry

func (h historyIndex) add(ns, key string, block, tx uint64, mod KeyMod) {
	ck := compositeKey(ns, key)
	h[ck] = append(h[ck], historyEntry{block: block, tx: tx, mod: mod})
}

// query returns the writes committed in blocks below height, newest first: Fabric v2+ returns history in
// reverse chronological order (the history iterator walks its index backwards).
func (h historyIndex) query(ns, key string, height uint64) []KeyMod {
	entries := h[compositeKey(ns, key)]
	out := make([]KeyMod, 0, len(entries))
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].block < height {
			out = append(out, entries[i].mod)
		}
	}
	return out
}
