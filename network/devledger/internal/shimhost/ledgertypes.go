package shimhost

// TEMPORARY: the ledger package (internal/ledger) does not declare its
// Simulator yet. These declarations match /tmp/devledger-spec.md exactly and
// will become aliases of the ledger package's types as soon as it lands.

import "google.golang.org/protobuf/types/known/timestamppb"

// KV is one state entry returned by a range query.
type KV struct {
	Namespace, Key string
	Value          []byte
}

// KeyMod is one history entry of a key (GetHistoryForKey), newest first.
type KeyMod struct {
	TxID      string
	Value     []byte
	Timestamp *timestamppb.Timestamp
	IsDelete  bool
}

// RangeIterator walks a range in key order. Next returns (nil, nil) at the end.
type RangeIterator interface {
	Next() (*KV, error)
	Close()
}

// Simulator is the ledger's transaction simulator (see the spec).
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
