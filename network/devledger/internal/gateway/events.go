package gateway

import (
	"sync"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// eventCacheBlocks is how many recent blocks' events eventCache keeps: event streams follow the
// ledger's head, so only a stream catching up from far back reads a block from the file again.
const eventCacheBlocks = 256

// eventCache holds the chaincode events of recent blocks, decoded once for every
// ChaincodeEvents stream: each stream reads every block, and with 1,000 agents listening each
// block was read from the file and decoded 1,000 times. Cached events are shared: read only.
type eventCache struct {
	mu     sync.Mutex
	blocks map[uint64][]*peer.ChaincodeEvent
}

// get returns block number's events, loading and decoding the block on a miss.
func (c *eventCache) get(number uint64, load func(uint64) (*common.Block, error)) ([]*peer.ChaincodeEvent, error) {
	c.mu.Lock()
	events, ok := c.blocks[number]
	c.mu.Unlock()
	if ok {
		return events, nil
	}
	block, err := load(number)
	if err != nil {
		return nil, err
	}
	events = blockEvents(block)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocks == nil {
		c.blocks = map[uint64][]*peer.ChaincodeEvent{}
	}
	c.blocks[number] = events
	if len(c.blocks) > eventCacheBlocks {
		oldest := number
		for n := range c.blocks {
			oldest = min(oldest, n)
		}
		delete(c.blocks, oldest)
	}
	return events, nil
}

// blockEvents lists the chaincode events of a block's valid transactions.
func blockEvents(block *common.Block) []*peer.ChaincodeEvent {
	var filter []byte
	if md := block.GetMetadata().GetMetadata(); len(md) > int(common.BlockMetadataIndex_TRANSACTIONS_FILTER) {
		filter = md[common.BlockMetadataIndex_TRANSACTIONS_FILTER]
	}
	var events []*peer.ChaincodeEvent
	for i, data := range block.GetData().GetData() {
		if i >= len(filter) || peer.TxValidationCode(filter[i]) != peer.TxValidationCode_VALID {
			continue
		}
		env := &common.Envelope{}
		if proto.Unmarshal(data, env) != nil {
			continue
		}
		e, bad := parseEnvelope(env)
		if bad != nil || len(e.cca.Events) == 0 {
			continue
		}
		ev := &peer.ChaincodeEvent{}
		if proto.Unmarshal(e.cca.Events, ev) == nil {
			events = append(events, ev)
		}
	}
	return events
}
