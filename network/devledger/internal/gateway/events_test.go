package gateway

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

func marshalled(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventEnvelope is an endorser transaction carrying one chaincode event named name.
func eventEnvelope(t *testing.T, name string) []byte {
	chdr := marshalled(t, &common.ChannelHeader{Type: int32(common.HeaderType_ENDORSER_TRANSACTION), TxId: name})
	shdr := marshalled(t, &common.SignatureHeader{Nonce: []byte(name)})
	cpp := []byte("proposal payload " + name)
	hash := sha256.Sum256(append(append(append([]byte{}, chdr...), shdr...), cpp...))
	cca := marshalled(t, &peer.ChaincodeAction{Events: marshalled(t, &peer.ChaincodeEvent{ChaincodeId: "cc", TxId: name, EventName: name})})
	prp := marshalled(t, &peer.ProposalResponsePayload{ProposalHash: hash[:], Extension: cca})
	action := marshalled(t, &peer.ChaincodeActionPayload{ChaincodeProposalPayload: cpp, Action: &peer.ChaincodeEndorsedAction{ProposalResponsePayload: prp}})
	tx := marshalled(t, &peer.Transaction{Actions: []*peer.TransactionAction{{Header: shdr, Payload: action}}})
	payload := marshalled(t, &common.Payload{Header: &common.Header{ChannelHeader: chdr, SignatureHeader: shdr}, Data: tx})
	return marshalled(t, &common.Envelope{Payload: payload})
}

// A block: one valid transaction with an event, then an invalid one whose event must not show.
func eventBlock(t *testing.T, number uint64) *common.Block {
	filter := []byte{byte(peer.TxValidationCode_VALID), byte(peer.TxValidationCode_MVCC_READ_CONFLICT)}
	return &common.Block{
		Header:   &common.BlockHeader{Number: number},
		Data:     &common.BlockData{Data: [][]byte{eventEnvelope(t, fmt.Sprintf("ok-%d", number)), eventEnvelope(t, "invalid")}},
		Metadata: &common.BlockMetadata{Metadata: [][]byte{nil, nil, filter}},
	}
}

// Every stream reads every block as it commits: the cache decodes each block once, keeps the
// valid transactions' events only, and forgets the oldest block beyond its bound.
func TestEventCacheDecodesEachBlockOnce(t *testing.T) {
	loads := map[uint64]int{}
	load := func(n uint64) (*common.Block, error) {
		loads[n]++
		return eventBlock(t, n), nil
	}
	var c eventCache
	for n := range uint64(eventCacheBlocks + 1) {
		for range 3 { // three streams following the head
			events, err := c.get(n, load)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 1 || events[0].EventName != fmt.Sprintf("ok-%d", n) {
				t.Fatalf("block %d events = %v", n, events)
			}
		}
		if loads[n] != 1 {
			t.Fatalf("block %d loaded %d times", n, loads[n])
		}
	}
	if len(c.blocks) != eventCacheBlocks || c.blocks[0] != nil {
		t.Fatalf("cache holds %d blocks (bound %d), block 0 evicted: %v", len(c.blocks), eventCacheBlocks, c.blocks[0] == nil)
	}
	if _, err := c.get(0, load); err != nil || loads[0] != 2 { // a stream catching up reads it again
		t.Fatalf("block 0 after eviction: %v, loaded %d times", err, loads[0])
	}
	if _, err := c.get(9999, func(uint64) (*common.Block, error) { return nil, fmt.Errorf("no block 9999") }); err == nil {
		t.Fatal("a block that cannot be read gave no error")
	}
}
