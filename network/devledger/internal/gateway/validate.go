package gateway

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"

	"github.com/fedcommittee/fedcommittee/network/devledger/internal/msp"
)

// envelope is a submitted endorser transaction taken apart.
type envelope struct {
	env    *common.Envelope
	chdr   *common.ChannelHeader
	shdr   *common.SignatureHeader
	header *common.Header
	action *peer.ChaincodeEndorsedAction
	cpp    []byte // ChaincodeProposalPayload bytes as they are in the transaction
	cca    *peer.ChaincodeAction
}

// invalid is a validation failure: the code recorded in the block and why, for the log.
type invalid struct {
	code   peer.TxValidationCode
	reason string
}

func (e *invalid) Error() string { return fmt.Sprintf("%s: %s", e.code, e.reason) }

func fail(code peer.TxValidationCode, format string, args ...any) *invalid {
	return &invalid{code, fmt.Sprintf(format, args...)}
}

// parseEnvelope unpacks an endorser transaction (fabric core/common/validation/msgvalidation.go).
func parseEnvelope(env *common.Envelope) (*envelope, *invalid) {
	if env == nil || len(env.Payload) == 0 {
		return nil, fail(peer.TxValidationCode_NIL_ENVELOPE, "nil envelope")
	}
	payload := &common.Payload{}
	if err := proto.Unmarshal(env.Payload, payload); err != nil {
		return nil, fail(peer.TxValidationCode_BAD_PAYLOAD, "payload: %v", err)
	}
	if payload.Header == nil {
		return nil, fail(peer.TxValidationCode_BAD_COMMON_HEADER, "no header")
	}
	chdr, shdr := &common.ChannelHeader{}, &common.SignatureHeader{}
	if proto.Unmarshal(payload.Header.ChannelHeader, chdr) != nil || proto.Unmarshal(payload.Header.SignatureHeader, shdr) != nil {
		return nil, fail(peer.TxValidationCode_BAD_COMMON_HEADER, "channel or signature header unreadable")
	}
	if common.HeaderType(chdr.Type) != common.HeaderType_ENDORSER_TRANSACTION {
		return nil, fail(peer.TxValidationCode_UNKNOWN_TX_TYPE, "header type %s", common.HeaderType(chdr.Type))
	}
	tx := &peer.Transaction{}
	if err := proto.Unmarshal(payload.Data, tx); err != nil || len(tx.Actions) != 1 {
		return nil, fail(peer.TxValidationCode_BAD_PAYLOAD, "a transaction with exactly one action is expected")
	}
	if !bytes.Equal(tx.Actions[0].Header, payload.Header.SignatureHeader) {
		return nil, fail(peer.TxValidationCode_BAD_PAYLOAD, "the action's header is not the transaction's signature header")
	}
	cap := &peer.ChaincodeActionPayload{}
	if err := proto.Unmarshal(tx.Actions[0].Payload, cap); err != nil || cap.Action == nil {
		return nil, fail(peer.TxValidationCode_BAD_PAYLOAD, "chaincode action payload unreadable")
	}
	prp := &peer.ProposalResponsePayload{}
	cca := &peer.ChaincodeAction{}
	if proto.Unmarshal(cap.Action.ProposalResponsePayload, prp) != nil || proto.Unmarshal(prp.Extension, cca) != nil {
		return nil, fail(peer.TxValidationCode_BAD_RESPONSE_PAYLOAD, "proposal response payload unreadable")
	}
	h := sha256.New()
	h.Write(payload.Header.ChannelHeader)
	h.Write(payload.Header.SignatureHeader)
	h.Write(cap.ChaincodeProposalPayload)
	if !bytes.Equal(h.Sum(nil), prp.ProposalHash) {
		return nil, fail(peer.TxValidationCode_BAD_RESPONSE_PAYLOAD, "the endorsed proposal hash does not match the transaction")
	}
	return &envelope{env: env, chdr: chdr, shdr: shdr, header: payload.Header, action: cap.Action, cpp: cap.ChaincodeProposalPayload, cca: cca}, nil
}

