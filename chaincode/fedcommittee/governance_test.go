package fedcommittee

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGrantAndRevokeRole(t *testing.T) { bothModes(t, grantAndRevokeRole) }

func grantAndRevokeRole(t *testing.T, e *env) {
	grant := func(who *fakeIdentity, id, role string) error {
		return e.tx(who, func(ctx ctxT) error { return e.cc.GrantRole(ctx, id, role) })
	}
	revoke := func(who *fakeIdentity, id, role string) error {
		return e.tx(who, func(ctx ctxT) error { return e.cc.RevokeRole(ctx, id, role) })
	}

	require.NoError(t, grant(admin1, prov1.key(), RoleProvider))
	ev := e.event()
	require.Equal(t, EvRoleGranted, ev.Type)
	require.Equal(t, prov1.key(), ev.Identity)
	require.Equal(t, RoleProvider, ev.Role)
	require.Equal(t, admin1.key(), ev.Actor)
	require.NoError(t, grant(admin1, prov1.key(), RoleCommittee))

	a := e.account(prov1)
	require.Equal(t, []string{RoleCommittee, RoleProvider}, a.Roles)
	require.Equal(t, "Org1MSP", a.MSPID)

	errContains(t, grant(admin1, prov1.key(), RoleProvider), "already holds the provider role")
	errContains(t, grant(prov1, prov1.key(), RolePublisher), "is not an org admin")
	errContains(t, grant(admin2, prov1.key(), RolePublisher), "admin of Org2MSP cannot change roles of identity in Org1MSP")
	errContains(t, grant(admin1, prov1.key(), "king"), `role: "king" is not one of`)
	errContains(t, grant(admin1, "no-slash", RoleProvider), "is not an identity key")
	errContains(t, grant(admin1, "Org1MSP/not base64!", RoleProvider), "is not an identity key")

	require.NoError(t, revoke(admin1, prov1.key(), RoleCommittee))
	require.Equal(t, EvRoleRevoked, e.event().Type)
	errContains(t, revoke(admin1, prov1.key(), RoleCommittee), "does not hold the committee role")
	errContains(t, revoke(admin2, prov1.key(), RoleProvider), "cannot change roles")
	errContains(t, revoke(nobody, prov1.key(), RoleProvider), "not an org admin")

	a = e.account(prov1)
	require.Equal(t, []string{RoleProvider}, a.Roles)

	// The role grant and revoke are both in the role key's history.
	var hist []HistoryEntry
	require.NoError(t, e.query(nobody, &hist, func(ctx ctxT) (string, error) {
		return e.cc.GetHistory(ctx, "role", RoleCommittee+":"+prov1.key())
	}))
	require.Len(t, hist, 2)
	require.False(t, hist[0].IsDelete)
	require.True(t, hist[1].IsDelete)
	require.NoError(t, e.query(nobody, &hist, func(ctx ctxT) (string, error) { return e.cc.GetHistory(ctx, "account", prov1.key()) }))
	require.Len(t, hist, 3)
}

func TestListRoleHoldersPaginates(t *testing.T) { bothModes(t, listRoleHoldersPaginates) }

func listRoleHoldersPaginates(t *testing.T, e *env) {
	e.setupRoles()
	var p struct {
		Items    []RoleGrant `json:"items"`
		Bookmark string      `json:"bookmark"`
		Count    int         `json:"count"`
	}
	require.NoError(t, e.query(nobody, &p, func(ctx ctxT) (string, error) { return e.cc.ListRoleHolders(ctx, RoleProvider, "2", "") }))
	require.Equal(t, 2, p.Count)
	require.NotEmpty(t, p.Bookmark)
	first := append([]RoleGrant(nil), p.Items...)
	p.Items = nil
	require.NoError(t, e.query(nobody, &p, func(ctx ctxT) (string, error) {
		return e.cc.ListRoleHolders(ctx, RoleProvider, "2", p.Bookmark)
	}))
	require.Equal(t, 1, p.Count)
	require.Empty(t, p.Bookmark)
	all := map[string]bool{}
	for _, g := range append(first, p.Items...) {
		all[g.Identity] = true
		require.Equal(t, RoleProvider, g.Role)
	}
	require.True(t, all[prov1.key()] && all[prov2.key()] && all[prov3.key()])

	err := e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.ListRoleHolders(ctx, "x", "", "") })
	errContains(t, err, "is not one of")
	err = e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.ListRoleHolders(ctx, RoleProvider, "0", "") })
	errContains(t, err, "pageSize")
	err = e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.ListRoleHolders(ctx, RoleProvider, "1000", "") })
	errContains(t, err, "pageSize")
}

func TestWhoAmIAndAccounts(t *testing.T) { bothModes(t, whoAmIAndAccounts) }

func whoAmIAndAccounts(t *testing.T, e *env) {
	e.grant(prov1, RoleProvider)
	var w struct {
		Identity string  `json:"identity"`
		MSPID    string  `json:"mspId"`
		Admin    bool    `json:"admin"`
		Account  Account `json:"account"`
	}
	require.NoError(t, e.query(prov1, &w, func(ctx ctxT) (string, error) { return e.cc.WhoAmI(ctx) }))
	require.Equal(t, prov1.key(), w.Identity)
	require.False(t, w.Admin)
	require.Equal(t, []string{RoleProvider}, w.Account.Roles)
	require.NoError(t, e.query(admin1, &w, func(ctx ctxT) (string, error) { return e.cc.WhoAmI(ctx) }))
	require.True(t, w.Admin)
	require.Empty(t, w.Account.Roles)

	err := e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetAccount(ctx, nobody.key()) })
	errContains(t, err, "not found")
	err = e.query(nobody, nil, func(ctx ctxT) (string, error) { return e.cc.GetAccount(ctx, "bad") })
	errContains(t, err, "not an identity key")
}

func TestCallerIdentityErrors(t *testing.T) {
	e := newEnv(t)
	for _, f := range []string{"id", "msp", "cert"} {
		who := &fakeIdentity{msp: "Org1MSP", name: "x", fail: f}
		err := e.query(who, nil, func(ctx ctxT) (string, error) { return e.cc.WhoAmI(ctx) })
		require.Error(t, err, f)
	}
	bad := &fakeIdentity{msp: "Bad MSP", name: "x"}
	err := e.query(bad, nil, func(ctx ctxT) (string, error) { return e.cc.WhoAmI(ctx) })
	errContains(t, err, "caller")
	err = e.tx(nil, func(ctx ctxT) error { _, err := getCaller(ctxNoIdentity{ctx}); return err })
	errContains(t, err, "no client identity")
}
