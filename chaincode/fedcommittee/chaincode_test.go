package fedcommittee

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// creatorStub adds a real serialized X.509 creator so that contract-api's
// own cid.New parses it, as on a peer.
type creatorStub struct {
	*fakeStub
	creator []byte
}

func (s *creatorStub) GetCreator() ([]byte, error) { return s.creator, nil }

func serializedIdentity(t *testing.T, mspID, cn string, ous ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn, OrganizationalUnit: ous},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(4_000_000_000, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	b, err := proto.Marshal(&msp.SerializedIdentity{Mspid: mspID, IdBytes: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})})
	require.NoError(t, err)
	return b
}

// TestChaincodeInvoke drives the contract through contract-api's Invoke
// with real certificates: routing, string arguments and results, the real
// cid implementation (GetID format, OU=admin detection) and errors.
func TestChaincodeInvoke(t *testing.T) {
	cc, err := NewChaincode()
	require.NoError(t, err)
	l := newFakeLedger()
	adminCreator := serializedIdentity(t, "Org1MSP", "Admin@org1.example.com", "admin")
	userCreator := serializedIdentity(t, "Org1MSP", "User1@org1.example.com", "client")

	invoke := func(creator []byte, args ...string) (int32, string) {
		s := &creatorStub{fakeStub: l.newStub(), creator: creator}
		for _, a := range args {
			s.args = append(s.args, []byte(a))
		}
		resp := cc.Invoke(s)
		if resp.Status == 200 {
			s.commit()
			return resp.Status, string(resp.Payload)
		}
		return resp.Status, resp.Message
	}

	status, out := invoke(userCreator, "WhoAmI")
	require.Equal(t, int32(200), status, out)
	var who struct {
		Identity string `json:"identity"`
		Admin    bool   `json:"admin"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &who))
	require.False(t, who.Admin)
	_, err = checkIdentityKey("identity", who.Identity)
	require.NoError(t, err)

	status, out = invoke(adminCreator, "fedcommittee:WhoAmI")
	require.Equal(t, int32(200), status, out)
	var adm struct {
		Admin bool `json:"admin"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &adm))
	require.True(t, adm.Admin)

	status, out = invoke(userCreator, "GrantRole", who.Identity, RoleProvider)
	require.Equal(t, int32(500), status)
	require.Contains(t, out, "is not an org admin")
	// Surplus arguments are refused (contract-api itself only refuses too few), and nothing is written.
	status, out = invoke(adminCreator, "GrantRole", who.Identity, RoleProvider, "extra")
	require.Equal(t, int32(500), status)
	require.Contains(t, out, "GrantRole takes 2 argument(s), got 3")
	status, out = invoke(adminCreator, "fedcommittee:GrantRole", who.Identity)
	require.Equal(t, int32(500), status)
	status, out = invoke(adminCreator, "GrantRole", who.Identity, RoleProvider)
	require.Equal(t, int32(200), status, out)
	status, out = invoke(userCreator, "GetAccount", who.Identity)
	require.Equal(t, int32(200), status, out)
	require.Contains(t, out, `"roles":["provider"]`)
	status, out = invoke(userCreator, "ListRoleHolders", RoleProvider, "", "")
	require.Equal(t, int32(200), status, out)
	require.Contains(t, out, `"count":1`)
	// The protocol-rule transactions are routed with their string arguments.
	status, out = invoke(userCreator, "RegisterData", "nope", `{"numSamples":1,"dataType":"image","format":"png"}`)
	require.Equal(t, int32(500), status)
	require.Contains(t, out, "model nope not found")
	status, out = invoke(adminCreator, "VoteRuleChange", shaOf("p"), "true")
	require.Equal(t, int32(500), status)
	require.Contains(t, out, "not found")
	status, out = invoke(userCreator, "ProposeRuleChange", "nope", `{"quorum":2}`)
	require.Equal(t, int32(500), status)
	require.Contains(t, out, "model nope not found")
	// The batch of verdicts is routed too (its result is a JSON object; here the update is unknown).
	status, out = invoke(userCreator, "SubmitVerdicts", `{"verdicts":[{"updateId":"`+strings.Repeat("0", 64)+`","score":0.5,"accept":true}]}`)
	require.Equal(t, int32(500), status)
	require.Contains(t, out, "verdicts[0]: update 0000")
	for _, q := range [][]string{{"ListDataRegistrations", "m", "", ""}, {"ListRuleChanges", "m", "", ""}} {
		status, out = invoke(userCreator, q...)
		require.Equal(t, int32(200), status, out)
		require.Contains(t, out, `"count":0`)
	}
	for _, q := range [][]string{{"GetAllocation", "m", "1"}, {"GetRotation", "m", "1"}, {"GetRuleChange", shaOf("p")},
		{"GetDataRegistration", "m", who.Identity}} {
		status, out = invoke(userCreator, q...)
		require.Equal(t, int32(500), status, q)
		require.Regexp(t, "not found|no rotation recorded|no data registration", out, q)
	}
	status, out = invoke(userCreator, "NoSuchTx")
	require.NotEqual(t, int32(200), status)
	require.Contains(t, out, "NoSuchTx")
	require.Len(t, l.events, 1)
	require.Equal(t, EvRoleGranted, l.events[0].Name)
}
