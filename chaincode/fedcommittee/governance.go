package fedcommittee

import (
	"slices"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// GrantRole gives role to identity. Only an org admin may call it, and only
// for identities of its own org (same MSP id), so no org can hand out roles
// on another org's behalf. The grant is an account update plus a role index
// entry, both on the ledger.
func (c *Contract) GrantRole(ctx contractapi.TransactionContextInterface, identity, role string) error {
	return changeRole(ctx, identity, role, func(t *txCtx, acct *Account) error {
		if slices.Contains(acct.Roles, role) {
			return duplicate("identity %s already holds the %s role", identity, role)
		}
		acct.Roles = append(acct.Roles, role)
		slices.Sort(acct.Roles)
		if err := t.saveAccount(acct); err != nil {
			return err
		}
		g := RoleGrant{Role: role, Identity: identity, GrantedBy: t.who.Key, TxID: t.txID, Timestamp: t.now}
		if err := t.saveRoleGrant(&g); err != nil {
			return err
		}
		return t.emit(Event{Type: EvRoleGranted, Identity: identity, Role: role})
	})
}

// RevokeRole removes role from identity (same admin rules as GrantRole).
// Models already published keep their committee list, but a member whose
// committee role is revoked can no longer vote.
func (c *Contract) RevokeRole(ctx contractapi.TransactionContextInterface, identity, role string) error {
	return changeRole(ctx, identity, role, func(t *txCtx, acct *Account) error {
		i := slices.Index(acct.Roles, role)
		if i < 0 {
			return wrongState("identity %s does not hold the %s role", identity, role)
		}
		acct.Roles = slices.Delete(acct.Roles, i, i+1)
		if err := t.saveAccount(acct); err != nil {
			return err
		}
		if err := t.deleteRoleGrant(role, identity); err != nil {
			return err
		}
		return t.emit(Event{Type: EvRoleRevoked, Identity: identity, Role: role})
	})
}

// changeRole opens a role change by an org admin on an identity of its own
// org and hands change that identity's account.
func changeRole(ctx contractapi.TransactionContextInterface, identity, role string, change func(*txCtx, *Account) error) error {
	return run(ctx, opening{orgAdmin, identityArg("identity", identity), roleArg(role), sameOrg(identity)},
		func(t *txCtx) error {
			acct, _, err := t.loadAccount(identity)
			if err != nil {
				return err
			}
			return change(t, acct)
		})
}

// sameOrg: an admin changes roles of identities of its own MSP only.
func sameOrg(identity string) step {
	return func(t *txCtx) error {
		if msp, _ := checkIdentityKey("identity", identity); msp != t.who.MSPID {
			return denied("admin of %s cannot change roles of identity in %s", t.who.MSPID, msp)
		}
		return nil
	}
}
