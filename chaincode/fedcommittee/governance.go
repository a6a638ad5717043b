package fedcommittee

import (
	"fmt"
	"slices"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// GrantRole gives role to identity. Only an org admin may call it, and only
// for identities of its own org (same MSP id), so no org can hand out roles
// on another org's behalf. The grant is an account update plus a role index
// entry, both on the ledger.
func (c *Contract) GrantRole(ctx contractapi.TransactionContextInterface, identity, role string) error {
	t, adm, acct, err := prepareRoleChange(ctx, identity, role)
	if err != nil {
		return err
	}
	if slices.Contains(acct.Roles, role) {
		return fmt.Errorf("identity %s already holds the %s role", identity, role)
	}
	acct.Roles = append(acct.Roles, role)
	slices.Sort(acct.Roles)
	if err := t.saveAccount(acct); err != nil {
		return err
	}
	rk, err := t.key(keyRole, role, identity)
	if err != nil {
		return err
	}
	g := RoleGrant{Role: role, Identity: identity, GrantedBy: adm.Key, TxID: t.txID, Timestamp: t.now}
	if err := t.putJSON(rk, g); err != nil {
		return err
	}
	return t.emit(Event{Type: EvRoleGranted, Identity: identity, Role: role}, adm.Key)
}

// RevokeRole removes role from identity (same admin rules as GrantRole).
// Models already published keep their committee list, but a member whose
// committee role is revoked can no longer vote.
func (c *Contract) RevokeRole(ctx contractapi.TransactionContextInterface, identity, role string) error {
	t, adm, acct, err := prepareRoleChange(ctx, identity, role)
	if err != nil {
		return err
	}
	i := slices.Index(acct.Roles, role)
	if i < 0 {
		return fmt.Errorf("identity %s does not hold the %s role", identity, role)
	}
	acct.Roles = slices.Delete(acct.Roles, i, i+1)
	if err := t.saveAccount(acct); err != nil {
		return err
	}
	rk, err := t.key(keyRole, role, identity)
	if err != nil {
		return err
	}
	if err := t.stub.DelState(rk); err != nil {
		return fmt.Errorf("deleting role index: %v", err)
	}
	t.written[rk] = nil // deleted: later reads in this transaction see it absent
	return t.emit(Event{Type: EvRoleRevoked, Identity: identity, Role: role}, adm.Key)
}

func prepareRoleChange(ctx contractapi.TransactionContextInterface, identity, role string) (*txCtx, *caller, *Account, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	adm, err := getCaller(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	if !adm.Admin {
		return nil, nil, nil, fmt.Errorf("access denied: caller %s is not an org admin (OU=%s)", adm.Key, AdminOU)
	}
	msp, err := checkIdentityKey("identity", identity)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := checkRole(role); err != nil {
		return nil, nil, nil, err
	}
	if msp != adm.MSPID {
		return nil, nil, nil, fmt.Errorf("access denied: admin of %s cannot change roles of identity in %s", adm.MSPID, msp)
	}
	acct, _, err := t.loadAccount(identity)
	if err != nil {
		return nil, nil, nil, err
	}
	return t, adm, acct, nil
}
