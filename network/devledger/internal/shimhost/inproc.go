package shimhost

import (
	"fmt"
	"io"
	"sync"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// pipeDir is one direction of the in-process stream: an unbuffered hand-off,
// so a message is either received or its Send fails, never lost in a buffer.
type pipeDir struct {
	ch   chan *peer.ChaincodeMessage
	done chan struct{}
	once sync.Once
}

func newPipeDir() *pipeDir {
	return &pipeDir{ch: make(chan *peer.ChaincodeMessage), done: make(chan struct{})}
}

func (d *pipeDir) send(m *peer.ChaincodeMessage) error {
	select {
	case <-d.done:
		return io.ErrClosedPipe
	default:
	}
	// Each side gets its own copy, as over gRPC: neither may alias the
	// other's byte slices (a chaincode appending to a GetState value must
	// not touch the simulator's data).
	m = proto.Clone(m).(*peer.ChaincodeMessage)
	select {
	case d.ch <- m:
		return nil
	case <-d.done:
		return io.ErrClosedPipe
	}
}

func (d *pipeDir) recv() (*peer.ChaincodeMessage, error) {
	select {
	case m := <-d.ch:
		return m, nil
	case <-d.done:
		return nil, io.EOF
	}
}

func (d *pipeDir) close() { d.once.Do(func() { close(d.done) }) }

// peerEnd is the peer's side of the pipe (a msgStream).
type peerEnd struct{ in, out *pipeDir }

func (p *peerEnd) Send(m *peer.ChaincodeMessage) error   { return p.out.send(m) }
func (p *peerEnd) Recv() (*peer.ChaincodeMessage, error) { return p.in.recv() }

// ccEnd is the chaincode's side: a shim.ClientStream for shim.StartInProc.
type ccEnd struct{ in, out *pipeDir }

func (c *ccEnd) Send(m *peer.ChaincodeMessage) error   { return c.out.send(m) }
func (c *ccEnd) Recv() (*peer.ChaincodeMessage, error) { return c.in.recv() }
func (c *ccEnd) CloseSend() error                      { c.out.close(); return nil }

var _ shim.ClientStream = (*ccEnd)(nil)

// startInProc starts the real shim on a new pipe and returns the peer's end.
func startInProc(ccName string, cc shim.Chaincode, logf func(string, ...any)) (msgStream, func(), error) {
	toCC, fromCC := newPipeDir(), newPipeDir()
	closeFn := func() { toCC.close(); fromCC.close() }
	go func() {
		err := shim.StartInProc(ccName, &ccEnd{in: toCC, out: fromCC}, recovering{cc: cc, name: ccName, logf: logf})
		select {
		case <-toCC.done: // we closed it: a normal stop
		default:
			logf("devledger: chaincode %s (in process) stopped: %v", ccName, err)
		}
		closeFn()
	}()
	return &peerEnd{in: fromCC, out: toCC}, closeFn, nil
}

// recovering turns a chaincode panic into an error response: in process a
// panic would otherwise end the whole program (on Fabric it ends only the
// chaincode's container and fails the transaction).
type recovering struct {
	cc   shim.Chaincode
	name string
	logf func(string, ...any)
}

func (r recovering) Init(stub shim.ChaincodeStubInterface) (resp *peer.Response) {
	defer r.recover(stub, &resp)
	return r.cc.Init(stub)
}

func (r recovering) Invoke(stub shim.ChaincodeStubInterface) (resp *peer.Response) {
	defer r.recover(stub, &resp)
	return r.cc.Invoke(stub)
}

func (r recovering) recover(stub shim.ChaincodeStubInterface, resp **peer.Response) {
	if p := recover(); p != nil {
		r.logf("devledger: chaincode %s panicked in transaction %s: %v", r.name, stub.GetTxID(), p)
		*resp = &peer.Response{Status: shim.ERROR, Message: fmt.Sprintf("chaincode %s panicked: %v", r.name, p)}
	}
}
