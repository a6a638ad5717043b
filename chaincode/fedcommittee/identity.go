package fedcommittee

import (
	"fmt"
	"slices"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// caller is the submitting identity as the peer authenticated it. Roles are
// always looked up from this, never from a name the caller supplies.
type caller struct {
	Key   string // "<MSPID>/<cid.GetID()>"
	MSPID string
	Admin bool
}

func getCaller(ctx contractapi.TransactionContextInterface) (*caller, error) {
	ci := ctx.GetClientIdentity()
	if ci == nil {
		return nil, fmt.Errorf("no client identity")
	}
	msp, err := ci.GetMSPID()
	if err != nil {
		return nil, fmt.Errorf("reading client MSP id: %v", err)
	}
	id, err := ci.GetID()
	if err != nil {
		return nil, fmt.Errorf("reading client id: %v", err)
	}
	key := msp + "/" + id
	if _, err := checkIdentityKey("caller", key); err != nil {
		return nil, err
	}
	c := &caller{Key: key, MSPID: msp}
	// HasOUValue is not part of the cid.ClientIdentity interface, so read the
	// OU from the certificate: with NodeOUs an admin cert carries OU=admin.
	cert, err := ci.GetX509Certificate()
	if err != nil {
		return nil, fmt.Errorf("reading client certificate: %v", err)
	}
	if cert != nil && slices.Contains(cert.Subject.OrganizationalUnit, AdminOU) {
		c.Admin = true
	}
	return c, nil
}

func (t *txCtx) requireRole(c *caller, role string) error {
	ok, err := t.hasRole(c.Key, role)
	if err != nil {
		return err
	}
	if !ok {
		return denied("caller %s does not hold the %s role", c.Key, role)
	}
	return nil
}

// requireMember: the caller must sit on this model's committee and still
// hold the committee role.
func (t *txCtx) requireMember(who *caller, m *Model) error {
	if !isMember(m, who.Key) {
		return denied("caller %s is not on the committee of model %s", who.Key, m.ID)
	}
	return t.requireRole(who, RoleCommittee)
}
