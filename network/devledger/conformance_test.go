package main

// Conformance: the official fabric-gateway Go client (v1.8.0) against the embedded ledger, over
// real TLS listeners, with the project's chaincode in process. Then a table of refusals: the
// gRPC code and message of each, beside the Fabric v3.1.5 source line that words it.

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-gateway/pkg/identity"
	gp "github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/fedcommittee/fedcommittee/network/devledger/internal/cryptogen"
	"github.com/fedcommittee/fedcommittee/network/devledger/internal/gateway"
	"github.com/fedcommittee/fedcommittee/network/devledger/internal/shimhost"
)

type testNet struct {
	net  *gateway.Network
	dir  string
	cfg  *Config
	srv  *listeners
	logs *strings.Builder
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func orgDir(dir string, n int) string {
	return filepath.Join(dir, "crypto", "peerOrganizations", fmt.Sprintf("org%d.fc.local", n))
}

// startNet generates identities and serves three orgs, as `network.sh up` does.
func startNet(t *testing.T) *testNet {
	t.Helper()
	dir := t.TempDir()
	var specs []cryptogen.OrgSpec
	for n := 1; n <= 3; n++ {
		specs = append(specs, cryptogen.OrgSpec{Name: fmt.Sprintf("Org%d", n), Domain: fmt.Sprintf("org%d.fc.local", n), Users: 2, SANs: []string{"127.0.0.1", "localhost"}})
	}
	if err := cryptogen.Generate(filepath.Join(dir, "crypto"), specs); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Channel: "fedchannel", Chaincode: "fedcommittee", ChaincodeVersion: "1.0", DataDir: filepath.Join(dir, "data"),
		BatchTimeoutMS: 30, BatchMaxTx: 200, ChaincodeMode: "inproc", OutagesFile: filepath.Join(dir, "outages")}
	for n := 1; n <= 3; n++ {
		peer := filepath.Join(orgDir(dir, n), "peers", fmt.Sprintf("peer0.org%d.fc.local", n))
		cfg.Orgs = append(cfg.Orgs, OrgConfig{
			MSPID: fmt.Sprintf("Org%dMSP", n), Name: fmt.Sprintf("peer0.org%d", n), Listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			MSPDir: filepath.Join(orgDir(dir, n), "msp"), PeerMSPDir: filepath.Join(peer, "msp"),
			TLSCert: filepath.Join(peer, "tls", "server.crt"), TLSKey: filepath.Join(peer, "tls", "server.key"),
		})
	}
	logs := &strings.Builder{}
	n, err := build(cfg, func(f string, a ...any) { fmt.Fprintf(logs, f+"\n", a...) })
	if err != nil {
		t.Fatal(err)
	}
	srv := newListeners(cfg, n, n.Logf)
	if err := srv.apply(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.stopAll()
		_ = n.Ledger.Close()
		if strings.Contains(logs.String(), "UNSUPPORTED:") {
			t.Errorf("the chaincode asked for something the embedded ledger does not support:\n%s", logs)
		}
	})
	return &testNet{net: n, dir: dir, cfg: cfg, srv: srv, logs: logs}
}

// connect opens the official client for user (e.g. "User1", "Admin") of org n, at org n's gateway.
func (tn *testNet) connect(t *testing.T, n int, user string) *client.Gateway {
	t.Helper()
	name := fmt.Sprintf("%s@org%d.fc.local", user, n)
	return tn.connectAs(t, n, filepath.Join("users", name, "msp"), name+"-cert.pem")
}

// connectAs opens the official client with the identity in org n's folder mspDir.
func (tn *testNet) connectAs(t *testing.T, n int, mspDir, certFile string) *client.Gateway {
	t.Helper()
	return tn.connectFrom(t, tn.dir, n, mspDir, certFile)
}

