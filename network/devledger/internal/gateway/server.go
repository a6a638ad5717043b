package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	gp "github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	ab "github.com/hyperledger/fabric-protos-go-apiv2/orderer"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// endorsementTimeout bounds one org's simulation, as the peer's gateway.endorsementTimeout (30 s).
const endorsementTimeout = 30 * time.Second

// Server is one org's gateway: the org whose peer the client dialled. Its messages, status codes
// and error details follow fabric internal/pkg/gateway (the files are named beside each one).
type Server struct {
	gp.UnimplementedGatewayServer
	net   *Network
	local *Org
}

// NewServer serves the gateway of org `local`.
func NewServer(n *Network, local *Org) *Server { return &Server{net: n, local: local} }

// rpcError builds a status with ErrorDetail entries (apiutils.go newRpcError).
func rpcError(code codes.Code, message string, details ...*gp.ErrorDetail) error {
	st := status.New(code, message)
	if len(details) == 0 {
		return st.Err()
	}
	v1 := make([]protoadapt.MessageV1, 0, len(details))
	for _, d := range details {
		v1 = append(v1, protoadapt.MessageV1Of(d))
	}
	if withDetails, err := st.WithDetails(v1...); err == nil {
		return withDetails.Err()
	}
	return st.Err()
}

func (o *Org) detail(message string) *gp.ErrorDetail {
	return &gp.ErrorDetail{Address: o.Address, MspId: o.MSPID, Message: message}
}

// Evaluate runs a proposal on one org without ordering it (evaluate.go).
func (s *Server) Evaluate(ctx context.Context, req *gp.EvaluateRequest) (*gp.EvaluateResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "an evaluate request is required")
	}
	p, err := unpackProposal(req.GetProposedTransaction())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "failed to unpack transaction proposal: %s", err)
	}
	if err := s.knownChannel(p); err != nil {
		return nil, err
	}
	if p.chaincode == qsccName {
		return s.evaluateSystem(p)
	}
	org, err := s.evaluator(req.GetTargetOrganizations(), p.hasTransient)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, endorsementTimeout)
	defer cancel()
	out := s.net.endorse(ctx, org, p)
	if out.code != codes.OK {
		return nil, rpcError(out.code, "evaluate call to endorser returned error: "+out.message, org.detail(out.message))
	}
	return &gp.EvaluateResponse{Result: &peer.Response{
		Status: out.response.Response.Status, Message: out.response.Response.Message, Payload: out.result,
	}}, nil
}

// knownChannel refuses a proposal for a channel this network does not have, as the gateway does
// when it cannot load the channel's config (registry.go connectChannelPeers).
func (s *Server) knownChannel(p *proposal) error {
	if p.chdr.ChannelId != s.net.Channel {
		return status.Errorf(codes.Unavailable, "failed to get config for channel [%s]: channel not found", p.chdr.ChannelId)
	}
	return nil
}

// evaluator picks the org that runs a query: the first live target org, else this gateway's own.
func (s *Server) evaluator(targets []string, transient bool) (*Org, error) {
	if len(targets) == 0 {
		if s.local.Up() {
			return s.local, nil
		}
		if transient {
			return nil, status.Error(codes.FailedPrecondition, "no endorsers found in the gateway's organization; retry specifying target organization(s) to protect transient data")
		}
		for _, o := range s.net.Orgs {
			if o.Up() {
				return o, nil
			}
		}
	}
	for _, t := range targets {
		if o := s.net.OrgByID(t); o != nil && o.Up() {
			return o, nil
		}
	}
	return nil, status.Errorf(codes.FailedPrecondition, "no peers available to evaluate chaincode %s in channel %s", s.net.Chaincode, s.net.Channel)
}

// Endorse collects endorsements satisfying the majority policy (endorse.go): first on this
// gateway's org, then on enough other live orgs; every response must match the first byte for byte.
func (s *Server) Endorse(ctx context.Context, req *gp.EndorseRequest) (*gp.EndorseResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "an endorse request is required")
	}
	if req.GetProposedTransaction() == nil {
		return nil, status.Error(codes.InvalidArgument, "the proposed transaction must contain a signed proposal")
	}
	p, err := unpackProposal(req.GetProposedTransaction())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.knownChannel(p); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, endorsementTimeout)
	defer cancel()
	plan, err := s.plan(req.GetEndorsingOrganizations(), p.hasTransient)
	if err != nil {
		return nil, err
	}
	first := s.net.endorse(ctx, plan[0], p)
	if first.code != codes.OK {
		return nil, rpcError(codes.Aborted, "failed to endorse transaction, see attached details for more info", plan[0].detail(first.message))
	}
	endorsements := []*peer.Endorsement{first.response.Endorsement}
	var details []*gp.ErrorDetail
	for _, out := range s.endorseOthers(ctx, plan[1:], p) {
		switch {
		case out.code != codes.OK:
			details = append(details, out.org.detail(out.message))
		case string(out.response.Payload) != string(first.response.Payload):
			s.net.Logf("%s: ProposalResponsePayloads do not match for %s (non-deterministic chaincode?)", out.org.Name, short(p.txid()))
			details = append(details, out.org.detail("ProposalResponsePayloads do not match"))
		default:
			endorsements = append(endorsements, out.response.Endorsement)
		}
	}
	if len(endorsements) < s.needed(req.GetEndorsingOrganizations()) {
		return nil, rpcError(codes.Aborted, "failed to collect enough transaction endorsements, see attached details for more info", details...)
	}
	env, err := preparedTransaction(p, first.response.Payload, endorsements)
	if err != nil {
		return nil, status.Errorf(codes.Aborted, "failed to assemble transaction: %s", err)
	}
	return &gp.EndorseResponse{PreparedTransaction: env}, nil
}

