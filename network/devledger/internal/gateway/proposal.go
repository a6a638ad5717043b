package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	mspproto "github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"

	"github.com/fedcommittee/fedcommittee/network/devledger/internal/msp"
)

// proposal is a signed proposal taken apart, with the hash its endorsements sign over.
// The rules follow the endorser's unpacking (fabric core/endorser/msgvalidation.go).
type proposal struct {
	signed    *peer.SignedProposal
	header    *common.Header
	chdr      *common.ChannelHeader
	shdr      *common.SignatureHeader
	chaincode string
	input     *peer.ChaincodeInput
	// payloadForTx is the chaincode proposal payload without its transient map: what goes into the
	// transaction, so transient data is never written to a block.
	payloadForTx []byte
	hash         []byte
	hasTransient bool
}

func (p *proposal) txid() string { return p.chdr.GetTxId() }

// unmarshal parses b into msg; the error names the message type, as the endorser's does.
func unmarshal(b []byte, msg proto.Message) error {
	if err := proto.Unmarshal(b, msg); err != nil {
		return fmt.Errorf("error unmarshalling %s: %w", msg.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

// unpackProposal parses a signed proposal. Errors read like the endorser's, which the gateway
// reports as InvalidArgument ("failed to unpack transaction proposal: ...").
func unpackProposal(sp *peer.SignedProposal) (*proposal, error) {
	if len(sp.GetProposalBytes()) == 0 {
		return nil, errors.New("a signed proposal is required")
	}
	prop := &peer.Proposal{}
	if err := unmarshal(sp.ProposalBytes, prop); err != nil {
		return nil, err
	}
	hdr := &common.Header{}
	if err := unmarshal(prop.Header, hdr); err != nil {
		return nil, err
	}
	chdr := &common.ChannelHeader{}
	if err := unmarshal(hdr.ChannelHeader, chdr); err != nil {
		return nil, err
	}
	shdr := &common.SignatureHeader{}
	if err := unmarshal(hdr.SignatureHeader, shdr); err != nil {
		return nil, err
	}
	ext := &peer.ChaincodeHeaderExtension{}
	if err := unmarshal(chdr.Extension, ext); err != nil {
		return nil, err
	}
	if ext.ChaincodeId == nil {
		return nil, errors.New("ChaincodeHeaderExtension.ChaincodeId is nil")
	}
	if ext.ChaincodeId.Name == "" {
		return nil, errors.New("ChaincodeHeaderExtension.ChaincodeId.Name is empty")
	}
	cpp := &peer.ChaincodeProposalPayload{}
	if err := unmarshal(prop.Payload, cpp); err != nil {
		return nil, err
	}
	cis := &peer.ChaincodeInvocationSpec{}
	if err := unmarshal(cpp.Input, cis); err != nil {
		return nil, err
	}
	if cis.ChaincodeSpec == nil {
		return nil, errors.New("chaincode invocation spec did not contain chaincode spec")
	}
	if cis.ChaincodeSpec.Input == nil {
		return nil, errors.New("chaincode input did not contain any input")
	}
	forTx, err := proto.Marshal(&peer.ChaincodeProposalPayload{Input: cpp.Input})
	if err != nil {
		return nil, fmt.Errorf("could not marshal non-transient portion of payload: %w", err)
	}
	h := sha256.New()
	h.Write(hdr.ChannelHeader)
	h.Write(hdr.SignatureHeader)
	h.Write(forTx)
	return &proposal{
		signed: sp, header: hdr, chdr: chdr, shdr: shdr,
		chaincode: ext.ChaincodeId.Name, input: cis.ChaincodeSpec.Input,
		payloadForTx: forTx, hash: h.Sum(nil), hasTransient: len(cpp.TransientMap) > 0,
	}, nil
}

// computeTxID is Fabric's transaction id rule: hex(SHA-256(nonce || creator)).
func computeTxID(nonce, creator []byte) string {
	sum := sha256.Sum256(append(append([]byte{}, nonce...), creator...))
	return hex.EncodeToString(sum[:])
}

// validate checks the proposal as the endorser does before anything runs (msgvalidation.go
// Validate): header type, epoch, nonce, creator, txid, then the creator's identity and signature.
// It returns the validated creator.
func (p *proposal) validate(m *msp.Manager) (*msp.Identity, error) {
	if common.HeaderType(p.chdr.Type) != common.HeaderType_ENDORSER_TRANSACTION {
		return nil, fmt.Errorf("invalid header type %s", common.HeaderType(p.chdr.Type))
	}
	if p.chdr.Epoch != 0 {
		return nil, errors.New("epoch is non-zero")
	}
	if len(p.shdr.Nonce) == 0 {
		return nil, errors.New("nonce is empty")
	}
	if len(p.shdr.Creator) == 0 {
		return nil, errors.New("creator is empty")
	}
	if want := computeTxID(p.shdr.Nonce, p.shdr.Creator); want != p.chdr.TxId {
		return nil, fmt.Errorf("incorrectly computed txid '%s' -- expected '%s'", p.chdr.TxId, want)
	}
	if len(p.signed.Signature) == 0 {
		return nil, errors.New("empty signature bytes")
	}
	creator, err := m.Deserialize(p.shdr.Creator)
	if err != nil {
		var ie *msp.IdentityError
		if errors.As(err, &ie) && (ie.Kind != msp.KindInvalid || ie.Unchained) {
			return nil, &denied{fmt.Sprintf("access denied: channel [%s] creator org unknown, creator is malformed", p.chdr.ChannelId), err}
		}
		return nil, &denied{fmt.Sprintf("access denied: channel [%s] creator org [%s]", p.chdr.ChannelId, mspIDOf(p.shdr.Creator)), err}
	}
	if err := creator.Verify(p.signed.ProposalBytes, p.signed.Signature); err != nil {
		return nil, &denied{fmt.Sprintf("access denied: channel [%s] creator org [%s]", p.chdr.ChannelId, creator.MSPID), err}
	}
	return creator, nil
}

// denied is an access refusal worded as Fabric words it to clients, with the precise reason kept
// for the devledger's own log (Fabric logs it too and tells the client only the generic text).
type denied struct {
	public string
	reason error
}

func (d *denied) Error() string { return d.public }
func (d *denied) Unwrap() error { return d.reason }

// mspIDOf reads the MSP id of a serialized identity that failed validation, for the message.
func mspIDOf(serialized []byte) string {
	id := &mspproto.SerializedIdentity{}
	if proto.Unmarshal(serialized, id) != nil {
		return ""
	}
	return id.Mspid
}
