package shimhost

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
)

// InProcStreams is how many in-process chaincode streams NewInProcPool opens per org.
//
// Why more than one: every message of every transaction crosses one stream through the shim's
// single chat loop, which takes one message per turn and starts a goroutine to read the next. On
// a machine whose cores are busy (1,000 agents on 2 cores) each turn waits for the Go and OS
// schedulers, so one stream moved a few hundred messages a second while the ledger's CPU sat at
// a quarter of a core: a goroutine dump of the 1,000-provider run showed some 800 goroutines
// queued on the two send locks of the stream and endorsements timing out after 15 s. Independent
// streams give independent chat loops. (Fabric's peer also runs one stream per chaincode; the
// embedded ledger is not Fabric, and on Fabric the chaincode is a separate process.)
const InProcStreams = 16

// pool spreads transactions over several streams to one chaincode instance. A transaction goes
// to the stream its txid hashes to, so a txid still in flight is refused as a duplicate exactly
// as on one stream ("txid exists").
type pool struct {
	hosts []*host
}

// NewInProcPool runs cc in this process on n streams (shim.StartInProc each), all serving the
// same chaincode instance, as the shim already runs one instance's transactions concurrently.
func NewInProcPool(ccName string, cc shim.Chaincode, logf func(string, ...any), n int) (Host, error) {
	if n < 1 {
		return nil, fmt.Errorf("devledger: NewInProcPool needs at least one stream, got %d", n)
	}
	p := &pool{}
	for range n {
		h, err := NewInProc(ccName, cc, logf)
		if err != nil {
			_ = p.Close()
			return nil, err
		}
		p.hosts = append(p.hosts, h.(*host))
	}
	return p, nil
}

func (p *pool) Execute(ctx context.Context, req Request) (*Result, error) {
	if req.TxID == "" {
		return nil, errors.New("devledger: Execute without a transaction id")
	}
	f := fnv.New32a()
	_, _ = f.Write([]byte(req.ChannelID + "\x00" + req.TxID))
	return p.hosts[f.Sum32()%uint32(len(p.hosts))].Execute(ctx, req)
}

func (p *pool) Close() error {
	for _, h := range p.hosts {
		_ = h.Close()
	}
	return nil
}
