package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// headerHash is Fabric's block hash: SHA-256 of the DER encoding of the SEQUENCE {number INTEGER,
// previous_hash OCTET STRING, data_hash OCTET STRING} (protoutil/blockutils.go, BlockHeaderBytes). The next
// block's PreviousHash and BlockchainInfo.CurrentBlockHash are this value.
func headerHash(h *common.BlockHeader) []byte {
	der, err := asn1.Marshal(struct {
		Number       *big.Int
		PreviousHash []byte
		DataHash     []byte
	}{new(big.Int).SetUint64(h.Number), h.PreviousHash, h.DataHash})
	if err != nil {
		panic(err) // only fixed, encodable types
	}
	s := sha256.Sum256(der)
	return s[:]
}

// dataHash is SHA-256 over the concatenated envelope bytes (protoutil/blockutils.go, ComputeBlockDataHash).
func dataHash(d *common.BlockData) []byte {
	s := sha256.Sum256(bytes.Join(d.Data, nil))
	return s[:]
}

// newBlock assembles a block as an orderer+committer pair would leave it in a peer's block store. Metadata has
// one slot per BlockMetadataIndex (protoutil.NewBlock):
//   - SIGNATURES: Metadata{value: OrdererBlockMetadata{last_config}} with no signatures (there is no orderer
//     identity; orderer/common/multichannel/blockwriter.go writes the same value plus a signature);
//   - LAST_CONFIG: Metadata{value: LastConfig{index}} (deprecated but still written by the block writer);
//   - TRANSACTIONS_FILTER: raw bytes, one TxValidationCode per transaction (internal/pkg/txflags);
//   - ORDERER, COMMIT_HASH: empty.
func newBlock(number uint64, prev []byte, envs [][]byte, codes []peer.TxValidationCode) *common.Block {
	data := &common.BlockData{Data: envs}
	filter := make([]byte, len(codes))
	for i, c := range codes {
		filter[i] = byte(c)
	}
	lastConfig := &common.LastConfig{Index: 0} // block 0 is the only config block
	md := make([][]byte, len(common.BlockMetadataIndex_name))
	md[common.BlockMetadataIndex_SIGNATURES] = mustMarshal(&common.Metadata{
		Value: mustMarshal(&common.OrdererBlockMetadata{LastConfig: lastConfig}),
	})
	md[common.BlockMetadataIndex_LAST_CONFIG] = mustMarshal(&common.Metadata{Value: mustMarshal(lastConfig)})
	md[common.BlockMetadataIndex_TRANSACTIONS_FILTER] = filter
	for i := range md {
		if md[i] == nil {
			md[i] = []byte{}
		}
	}
	return &common.Block{
		Header:   &common.BlockHeader{Number: number, PreviousHash: prev, DataHash: dataHash(data)},
		Data:     data,
		Metadata: &common.BlockMetadata{Metadata: md},
	}
}

// genesisEnvelope is block 0's only transaction: a CONFIG envelope for the channel whose data is an empty
// ConfigEnvelope. Clients that read block 0 find the channel id and a config transaction where Fabric has one.
func genesisEnvelope(channel string) []byte {
	chdr := &common.ChannelHeader{
		Type:      int32(common.HeaderType_CONFIG),
		ChannelId: channel,
		Timestamp: timestamppb.New(time.Now().UTC().Truncate(time.Second)),
	}
	payload := &common.Payload{
		Header: &common.Header{ChannelHeader: mustMarshal(chdr), SignatureHeader: mustMarshal(&common.SignatureHeader{})},
		Data:   mustMarshal(&common.ConfigEnvelope{}),
	}
	return mustMarshal(&common.Envelope{Payload: mustMarshal(payload)})
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// txFilter reads TRANSACTIONS_FILTER and checks it has one code per transaction.
func txFilter(b *common.Block) ([]byte, error) {
	md := b.GetMetadata().GetMetadata()
	if len(md) <= int(common.BlockMetadataIndex_TRANSACTIONS_FILTER) {
		return nil, fmt.Errorf("block %d has no TRANSACTIONS_FILTER metadata", b.GetHeader().GetNumber())
	}
	f := md[common.BlockMetadataIndex_TRANSACTIONS_FILTER]
	if len(f) != len(b.GetData().GetData()) {
		return nil, fmt.Errorf("block %d: TRANSACTIONS_FILTER has %d codes for %d transactions",
			b.GetHeader().GetNumber(), len(f), len(b.GetData().GetData()))
	}
	return f, nil
}
