package gateway

import (
	"errors"
	"fmt"
	"strconv"

	gp "github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/fedcommittee/fedcommittee/network/devledger/internal/msp"
)

// qsccName is the peer's query system chaincode. The embedded ledger answers the three functions
// clients use (fabric core/scc/qscc/query.go), each behind the channel's Readers ACL as on a peer.
const qsccName = "qscc"

func (s *Server) evaluateSystem(p *proposal) (*gp.EvaluateResponse, error) {
	creator, err := p.validate(s.net.MSP)
	if err != nil {
		msg := "error validating proposal: " + err.Error()
		return nil, rpcError(codes.FailedPrecondition, "evaluate call to endorser returned error: "+msg, s.local.detail(msg))
	}
	payload, err := s.qscc(p, creator)
	if err != nil {
		msg := "chaincode response 500, " + err.Error()
		return nil, rpcError(codes.Unknown, "evaluate call to endorser returned error: "+msg, s.local.detail(msg))
	}
	return &gp.EvaluateResponse{Result: &peer.Response{Status: 200, Payload: payload}}, nil
}

func (s *Server) qscc(p *proposal, creator *msp.Identity) ([]byte, error) {
	args := p.input.GetArgs()
	if len(args) < 2 {
		return nil, fmt.Errorf("Incorrect number of arguments, %d", len(args))
	}
	fn, channel := string(args[0]), string(args[1])
	if channel != s.net.Channel {
		return nil, fmt.Errorf("Failed to get chain: channel %s not found", channel)
	}
	if err := s.net.checkACL(creator, readers); err != nil {
		return nil, err
	}
	l := s.net.Ledger
	switch fn {
	case "GetChainInfo":
		return proto.Marshal(l.BlockchainInfo())
	case "GetBlockByNumber":
		if len(args) < 3 {
			return nil, errors.New("missing 3rd argument for GetBlockByNumber")
		}
		n, err := strconv.ParseUint(string(args[2]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("failed to parse block number with error %s", err)
		}
		block, err := l.Block(n)
		if err != nil {
			return nil, err
		}
		return proto.Marshal(block)
	case "GetTransactionByID":
		if len(args) < 3 {
			return nil, errors.New("missing 3rd argument for GetTransactionByID")
		}
		env, code, _, found := l.TxByID(string(args[2]))
		if !found {
			return nil, fmt.Errorf("Failed to get transaction with id %s, error no such transaction ID [%s] in index", args[2], args[2])
		}
		return proto.Marshal(&peer.ProcessedTransaction{TransactionEnvelope: env, ValidationCode: int32(code)})
	default:
		return nil, fmt.Errorf("Requested function %s not found.", fn)
	}
}
