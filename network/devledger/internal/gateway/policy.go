package gateway

import (
	"fmt"

	"github.com/fedcommittee/fedcommittee/network/devledger/internal/msp"
)

// channelPolicy is one of the channel's Application policies, as network/fabric/configtx.yaml.tmpl
// defines them for every org: Readers = admin, peer or client; Writers = admin or client.
// Both are ImplicitMeta "ANY" over the orgs' own policies.
type channelPolicy struct {
	name  string
	roles []msp.Role
}

var (
	readers = channelPolicy{"Readers", []msp.Role{msp.RoleAdmin, msp.RolePeer, msp.RoleClient}}
	writers = channelPolicy{"Writers", []msp.Role{msp.RoleAdmin, msp.RoleClient}}
)

// checkACL refuses an identity that none of the orgs' sub-policies accept, with the wording of
// fabric core/policy/policy.go CheckPolicyBySignedData around common/policies/implicitmeta.go.
func (n *Network) checkACL(id *msp.Identity, p channelPolicy) error {
	for _, r := range p.roles {
		if id.Role == r {
			return nil
		}
	}
	return fmt.Errorf("Failed evaluating policy on signed data during check policy on channel [%s] with policy [/Channel/Application/%s]: [implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the '%s' sub-policies to be satisfied]",
		n.Channel, p.name, p.name)
}

// checkSigned validates a signed request (CommitStatus, ChaincodeEvents, a submitted envelope):
// the identity against its MSP, the signature over the data, then the policy.
func (n *Network) checkSigned(identity, data, signature []byte, p channelPolicy) (*msp.Identity, error) {
	id, err := n.MSP.Deserialize(identity)
	if err != nil {
		return nil, n.policyFailure(p, fmt.Errorf("identity is not valid: %w", err))
	}
	if err := id.Verify(data, signature); err != nil {
		return nil, n.policyFailure(p, fmt.Errorf("signature is not valid: %w", err))
	}
	if err := n.checkACL(id, p); err != nil {
		return nil, err
	}
	return id, nil
}

func (n *Network) policyFailure(p channelPolicy, reason error) error {
	n.Logf("access denied by /Channel/Application/%s: %v", p.name, reason)
	return fmt.Errorf("Failed evaluating policy on signed data during check policy on channel [%s] with policy [/Channel/Application/%s]: [implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the '%s' sub-policies to be satisfied]",
		n.Channel, p.name, p.name)
}
