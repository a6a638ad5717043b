// Package shimhost is the PEER side of Fabric's chaincode shim protocol: it
// runs the project's chaincode, unchanged, through the real
// fabric-chaincode-go shim, either in process (shim.StartInProc over Go
// channels) or as chaincode-as-a-service (gRPC+TLS to peer.Chaincode/Connect),
// and serves the chaincode's state requests from a ledger Simulator.
//
// The message flow follows Fabric v3.1.5's core/chaincode/handler.go (peer
// side) and the shim's handler.go (chaincode side): the chaincode sends
// REGISTER, the peer answers REGISTERED then READY; each invocation is one
// TRANSACTION (or INIT) message, during which the chaincode asks for state with
// GET_STATE, PUT_STATE, ... and finishes with COMPLETED or ERROR.
package shimhost

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
)

// Request is one chaincode invocation (one simulation on one org's chaincode).
type Request struct {
	ChannelID      string
	TxID           string
	Input          *peer.ChaincodeInput // args (function name first), decorations
	SignedProposal *peer.SignedProposal // passed to the shim (GetCreator, GetTxTimestamp, transient come from it)
	Sim            Simulator
	IsInit         bool
}

// Result is what the chaincode answered.
type Result struct {
	Response *peer.Response       // status/message/payload as the chaincode returned it
	Event    *peer.ChaincodeEvent // nil if none; ChaincodeId and TxId filled in by the host
}

// Host runs one chaincode for one org.
type Host interface {
	// Execute runs one invocation. The error is a transport/protocol failure,
	// never a chaincode error (those come back as a Result with status 500).
	Execute(ctx context.Context, req Request) (*Result, error)
	Close() error
}

// dialFunc opens a fresh stream to the chaincode; closeFn tears it down.
type dialFunc func(ctx context.Context) (st msgStream, closeFn func(), err error)

// host keeps one live handler and opens a new one (redials) when the stream
// broke. Both transports use it.
type host struct {
	ccName string
	where  string // "in process" or "at <address>", for error messages
	dial   dialFunc
	logf   func(string, ...any)

	mu     sync.Mutex
	cur    *handler
	closed bool
}

var errClosed = errors.New("host closed")

func (h *host) current(ctx context.Context) (*handler, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("devledger: chaincode %s %s: %w", h.ccName, h.where, errClosed)
	}
	if h.cur != nil && !h.cur.broken() {
		return h.cur, nil
	}
	if h.cur != nil {
		h.logf("devledger: chaincode %s %s: stream ended (%v); reconnecting", h.ccName, h.where, h.cur.cause())
		h.cur = nil
	}
	st, closeFn, err := h.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("devledger: chaincode %s %s is unavailable: %w", h.ccName, h.where, err)
	}
	hd, err := newHandler(ctx, h.ccName, st, closeFn, h.logf)
	if err != nil {
		return nil, fmt.Errorf("devledger: chaincode %s %s: %w", h.ccName, h.where, err)
	}
	h.cur = hd
	return hd, nil
}

func (h *host) Execute(ctx context.Context, req Request) (*Result, error) {
	if req.TxID == "" {
		return nil, errors.New("devledger: Execute without a transaction id")
	}
	if req.Sim == nil {
		return nil, fmt.Errorf("devledger: Execute of transaction %s without a simulator", req.TxID)
	}
	hd, err := h.current(ctx)
	if err != nil {
		return nil, err
	}
	res, err := hd.execute(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("devledger: chaincode %s %s: %w", h.ccName, h.where, err)
	}
	return res, nil
}

func (h *host) Close() error {
	h.mu.Lock()
	cur := h.cur
	h.closed = true
	h.cur = nil
	h.mu.Unlock()
	if cur != nil {
		cur.shutdown(errClosed)
	}
	return nil
}

func nopLogf(string, ...any) {}

// NewInProc runs cc in this process through the real shim
// (shim.StartInProc) over a pair of Go channels. If the shim's chat ever ends
// (it should not), the next Execute starts a new one.
func NewInProc(ccName string, cc shim.Chaincode, logf func(string, ...any)) (Host, error) {
	if ccName == "" || cc == nil {
		return nil, errors.New("devledger: NewInProc needs a chaincode name and a chaincode")
	}
	if logf == nil {
		logf = nopLogf
	}
	h := &host{ccName: ccName, where: "in process", logf: logf}
	h.dial = func(context.Context) (msgStream, func(), error) {
		return startInProc(ccName, cc, logf)
	}
	if _, err := h.current(context.Background()); err != nil {
		return nil, err
	}
	return h, nil
}
