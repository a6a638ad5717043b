package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fedcommittee/fedcommittee/network/devledger/internal/shimhost"
)

// outcome is one org's answer to a proposal, classified as the gateway classifies a peer's
// ProposalResponse (fabric internal/pkg/gateway/apiutils.go responseStatus).
type outcome struct {
	response *peer.ProposalResponse // set when code == OK
	result   []byte                 // the chaincode's payload (ChaincodeAction.response.payload)
	code     codes.Code
	message  string
}

// endorse runs the proposal on one org as its peer would (fabric core/endorser/endorser.go
// ProcessProposal): checks, ACL, duplicate txid, simulation on the org's own chaincode, and a
// signed ProposalResponse. Refusals before the chaincode runs come back FailedPrecondition, a
// chaincode error Unknown with "chaincode response N, MSG", a peer-side failure Aborted.
func (n *Network) endorse(ctx context.Context, org *Org, p *proposal) outcome {
	if err := n.preProcess(p); err != nil {
		n.Logf("%s: proposal %s refused: %v", org.Name, short(p.txid()), detailed(err))
		return outcome{code: codes.FailedPrecondition, message: err.Error()}
	}
	if p.chaincode != n.Chaincode {
		return outcome{code: codes.Aborted, message: fmt.Sprintf(
			"make sure the chaincode %s has been successfully defined on channel %s and try again: chaincode definition for '%s' exists, but chaincode is not installed",
			p.chaincode, p.chdr.ChannelId, p.chaincode)}
	}
	sim, err := n.Ledger.NewSimulator(p.txid())
	if err != nil {
		return outcome{code: codes.Aborted, message: fmt.Sprintf("error in simulation: %v", err)}
	}
	defer sim.Done()
	res, err := org.Host.Execute(ctx, shimhost.Request{
		ChannelID: p.chdr.ChannelId, TxID: p.txid(), Input: p.input, SignedProposal: p.signed, Sim: sim,
	})
	if err != nil {
		return outcome{code: codes.Aborted, message: fmt.Sprintf("error in simulation: %v", err)}
	}
	if res.Response.Status >= 400 {
		return outcome{code: codes.Unknown, message: fmt.Sprintf("chaincode response %d, %s", res.Response.Status, res.Response.Message)}
	}
	results, err := sim.Results()
	if err != nil {
		return outcome{code: codes.Aborted, message: fmt.Sprintf("error in simulation: %v", err)}
	}
	sim.Done()
	prp, err := n.responsePayload(p, res, results)
	if err != nil {
		return outcome{code: codes.Aborted, message: err.Error()}
	}
	endorser := org.Signer.Serialized()
	sig, err := org.Signer.Sign(append(append([]byte{}, prp...), endorser...))
	if err != nil {
		return outcome{code: codes.Aborted, message: fmt.Sprintf("failed to sign the proposal response: %v", err)}
	}
	return outcome{
		code:   codes.OK,
		result: res.Response.Payload,
		response: &peer.ProposalResponse{
			Version:     1,
			Timestamp:   timestamppb.New(time.Now()),
			Response:    &peer.Response{Status: res.Response.Status, Message: res.Response.Message},
			Payload:     prp,
			Endorsement: &peer.Endorsement{Endorser: endorser, Signature: sig},
		},
	}
}

// preProcess is the endorser's check before simulation: the proposal itself, the channel, a
// txid not already on the ledger, and the Writers ACL (fabric core/endorser/endorser.go preProcess).
func (n *Network) preProcess(p *proposal) error {
	creator, err := p.validate(n.MSP)
	if err != nil {
		return fmt.Errorf("error validating proposal: %w", err)
	}
	if p.chdr.ChannelId != n.Channel {
		return fmt.Errorf("channel '%s' not found", p.chdr.ChannelId)
	}
	if _, _, _, found := n.Ledger.TxByID(p.txid()); found {
		return fmt.Errorf("duplicate transaction found [%s]. Creator [%x]", p.txid(), p.shdr.Creator)
	}
	return n.checkACL(creator, writers)
}

// responsePayload is the ProposalResponsePayload every endorser signs: the proposal hash and the
// chaincode action (rwset, event, response, chaincode id), as protoutil builds it.
func (n *Network) responsePayload(p *proposal, res *shimhost.Result, results []byte) ([]byte, error) {
	var events []byte
	if res.Event != nil {
		var err error
		if events, err = proto.Marshal(res.Event); err != nil {
			return nil, fmt.Errorf("failed to marshal chaincode event: %w", err)
		}
	}
	action, err := proto.Marshal(&peer.ChaincodeAction{
		Results:     results,
		Events:      events,
		Response:    res.Response,
		ChaincodeId: &peer.ChaincodeID{Name: n.Chaincode, Version: n.ChaincodeVersion},
	})
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&peer.ProposalResponsePayload{ProposalHash: p.hash, Extension: action})
}

// detailed unwraps an access refusal to the reason Fabric logs but does not tell the client.
func detailed(err error) error {
	var d *denied
	if errors.As(err, &d) && d.reason != nil {
		return fmt.Errorf("%w (%v)", err, d.reason)
	}
	return err
}

func short(txid string) string {
	if len(txid) > 8 {
		return txid[:8]
	}
	return txid
}
