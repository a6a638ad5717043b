package shimhost

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fedcommittee/fedcommittee/chaincode/fedcommittee"
	"github.com/fedcommittee/fedcommittee/network/devledger/internal/ledger"
	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// TestWithRealLedger runs the real chaincode against the real ledger's
// simulator: a write is simulated, wrapped in an endorser-transaction
// envelope, ordered and committed; queries then read it through range
// (paginated) and history requests.
func TestWithRealLedger(t *testing.T) {
	l, err := ledger.Open(ledger.Config{Dir: t.TempDir(), Channel: channel, BatchTimeout: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cc, err := fedcommittee.NewChaincode()
	if err != nil {
		t.Fatal(err)
	}
	e := inProcEnv(t, cc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	run := func(who []byte, txid string, commit bool, args ...string) *Result {
		t.Helper()
		sp, in := signedProposal(t, channel, txid, ccName, "Org1MSP", who, args...)
		sim, err := l.NewSimulator(txid)
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Done()
		res, err := e.h.Execute(ctx, Request{ChannelID: channel, TxID: txid, Input: in, SignedProposal: sp, Sim: sim})
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if res.Response.Status != 200 {
			t.Fatalf("%v: %d %s", args, res.Response.Status, res.Response.Message)
		}
		if !commit {
			return res
		}
		rws, err := sim.Results()
		if err != nil {
			t.Fatal(err)
		}
		prp := mustMarshal(t, &peer.ProposalResponsePayload{Extension: mustMarshal(t, &peer.ChaincodeAction{Results: rws})})
		cap := mustMarshal(t, &peer.ChaincodeActionPayload{Action: &peer.ChaincodeEndorsedAction{ProposalResponsePayload: prp}})
		prop := &peer.Proposal{}
		if err := proto.Unmarshal(sp.ProposalBytes, prop); err != nil {
			t.Fatal(err)
		}
		// The transaction's header is the proposal's header (protoutil/txutils.go).
		hdr := &common.Header{}
		if err := proto.Unmarshal(prop.Header, hdr); err != nil {
			t.Fatal(err)
		}
		pl := &common.Payload{
			Header: hdr,
			Data:   mustMarshal(t, &peer.Transaction{Actions: []*peer.TransactionAction{{Header: hdr.SignatureHeader, Payload: cap}}}),
		}
		if err := l.Order(&common.Envelope{Payload: mustMarshal(t, pl)}); err != nil {
			t.Fatal(err)
		}
		code, _, err := l.WaitTx(ctx, txid)
		if err != nil || code != peer.TxValidationCode_VALID {
			t.Fatalf("commit %s: %v %v", txid, code, err)
		}
		return res
	}

	var who struct {
		Identity string `json:"identity"`
	}
	if err := json.Unmarshal(run(e.user, "rl-whoami", false, "WhoAmI").Response.Payload, &who); err != nil {
		t.Fatal(err)
	}
	run(e.admin, "rl-grant1", true, "GrantRole", who.Identity, "provider")
	run(e.admin, "rl-grant2", true, "GrantRole", who.Identity, "committee")
	if p := string(run(e.user, "rl-list", false, "ListRoleHolders", "provider", "10", "").Response.Payload); !strings.Contains(p, who.Identity) || !strings.Contains(p, `"count":1`) {
		t.Fatalf("ListRoleHolders = %s", p)
	}
	p := string(run(e.user, "rl-hist", false, "GetHistory", "account", who.Identity).Response.Payload)
	if !strings.Contains(p, "rl-grant1") || !strings.Contains(p, "rl-grant2") {
		t.Fatalf("GetHistory = %s", p)
	}
	if e.log.has("UNSUPPORTED") {
		t.Fatalf("unsupported request: %v", e.log.lines)
	}
}