// connectFrom takes the identity from another identity tree (base), e.g. one of an unknown CA.
func (tn *testNet) connectFrom(t *testing.T, base string, n int, mspDir, certFile string) *client.Gateway {
	t.Helper()
	mspDir = filepath.Join(orgDir(base, n), mspDir)
	certPEM, err := os.ReadFile(filepath.Join(mspDir, "signcerts", certFile))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.CertificateFromPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.NewX509Identity(fmt.Sprintf("Org%dMSP", n), cert)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(mspDir, "keystore", "priv_sk"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.PrivateKeyFromPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	sign, err := identity.NewPrivateKeySign(key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(orgDir(tn.dir, n), "tlsca", fmt.Sprintf("tlsca.org%d.fc.local-cert.pem", n)))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conn, err := grpc.NewClient(tn.cfg.Orgs[n-1].Listen, grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := client.Connect(id, client.WithSign(sign), client.WithClientConnection(conn),
		client.WithEvaluateTimeout(10*time.Second), client.WithEndorseTimeout(20*time.Second),
		client.WithSubmitTimeout(10*time.Second), client.WithCommitStatusTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close(); conn.Close() })
	return gw
}

func whoAmI(t *testing.T, c *client.Contract) string {
	t.Helper()
	out, err := c.EvaluateTransaction("WhoAmI")
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	var me struct {
		Identity string `json:"identity"`
	}
	if err := json.Unmarshal(out, &me); err != nil || me.Identity == "" {
		t.Fatalf("WhoAmI returned %q (%v)", out, err)
	}
	return me.Identity
}

func TestOfficialClientEvaluatesSubmitsAndStreamsEvents(t *testing.T) {
	tn := startNet(t)
	user := tn.connect(t, 1, "User1").GetNetwork("fedchannel")
	admin := tn.connect(t, 1, "Admin").GetNetwork("fedchannel")
	me := whoAmI(t, user.GetContract("fedcommittee"))
	if !strings.HasPrefix(me, "Org1MSP/") {
		t.Fatalf("WhoAmI = %q, want the Org1MSP key", me)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := user.ChaincodeEvents(ctx, "fedcommittee", client.WithStartBlock(0))
	if err != nil {
		t.Fatal(err)
	}
	result, commit, err := admin.GetContract("fedcommittee").SubmitAsync("GrantRole", client.WithArguments(me, "provider"))
	if err != nil {
		t.Fatalf("GrantRole: %v", err)
	}
	st, err := commit.Status()
	if err != nil || !st.Successful {
		t.Fatalf("GrantRole commit: %+v, %v", st, err)
	}
	if st.BlockNumber < 1 {
		t.Fatalf("GrantRole committed in block %d; block 0 is the channel's config block", st.BlockNumber)
	}
	if len(result) != 0 {
		t.Fatalf("GrantRole returned %q, want no payload", result)
	}
	select {
	case ev := <-events:
		if ev.EventName != "RoleGranted" || ev.TransactionID != commit.TransactionID() || ev.ChaincodeName != "fedcommittee" || ev.BlockNumber != st.BlockNumber {
			t.Fatalf("event %+v, want RoleGranted of %s in block %d", ev, commit.TransactionID(), st.BlockNumber)
		}
	case <-ctx.Done():
		t.Fatal("no chaincode event within 30 s")
	}

	grantingAHeldRoleIsAChaincodeError(t, admin, me)

	// Endorsed by one org only: ordered, then invalid at commit, as the majority policy demands.
	_, commit, err = admin.GetContract("fedcommittee").SubmitAsync("RevokeRole",
		client.WithArguments(me, "provider"), client.WithEndorsingOrganizations("Org1MSP"))
	if err != nil {
		t.Fatalf("RevokeRole endorsed by Org1 alone: %v", err)
	}
	st, err = commit.Status()
	if err != nil || st.Successful || st.Code.String() != "ENDORSEMENT_POLICY_FAILURE" {
		t.Fatalf("one org's endorsement committed as %+v (%v), want ENDORSEMENT_POLICY_FAILURE", st, err)
	}
	// Its writes were not applied: the role is still held.
	roles, err := user.GetContract("fedcommittee").EvaluateTransaction("WhoAmI")
	if err != nil || !strings.Contains(string(roles), `"roles":["provider"]`) {
		t.Fatalf("after an invalid revoke the role must still be held: %s (%v)", roles, err)
	}
	invalidTx := commit.TransactionID()

	// Nor was its event emitted: the next event is the valid revoke's.
	_, commit, err = admin.GetContract("fedcommittee").SubmitAsync("RevokeRole", client.WithArguments(me, "provider"))
	if err != nil {
		t.Fatalf("RevokeRole: %v", err)
	}
	if st, err = commit.Status(); err != nil || !st.Successful {
		t.Fatalf("RevokeRole commit: %+v, %v", st, err)
	}
	select {
	case ev := <-events:
		if ev.TransactionID == invalidTx || ev.TransactionID != commit.TransactionID() || ev.EventName != "RoleRevoked" {
			t.Fatalf("event %+v: want the valid RoleRevoked of %s, never the invalid %s's", ev, commit.TransactionID(), invalidTx)
		}
	case <-ctx.Done():
		t.Fatal("no event for the valid revoke within 30 s")
	}
}

// grantingAHeldRoleIsAChaincodeError: the same role twice is a chaincode error, and the client
// reads the chaincode's message from the gateway's one ErrorDetail.
func grantingAHeldRoleIsAChaincodeError(t *testing.T, admin *client.Network, me string) {
	t.Helper()
	_, err := admin.GetContract("fedcommittee").Submit("GrantRole", client.WithArguments(me, "provider"))
	st2 := endorseStatus(t, err)
	if st2.Code() != codes.Aborted || st2.Message() != "failed to endorse transaction, see attached details for more info" {
		t.Fatalf("status %v %q", st2.Code(), st2.Message())
	}
	details := st2.Details()
	if len(details) != 1 {
		t.Fatalf("want one ErrorDetail (the gateway's own org), got %d", len(details))
	}
	d := details[0].(*gp.ErrorDetail)
	if d.MspId != "Org1MSP" || !strings.HasPrefix(d.Message, "chaincode response 500, ") {
		t.Fatalf("detail %+v", d)
	}
}

// nondeterministic writes a different value on every run: Fabric refuses to assemble such a
// transaction because the endorsers' results differ.
type nondeterministic struct{ runs atomic.Int64 }

func (c *nondeterministic) Init(shim.ChaincodeStubInterface) *peer.Response { return shim.Success(nil) }

func (c *nondeterministic) Invoke(stub shim.ChaincodeStubInterface) *peer.Response {
	if err := stub.PutState("counter", []byte(fmt.Sprint(c.runs.Add(1)))); err != nil {
		return shim.Error(err.Error())
	}
	return shim.Success(nil)
}

func TestNonDeterministicChaincodeIsRefusedAtEndorsement(t *testing.T) {
	tn := startNet(t)
	cc := &nondeterministic{}
	for _, o := range tn.net.Orgs {
		host, err := shimhost.NewInProc("fedcommittee", cc, tn.net.Logf)
		if err != nil {
			t.Fatal(err)
		}
		_ = o.Host.Close()
		o.Host = host
	}
	_, err := tn.connect(t, 1, "User1").GetNetwork("fedchannel").GetContract("fedcommittee").Submit("Anything")
	st := endorseStatus(t, err)
	if st.Code() != codes.Aborted || st.Message() != "failed to collect enough transaction endorsements, see attached details for more info" {
		t.Fatalf("status %v %q (Fabric: internal/pkg/gateway/endorse.go:113)", st.Code(), st.Message())
	}
	found := false
	for _, d := range st.Details() {
		found = found || d.(*gp.ErrorDetail).Message == "ProposalResponsePayloads do not match"
	}
	if !found {
		t.Fatalf("details %v: want \"ProposalResponsePayloads do not match\" (Fabric: internal/pkg/gateway/endorsement.go:133)", st.Details())
	}
}

// endorseStatus is the gRPC status an EndorseError carries; any other error fails the test.
func endorseStatus(t *testing.T, err error) *status.Status {
	t.Helper()
	var endorseErr *client.EndorseError
	if !errors.As(err, &endorseErr) {
		t.Fatalf("want an EndorseError, got %v", err)
	}
	return status.Convert(endorseErr.Unwrap())
}

// refusal is one case of the table: how to provoke it, and Fabric's answer.
type refusal struct {
	name    string
	do      func(t *testing.T, tn *testNet) error
	code    codes.Code
	message string // the status message must start with this
	fabric  string // where Fabric v3.1.5 words it
}

// evaluate is a case's action: org's user evaluates fn on channel.
func evaluate(org int, user, channel, fn string, args ...string) func(*testing.T, *testNet) error {
	return func(t *testing.T, tn *testNet) error {
		_, err := tn.connect(t, org, user).GetNetwork(channel).GetContract("fedcommittee").EvaluateTransaction(fn, args...)
		return err
	}
}

func TestRefusalsReadAsFabricWordsThem(t *testing.T) {
	tn := startNet(t)
	cases := []refusal{
		{
			name: "evaluate, chaincode error",
			do:   evaluate(1, "User1", "fedchannel", "GetModel", "no-such-model"),
			code: codes.Unknown, message: "evaluate call to endorser returned error: chaincode response 500, ",
			fabric: "internal/pkg/gateway/evaluate.go:86 with apiutils.go:52 (responseStatus)",
		},
		{
			name: "endorse, chaincode error",
			do: func(t *testing.T, tn *testNet) error {
				_, err := tn.connect(t, 2, "User1").GetNetwork("fedchannel").GetContract("fedcommittee").Submit("GrantRole", client.WithArguments("x", "provider"))
				return err
			},
			code: codes.Aborted, message: "failed to endorse transaction, see attached details for more info",
			fabric: "internal/pkg/gateway/endorse.go:235 (first endorser failed)",
		},
		{
			name: "evaluate, unknown function",
			do:   evaluate(3, "User2", "fedchannel", "NoSuchFunction"),
			code: codes.Unknown, message: "evaluate call to endorser returned error: chaincode response 500, ",
			fabric: "internal/pkg/gateway/apiutils.go:52",
		},
		{
			name: "evaluate on another channel",
			do:   evaluate(1, "User1", "otherchannel", "WhoAmI"),
			code: codes.Unavailable, message: "failed to get config for channel [otherchannel]",
			fabric: "internal/pkg/gateway/evaluate.go:35 with registry.go:390",
		},
		{
			name: "proposal by a peer identity (channel Writers)",
			do: func(t *testing.T, tn *testNet) error {
				gw := tn.connectAs(t, 1, filepath.Join("peers", "peer0.org1.fc.local", "msp"), "peer0.org1.fc.local-cert.pem")
				_, err := gw.GetNetwork("fedchannel").GetContract("fedcommittee").EvaluateTransaction("WhoAmI")
				return err
			},
			code: codes.FailedPrecondition, message: "evaluate call to endorser returned error: Failed evaluating policy on signed data during check policy on channel [fedchannel] with policy [/Channel/Application/Writers]",
			fabric: "core/policy/policy.go:183, classified by internal/pkg/gateway/apiutils.go:39",
		},
	}
	cases = append(cases, refusal{
		name: "creator from an unknown CA",
		do: func(t *testing.T, tn *testNet) error {
			forged := t.TempDir()
			spec := []cryptogen.OrgSpec{{Name: "Org1", Domain: "org1.fc.local", Users: 1, SANs: []string{"127.0.0.1"}}}
			if err := cryptogen.Generate(filepath.Join(forged, "crypto"), spec); err != nil {
				t.Fatal(err)
			}
			gw := tn.connectFrom(t, forged, 1, filepath.Join("users", "User1@org1.fc.local", "msp"), "User1@org1.fc.local-cert.pem")
			_, err := gw.GetNetwork("fedchannel").GetContract("fedcommittee").EvaluateTransaction("WhoAmI")
			return err
		},
		code:    codes.FailedPrecondition,
		message: "evaluate call to endorser returned error: error validating proposal: access denied: channel [fedchannel] creator org unknown, creator is malformed",
		fabric:  "core/endorser/msgvalidation.go:173 (wrapped by endorser.go:261), classified by internal/pkg/gateway/apiutils.go:39",
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do(t, tn)
			if err == nil {
				t.Fatalf("no error; Fabric refuses this (%s)", c.fabric)
			}
			st := status.Convert(errors.Unwrap(err))
			if st.Code() == codes.OK || st.Code() == codes.Unknown && st.Message() == "" {
				st = status.Convert(err)
			}
			if st.Code() != c.code || !strings.HasPrefix(st.Message(), c.message) {
				t.Fatalf("got %v %q, want %v %q (Fabric: %s)", st.Code(), st.Message(), c.code, c.message, c.fabric)
			}
		})
	}
}
