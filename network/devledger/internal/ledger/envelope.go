package ledger

import (
	"fmt"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// channelHeaderOf unmarshals an envelope's payload and channel header.
func channelHeaderOf(env *common.Envelope) (*common.Payload, *common.ChannelHeader, error) {
	if env == nil {
		return nil, nil, fmt.Errorf("nil envelope")
	}
	payload := &common.Payload{}
	if err := proto.Unmarshal(env.Payload, payload); err != nil {
		return nil, nil, fmt.Errorf("unmarshal payload: %w", err)
	}
	if payload.Header == nil {
		return nil, nil, fmt.Errorf("payload has no header")
	}
	chdr := &common.ChannelHeader{}
	if err := proto.Unmarshal(payload.Header.ChannelHeader, chdr); err != nil {
		return nil, nil, fmt.Errorf("unmarshal channel header: %w", err)
	}
	return payload, chdr, nil
}

// ParseEndorserTx extracts the transaction id, channel header and public read-write set of an endorser
// transaction envelope. The nesting is Fabric's (see protoutil/txutils.go and
// core/ledger/kvledger/history/query_executer.go, which walk the same path):
// Envelope.payload -> Payload{header, data} -> Transaction.actions[0].payload -> ChaincodeActionPayload
// .action.proposal_response_payload -> ProposalResponsePayload.extension -> ChaincodeAction.results
// -> TxReadWriteSet. Fabric accepts exactly one action per transaction (core/common/validation/msgvalidation.go).
func ParseEndorserTx(env *common.Envelope) (txid string, chdr *common.ChannelHeader, rws *rwset.TxReadWriteSet, err error) {
	payload, chdr, err := channelHeaderOf(env)
	if err != nil {
		return "", nil, nil, err
	}
	txid = chdr.TxId
	if common.HeaderType(chdr.Type) != common.HeaderType_ENDORSER_TRANSACTION {
		return txid, chdr, nil, fmt.Errorf("txid [%s]: header type %s is not ENDORSER_TRANSACTION",
			txid, common.HeaderType(chdr.Type))
	}
	tx := &peer.Transaction{}
	if err := proto.Unmarshal(payload.Data, tx); err != nil {
		return txid, chdr, nil, fmt.Errorf("txid [%s]: unmarshal transaction: %w", txid, err)
	}
	if len(tx.Actions) != 1 {
		return txid, chdr, nil, fmt.Errorf("txid [%s]: transaction has %d actions, want exactly 1", txid, len(tx.Actions))
	}
	cap := &peer.ChaincodeActionPayload{}
	if err := proto.Unmarshal(tx.Actions[0].Payload, cap); err != nil {
		return txid, chdr, nil, fmt.Errorf("txid [%s]: unmarshal chaincode action payload: %w", txid, err)
	}
	if cap.Action == nil {
		return txid, chdr, nil, fmt.Errorf("txid [%s]: chaincode action payload has no action", txid)
	}
	prp := &peer.ProposalResponsePayload{}
	if err := proto.Unmarshal(cap.Action.ProposalResponsePayload, prp); err != nil {
		return txid, chdr, nil, fmt.Errorf("txid [%s]: unmarshal proposal response payload: %w", txid, err)
	}
	ca := &peer.ChaincodeAction{}
	if err := proto.Unmarshal(prp.Extension, ca); err != nil {
		return txid, chdr, nil, fmt.Errorf("txid [%s]: unmarshal chaincode action: %w", txid, err)
	}
	rws = &rwset.TxReadWriteSet{}
	if err := proto.Unmarshal(ca.Results, rws); err != nil {
		return txid, chdr, nil, fmt.Errorf("txid [%s]: unmarshal read-write set: %w", txid, err)
	}
	return txid, chdr, rws, nil
}