type orgOutcome struct {
	outcome
	org *Org
}

// endorseOthers simulates on the other planned orgs at once.
func (s *Server) endorseOthers(ctx context.Context, orgs []*Org, p *proposal) []orgOutcome {
	results := make(chan orgOutcome, len(orgs))
	for _, o := range orgs {
		go func(o *Org) { results <- orgOutcome{s.net.endorse(ctx, o, p), o} }(o)
	}
	out := make([]orgOutcome, 0, len(orgs))
	for range orgs {
		out = append(out, <-results)
	}
	return out
}

// plan lists the orgs to endorse on: the client's chosen ones (all must endorse), else this
// gateway's org first and then other live orgs until the majority is reached.
func (s *Server) plan(chosen []string, transient bool) ([]*Org, error) {
	if len(chosen) > 0 {
		var plan []*Org
		for _, name := range chosen {
			o := s.net.OrgByID(name)
			if o == nil || !o.Up() {
				return nil, status.Errorf(codes.Unavailable, "failed to find any endorsing peers for org(s): %s", name)
			}
			plan = append(plan, o)
		}
		return plan, nil
	}
	var plan []*Org
	if s.local.Up() {
		plan = append(plan, s.local)
	} else if transient {
		return nil, status.Error(codes.FailedPrecondition, "no endorsers found in the gateway's organization; retry specifying endorsing organization(s) to protect transient data")
	}
	for _, o := range s.net.Orgs {
		if len(plan) >= s.net.majority() {
			break
		}
		if o != s.local && o.Up() {
			plan = append(plan, o)
		}
	}
	if len(plan) < s.net.majority() {
		return nil, status.Errorf(codes.FailedPrecondition, "failed to select a set of endorsers that satisfy the endorsement policy due to unavailability of peers: %d of %d orgs' peers are up, the majority needs %d", len(plan), len(s.net.Orgs), s.net.majority())
	}
	return plan, nil
}

func (s *Server) needed(chosen []string) int {
	if len(chosen) > 0 {
		return len(chosen)
	}
	return s.net.majority()
}

// preparedTransaction assembles the unsigned transaction envelope the client signs
// (fabric protoutil/txutils.go CreateSignedTx, without the signature): the proposal's header, and
// one action carrying the transient-free proposal payload and the endorsements.
func preparedTransaction(p *proposal, prp []byte, endorsements []*peer.Endorsement) (*common.Envelope, error) {
	cap, err := proto.Marshal(&peer.ChaincodeActionPayload{
		ChaincodeProposalPayload: p.payloadForTx,
		Action:                   &peer.ChaincodeEndorsedAction{ProposalResponsePayload: prp, Endorsements: endorsements},
	})
	if err != nil {
		return nil, err
	}
	tx, err := proto.Marshal(&peer.Transaction{Actions: []*peer.TransactionAction{{Header: p.header.SignatureHeader, Payload: cap}}})
	if err != nil {
		return nil, err
	}
	payload, err := proto.Marshal(&common.Payload{Header: p.header, Data: tx})
	if err != nil {
		return nil, err
	}
	return &common.Envelope{Payload: payload}, nil
}

// Submit hands a signed transaction to the orderer (submit.go). The orderer's broadcast checks
// the signature against the channel's Writers, as Fabric's does, before accepting it.
func (s *Server) Submit(ctx context.Context, req *gp.SubmitRequest) (*gp.SubmitResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "a submit request is required")
	}
	txn := req.GetPreparedTransaction()
	if txn == nil {
		return nil, status.Error(codes.InvalidArgument, "a prepared transaction is required")
	}
	if len(txn.Signature) == 0 {
		return nil, status.Error(codes.InvalidArgument, "prepared transaction must be signed")
	}
	if req.GetChannelId() != s.net.Channel {
		return nil, status.Errorf(codes.NotFound, "failed to create block deliverer for channel `%s`, missing OrdererConfig", req.GetChannelId())
	}
	if info, bad := s.broadcastFilter(txn); bad {
		return nil, rpcError(codes.Aborted, fmt.Sprintf("received unsuccessful response from orderer: status=%s, info=%s", common.Status_FORBIDDEN, info))
	}
	if err := s.net.Ledger.Order(txn); err != nil {
		return nil, rpcError(codes.Unavailable, "no orderers could successfully process transaction",
			&gp.ErrorDetail{Address: "devledger-orderer", MspId: "OrdererMSP", Message: err.Error()})
	}
	return &gp.SubmitResponse{}, nil
}

