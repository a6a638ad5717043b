package shimhost

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// TestHandshakeByHand plays the chaincode's side of the stream message by
// message: REGISTER -> REGISTERED, READY (empty: no write batch, no multi
// get); KEEPALIVE is not echoed; requests for unknown transactions get ERROR;
// a TRANSACTION carries input, txid, channel and proposal.
// registerByHand plays the chaincode's side of the handshake (REGISTER; REGISTERED and READY
// expected back) and returns its end of the stream, the host's handler, and a receive function.
func registerByHand(t *testing.T) (*ccEnd, *handler, func() *peer.ChaincodeMessage) {
	t.Helper()
	toCC, fromCC := newPipeDir(), newPipeDir()
	cc := &ccEnd{in: toCC, out: fromCC}
	type made struct {
		h   *handler
		err error
	}
	hc := make(chan made, 1)
	go func() {
		h, err := newHandler(context.Background(), ccName, &peerEnd{in: fromCC, out: toCC}, func() { toCC.close(); fromCC.close() }, t.Logf)
		hc <- made{h, err}
	}()
	recv := func() *peer.ChaincodeMessage {
		t.Helper()
		m, err := cc.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	id, _ := proto.Marshal(&peer.ChaincodeID{Name: ccName})
	if err := cc.Send(&peer.ChaincodeMessage{Type: peer.ChaincodeMessage_REGISTER, Payload: id}); err != nil {
		t.Fatal(err)
	}
	if m := recv(); m.Type != peer.ChaincodeMessage_REGISTERED {
		t.Fatalf("got %v, want REGISTERED", m.Type)
	}
	if m := recv(); m.Type != peer.ChaincodeMessage_READY || len(m.Payload) != 0 {
		t.Fatalf("got %v %x, want READY with an empty payload", m.Type, m.Payload)
	}
	mk := <-hc
	if mk.err != nil {
		t.Fatal(mk.err)
	}
	return cc, mk.h, recv
}

func TestHandshakeByHand(t *testing.T) {
	cc, h, recv := registerByHand(t)
	defer cc.CloseSend()
	defer h.shutdown(errClosed)

	_ = cc.Send(&peer.ChaincodeMessage{Type: peer.ChaincodeMessage_KEEPALIVE})
	gs, _ := proto.Marshal(&peer.GetState{Key: "k"})
	_ = cc.Send(&peer.ChaincodeMessage{Type: peer.ChaincodeMessage_GET_STATE, Payload: gs, Txid: "nope", ChannelId: channel})
	if m := recv(); m.Type != peer.ChaincodeMessage_ERROR || m.Txid != "nope" || m.ChannelId != channel || !strings.Contains(string(m.Payload), "no ledger context") {
		t.Fatalf("unknown tx: got %v %q", m.Type, m.Payload)
	}

	// A transaction: check the TRANSACTION message, serve one GET_STATE,
	// then complete.
	st := newStore()
	st.put(ccName, "k", []byte("v"), "seed")
	sp, in := signedProposal(t, channel, "tx1", ccName, "Org1MSP", []byte("cert"), "f", "a")
	done := make(chan *Result, 1)
	go func() {
		res, err := h.execute(context.Background(), Request{ChannelID: channel, TxID: "tx1", Input: in, SignedProposal: sp, Sim: st.sim("tx1")})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	m := recv()
	gotIn := &peer.ChaincodeInput{}
	_ = proto.Unmarshal(m.Payload, gotIn)
	if m.Type != peer.ChaincodeMessage_TRANSACTION || m.Txid != "tx1" || m.ChannelId != channel || !proto.Equal(m.Proposal, sp) || !proto.Equal(gotIn, in) {
		t.Fatalf("TRANSACTION message = %v", m)
	}
	_ = cc.Send(&peer.ChaincodeMessage{Type: peer.ChaincodeMessage_GET_STATE, Payload: gs, Txid: "tx1", ChannelId: channel})
	if m := recv(); m.Type != peer.ChaincodeMessage_RESPONSE || string(m.Payload) != "v" || m.Txid != "tx1" {
		t.Fatalf("GET_STATE answer = %v", m)
	}
	resp, _ := proto.Marshal(&peer.Response{Status: 200, Payload: []byte("done")})
	_ = cc.Send(&peer.ChaincodeMessage{Type: peer.ChaincodeMessage_COMPLETED, Payload: resp, Txid: "tx1", ChannelId: channel,
		ChaincodeEvent: &peer.ChaincodeEvent{EventName: "E"}})
	select {
	case res := <-done:
		if string(res.Response.Payload) != "done" || res.Event.TxId != "tx1" || res.Event.ChaincodeId != ccName {
			t.Fatalf("result = %v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no result")
	}

	// The stream breaking fails the transactions in flight.
	go func() {
		_, err := h.execute(context.Background(), Request{ChannelID: channel, TxID: "tx2", Input: in, SignedProposal: sp, Sim: st.sim("tx2")})
		done <- &Result{Response: &peer.Response{Message: err.Error()}}
	}()
	recv() // TRANSACTION tx2
	cc.CloseSend()
	if res := <-done; !strings.Contains(res.Response.Message, "chaincode stream terminated") {
		t.Fatalf("broken stream: %q", res.Response.Message)
	}
}
