// Package gateway serves Fabric's Gateway gRPC service (Evaluate, Endorse, Submit, CommitStatus,
// ChaincodeEvents) for every org of the embedded ledger, and does the peer's work behind it:
// proposal checks, access control, simulation on each endorsing org's chaincode, the majority
// endorsement policy, and the checks a peer runs on every transaction at commit.
package gateway

import (
	"sort"
	"sync/atomic"

	"github.com/fedcommittee/fedcommittee/network/devledger/internal/ledger"
	"github.com/fedcommittee/fedcommittee/network/devledger/internal/msp"
	"github.com/fedcommittee/fedcommittee/network/devledger/internal/shimhost"
)

// Org is one organization's peer: its signing identity for endorsements, its own chaincode
// instance, and whether its listener is up (a stopped listener stands for a peer outage: the
// gateway plans endorsements without it, as Fabric's discovery drops a dead peer).
type Org struct {
	MSPID   string
	Name    string // peer0.org1, for logs
	Address string // host:port of its listener, as ErrorDetail.address
	Signer  *msp.Signer
	Host    shimhost.Host
	up      atomic.Bool
}

// SetUp records whether the org's listener serves.
func (o *Org) SetUp(up bool) { o.up.Store(up) }

// Up reports whether the org's listener serves.
func (o *Org) Up() bool { return o.up.Load() }

// Network is the channel every org's gateway serves: one chaincode, one ledger.
type Network struct {
	Channel          string
	Chaincode        string
	ChaincodeVersion string
	Orgs             []*Org // sorted by MSP id
	MSP              *msp.Manager
	Ledger           *ledger.Ledger
	Logf             func(format string, args ...any)
	events           eventCache // recent blocks' chaincode events, for every events stream
}

// NewNetwork sorts the orgs so endorsement plans are the same on every run.
func NewNetwork(channel, chaincode, version string, orgs []*Org, m *msp.Manager, l *ledger.Ledger, logf func(string, ...any)) *Network {
	sort.Slice(orgs, func(i, j int) bool { return orgs[i].MSPID < orgs[j].MSPID })
	return &Network{Channel: channel, Chaincode: chaincode, ChaincodeVersion: version, Orgs: orgs, MSP: m, Ledger: l, Logf: logf}
}

// OrgByID is the org with that MSP id, or nil.
func (n *Network) OrgByID(mspID string) *Org {
	for _, o := range n.Orgs {
		if o.MSPID == mspID {
			return o
		}
	}
	return nil
}

// majority is the endorsement policy of the chaincode definition on Fabric (the lifecycle
// default, "MAJORITY Endorsement"): more than half of the channel's orgs.
func (n *Network) majority() int { return len(n.Orgs)/2 + 1 }