// broadcastFilter is the orderer's signature filter (orderer/common/msgprocessor/sigfilter.go):
// the envelope's creator must satisfy the channel's Writers with a valid signature.
func (s *Server) broadcastFilter(env *common.Envelope) (string, bool) {
	payload := &common.Payload{}
	shdr := &common.SignatureHeader{}
	if proto.Unmarshal(env.Payload, payload) != nil || payload.Header == nil || proto.Unmarshal(payload.Header.SignatureHeader, shdr) != nil {
		return "could not convert message to signedData: missing header", true
	}
	if _, err := s.net.checkSigned(shdr.Creator, env.Payload, env.Signature, writers); err != nil {
		return fmt.Sprintf("implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the 'Writers' sub-policies to be satisfied: permission denied"), true
	}
	return "", false
}

// CommitStatus waits for a transaction to commit and returns its validation code (commitstatus.go).
func (s *Server) CommitStatus(ctx context.Context, signed *gp.SignedCommitStatusRequest) (*gp.CommitStatusResponse, error) {
	if len(signed.GetRequest()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "a commit status request is required")
	}
	req := &gp.CommitStatusRequest{}
	if err := proto.Unmarshal(signed.GetRequest(), req); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid status request: %v", err)
	}
	switch {
	case req.GetIdentity() == nil:
		return nil, status.Error(codes.InvalidArgument, "no identity provided")
	case req.GetChannelId() == "":
		return nil, status.Error(codes.InvalidArgument, "no channel ID provided")
	case req.GetTransactionId() == "":
		return nil, status.Error(codes.InvalidArgument, "transaction ID should not be empty")
	}
	if _, err := s.net.checkSigned(req.Identity, signed.Request, signed.Signature, readers); err != nil {
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	if req.ChannelId != s.net.Channel {
		return nil, status.Errorf(codes.Aborted, "channel does not exist: %s", req.ChannelId)
	}
	code, block, err := s.net.Ledger.WaitTx(ctx, req.TransactionId)
	if err != nil {
		return nil, status.FromContextError(err).Err()
	}
	return &gp.CommitStatusResponse{Result: code, BlockNumber: block}, nil
}

// ChaincodeEvents streams the chaincode's events of valid transactions, block by block, from
// the requested position (chaincodeevents.go).
func (s *Server) ChaincodeEvents(signed *gp.SignedChaincodeEventsRequest, stream gp.Gateway_ChaincodeEventsServer) error {
	if len(signed.GetRequest()) == 0 {
		return status.Error(codes.InvalidArgument, "a chaincode events request is required")
	}
	req := &gp.ChaincodeEventsRequest{}
	if err := proto.Unmarshal(signed.GetRequest(), req); err != nil {
		return status.Errorf(codes.InvalidArgument, "invalid chaincode events request: %v", err)
	}
	if _, err := s.net.checkSigned(req.Identity, signed.Request, signed.Signature, readers); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	if req.ChannelId != s.net.Channel {
		return status.Errorf(codes.NotFound, "channel does not exist: %s", req.ChannelId)
	}
	next, err := s.eventsStart(req)
	if err != nil {
		return err
	}
	match := eventMatcher(req)
	ctx := stream.Context()
	for {
		if err := s.net.Ledger.WaitHeight(ctx, next); err != nil {
			return status.FromContextError(err).Err()
		}
		all, err := s.net.events.get(next, s.net.Ledger.Block)
		if err != nil {
			return status.Error(codes.Aborted, err.Error())
		}
		var events []*peer.ChaincodeEvent
		for _, ev := range all {
			if match(ev) {
				events = append(events, ev)
			}
		}
		if len(events) > 0 {
			if err := stream.Send(&gp.ChaincodeEventsResponse{Events: events, BlockNumber: next}); err != nil {
				return err
			}
		}
		next++
	}
}

// eventsStart is the first block to read: the block of after_transaction_id if it is on the
// ledger, else the start position (next commit by default).
func (s *Server) eventsStart(req *gp.ChaincodeEventsRequest) (uint64, error) {
	if after := req.GetAfterTransactionId(); after != "" {
		if _, _, block, found := s.net.Ledger.TxByID(after); found {
			return block, nil
		}
	}
	switch seek := req.GetStartPosition().GetType().(type) {
	case nil, *ab.SeekPosition_NextCommit:
		return s.net.Ledger.Height(), nil
	case *ab.SeekPosition_Specified:
		return seek.Specified.GetNumber(), nil
	default:
		return 0, status.Errorf(codes.InvalidArgument, "invalid start position type: %T", seek)
	}
}

// eventMatcher keeps the requested chaincode's events, skipping everything up to and including
// after_transaction_id when it is given.
func eventMatcher(req *gp.ChaincodeEventsRequest) func(*peer.ChaincodeEvent) bool {
	after := req.GetAfterTransactionId()
	passed := after == ""
	return func(e *peer.ChaincodeEvent) bool {
		if !passed {
			passed = e.TxId == after
			return false
		}
		return e.ChaincodeId == req.GetChaincodeId()
	}
}