// Validate is the peer's per-transaction check at commit (fabric core/committer/txvalidator and
// the built-in validation plugin): the creator's signature, the txid, the chaincode, and the
// endorsement policy over endorsements signed by each org's peer. The ledger then checks
// duplicates, MVCC and phantom reads.
func (n *Network) Validate(env *common.Envelope) (string, peer.TxValidationCode, *rwset.TxReadWriteSet) {
	e, bad := parseEnvelope(env)
	if bad != nil {
		n.Logf("commit: transaction invalid: %v", bad)
		return "", bad.code, nil // the ledger reads the txid itself where the header is readable
	}
	rws, bad := n.validateParsed(e)
	if bad != nil {
		n.Logf("commit: transaction %s invalid: %v", short(e.chdr.TxId), bad)
		return e.chdr.TxId, bad.code, nil
	}
	return e.chdr.TxId, peer.TxValidationCode_VALID, rws
}

func (n *Network) validateParsed(e *envelope) (*rwset.TxReadWriteSet, *invalid) {
	if e.chdr.ChannelId != n.Channel {
		return nil, fail(peer.TxValidationCode_TARGET_CHAIN_NOT_FOUND, "channel %q", e.chdr.ChannelId)
	}
	creator, err := n.MSP.Deserialize(e.shdr.Creator)
	if err != nil {
		return nil, fail(peer.TxValidationCode_BAD_CREATOR_SIGNATURE, "creator: %v", err)
	}
	if err := creator.Verify(e.env.Payload, e.env.Signature); err != nil {
		return nil, fail(peer.TxValidationCode_BAD_CREATOR_SIGNATURE, "envelope signature: %v", err)
	}
	if computeTxID(e.shdr.Nonce, e.shdr.Creator) != e.chdr.TxId {
		return nil, fail(peer.TxValidationCode_BAD_PROPOSAL_TXID, "txid is not hex(SHA-256(nonce || creator))")
	}
	if e.cca.ChaincodeId.GetName() != n.Chaincode {
		return nil, fail(peer.TxValidationCode_INVALID_CHAINCODE, "chaincode %q", e.cca.ChaincodeId.GetName())
	}
	if s := e.cca.Response.GetStatus(); s < 200 || s >= 400 {
		return nil, fail(peer.TxValidationCode_INVALID_OTHER_REASON, "the endorsed response has status %d", s)
	}
	if err := n.checkEndorsements(e.action); err != nil {
		return nil, fail(peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE, "%v", err)
	}
	rws := &rwset.TxReadWriteSet{}
	if err := proto.Unmarshal(e.cca.Results, rws); err != nil {
		return nil, fail(peer.TxValidationCode_BAD_RWSET, "%v", err)
	}
	return rws, nil
}

// checkEndorsements evaluates the majority policy: endorsements by distinct orgs' peers, each
// signature over the response payload followed by the endorser's identity.
func (n *Network) checkEndorsements(a *peer.ChaincodeEndorsedAction) error {
	orgs := map[string]bool{}
	for _, end := range a.Endorsements {
		id, err := n.MSP.Deserialize(end.Endorser)
		if err != nil {
			return fmt.Errorf("endorser identity: %w", err)
		}
		msg := append(append([]byte{}, a.ProposalResponsePayload...), end.Endorser...)
		if err := id.Verify(msg, end.Signature); err != nil {
			return fmt.Errorf("endorsement by %s: %w", id.MSPID, err)
		}
		if id.Role == msp.RolePeer {
			orgs[id.MSPID] = true
		}
	}
	if len(orgs) < n.majority() {
		return fmt.Errorf("signature set did not satisfy policy: %d of %d orgs' peers endorsed, the majority policy needs %d", len(orgs), len(n.Orgs), n.majority())
	}
	return nil
}
