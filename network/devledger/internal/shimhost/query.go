package shimhost

import (
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/queryresult"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// queryIter is an open range or history query of one transaction.
type queryIter struct {
	pull    func() (*peer.QueryResultBytes, error) // nil at the end
	closeFn func()
	pending *peer.QueryResultBytes // pulled but not yet sent
	count   int                    // results pulled so far
	closed  bool
}

func (it *queryIter) close() {
	if !it.closed {
		it.closed = true
		if it.closeFn != nil {
			it.closeFn()
		}
	}
}

func marshalKV(kv *KV) (*peer.QueryResultBytes, error) {
	b, err := proto.Marshal(&queryresult.KV{Namespace: kv.Namespace, Key: kv.Key, Value: kv.Value})
	if err != nil {
		return nil, err
	}
	return &peer.QueryResultBytes{ResultBytes: b}, nil
}

func rangeIter(ri RangeIterator) *queryIter {
	return &queryIter{
		pull: func() (*peer.QueryResultBytes, error) {
			kv, err := ri.Next()
			if err != nil || kv == nil {
				return nil, err
			}
			return marshalKV(kv)
		},
		closeFn: ri.Close,
	}
}

func historyIter(mods []KeyMod) *queryIter {
	i := 0
	return &queryIter{pull: func() (*peer.QueryResultBytes, error) {
		if i >= len(mods) {
			return nil, nil
		}
		m := mods[i]
		i++
		b, err := proto.Marshal(&queryresult.KeyModification{TxId: m.TxID, Value: m.Value, Timestamp: m.Timestamp, IsDelete: m.IsDelete})
		if err != nil {
			return nil, err
		}
		return &peer.QueryResultBytes{ResultBytes: b}, nil
	}}
}

// nextBatch builds the next QueryResponse of iterator id, as
// core/chaincode/query_response_generator.go does for unpaginated queries:
// up to batchSize results; HasMore only when another result exists; at the
// end (or at totalQueryLimit results) the iterator is closed and forgotten.
// tx.mu is held.
func nextBatch(tx *txCtx, id string, it *queryIter) ([]byte, error) {
	var batch []*peer.QueryResultBytes
	for {
		if it.pending == nil {
			if it.count >= totalQueryLimit {
				break
			}
			r, err := it.pull()
			if err != nil {
				it.close()
				delete(tx.iters, id)
				return nil, err
			}
			if r == nil {
				break
			}
			it.count++
			it.pending = r
		}
		if len(batch) == batchSize {
			return proto.Marshal(&peer.QueryResponse{Results: batch, HasMore: true, Id: id})
		}
		batch = append(batch, it.pending)
		it.pending = nil
	}
	it.close()
	delete(tx.iters, id)
	return proto.Marshal(&peer.QueryResponse{Results: batch, HasMore: false, Id: id})
}
