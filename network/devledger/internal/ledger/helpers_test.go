package ledger

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const testChannel = "fedchannel"

// endorserEnv builds a real endorser-transaction envelope carrying rwsBytes as the chaincode action's results.
// Signatures and identities are left empty: the test Validate does not check them.
func endorserEnv(txid string, rwsBytes []byte) *common.Envelope {
	m := func(msg proto.Message) []byte {
		b, err := proto.Marshal(msg)
		if err != nil {
			panic(err)
		}
		return b
	}
	chdr := &common.ChannelHeader{
		Type:      int32(common.HeaderType_ENDORSER_TRANSACTION),
		ChannelId: testChannel,
		TxId:      txid,
		Timestamp: timestamppb.Now(),
	}
	hdr := &common.Header{ChannelHeader: m(chdr), SignatureHeader: m(&common.SignatureHeader{})}
	ca := &peer.ChaincodeAction{Results: rwsBytes, Response: &peer.Response{Status: 200}}
	prp := &peer.ProposalResponsePayload{ProposalHash: []byte("h"), Extension: m(ca)}
	cap := &peer.ChaincodeActionPayload{
		ChaincodeProposalPayload: m(&peer.ChaincodeProposalPayload{}),
		Action:                   &peer.ChaincodeEndorsedAction{ProposalResponsePayload: m(prp)},
	}
	tx := &peer.Transaction{Actions: []*peer.TransactionAction{{Header: hdr.SignatureHeader, Payload: m(cap)}}}
	return &common.Envelope{Payload: m(&common.Payload{Header: hdr, Data: m(tx)})}
}

// testValidate is the lead's Validate minus identities: parse the rwset out of the envelope; a txid starting
// with "bad-" is refused as ENDORSEMENT_POLICY_FAILURE.
func testValidate(env *common.Envelope) (string, peer.TxValidationCode, *rwset.TxReadWriteSet) {
	txid, _, rws, err := ParseEndorserTx(env)
	if err != nil {
		return txid, peer.TxValidationCode_BAD_PAYLOAD, nil
	}
	if len(txid) > 4 && txid[:4] == "bad-" {
		return txid, peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE, nil
	}
	return txid, peer.TxValidationCode_VALID, rws
}

func openTest(t testing.TB, dir string, maxTx int, timeout time.Duration) *Ledger {
	t.Helper()
	l, err := Open(Config{Dir: dir, Channel: testChannel, BatchTimeout: timeout, BatchMaxTx: maxTx,
		Validate: testValidate, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// simulate runs fn in a fresh simulator and returns the endorser envelope of its results.
func simulate(t testing.TB, l *Ledger, txid string, fn func(s Simulator)) *common.Envelope {
	t.Helper()
	s, err := l.NewSimulator(txid)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Done()
	fn(s)
	res, err := s.Results()
	if err != nil {
		t.Fatal(err)
	}
	return endorserEnv(txid, res)
}

// commitAll orders the envelopes and waits for all of them; it returns their codes and blocks.
func commitAll(t testing.TB, l *Ledger, envs ...*common.Envelope) ([]peer.TxValidationCode, []uint64) {
	t.Helper()
	for _, e := range envs {
		if err := l.Order(e); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	codes := make([]peer.TxValidationCode, len(envs))
	blocks := make([]uint64, len(envs))
	for i, e := range envs {
		txid, _, _, _ := ParseEndorserTx(e)
		code, blk, err := l.WaitTx(ctx, txid)
		if err != nil {
			t.Fatalf("WaitTx %s: %v", txid, err)
		}
		codes[i], blocks[i] = code, blk
	}
	return codes, blocks
}

func put(t testing.TB, s Simulator, ns, key, val string) {
	t.Helper()
	if err := s.PutState(ns, key, []byte(val)); err != nil {
		t.Fatal(err)
	}
}

func get(t testing.TB, s Simulator, ns, key string) string {
	t.Helper()
	v, err := s.GetState(ns, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func drain(t testing.TB, it RangeIterator) []string {
	t.Helper()
	var keys []string
	for {
		kv, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if kv == nil {
			return keys
		}
		keys = append(keys, kv.Key)
	}
}

// dumpState lists the published state as "ns/key=value@block:tx" lines.
func dumpState(l *Ledger) []string {
	l.mu.RLock()
	snap := l.snap
	l.mu.RUnlock()
	var out []string
	snap.each(func(ns, key string, value []byte, ver Version) {
		out = append(out, fmt.Sprintf("%s/%s=%s@%d:%d", ns, key, value, ver.BlockNum, ver.TxNum))
	})
	sort.Strings(out)
	return out
}

// parseResults splits serialized rwset bytes into per-namespace KVRWSets.
func parseResults(t testing.TB, b []byte) ([]string, []*kvrwset.KVRWSet) {
	t.Helper()
	rws := &rwset.TxReadWriteSet{}
	if err := proto.Unmarshal(b, rws); err != nil {
		t.Fatal(err)
	}
	names, sets, err := parseKVRWSets(rws)
	if err != nil {
		t.Fatal(err)
	}
	return names, sets
}

// eachTx calls fn with every transaction on l, in order: its block number, index in the block,
// envelope and validation code.
func eachTx(t testing.TB, l *Ledger, fn func(n uint64, i int, env *common.Envelope, code peer.TxValidationCode)) {
	t.Helper()
	for n := uint64(0); n < l.Height(); n++ {
		b, err := l.Block(n)
		if err != nil {
			t.Fatal(err)
		}
		filter := b.Metadata.Metadata[common.BlockMetadataIndex_TRANSACTIONS_FILTER]
		for i, raw := range b.Data.Data {
			env := &common.Envelope{}
			if err := proto.Unmarshal(raw, env); err != nil {
				t.Fatal(err)
			}
			fn(n, i, env, peer.TxValidationCode(filter[i]))
		}
	}
}

// replayWrites recomputes the state from the blocks' VALID transactions, independently of the ledger's code
// paths for state (it shares only ParseEndorserTx).
func replayWrites(t testing.TB, l *Ledger) []string {
	t.Helper()
	state := map[string]string{}
	eachTx(t, l, func(n uint64, i int, env *common.Envelope, code peer.TxValidationCode) {
		if code != peer.TxValidationCode_VALID {
			return
		}
		_, _, rws, err := ParseEndorserTx(env)
		if err != nil {
			return // the config block
		}
		names, sets := parseResults(t, mustMarshal(rws))
		for j, ns := range names {
			for _, w := range sets[j].Writes {
				k := ns + "/" + w.Key
				if w.IsDelete {
					delete(state, k)
				} else {
					state[k] = fmt.Sprintf("%s=%s@%d:%d", k, w.Value, n, i)
				}
			}
		}
	})
	out := make([]string, 0, len(state))
	for _, v := range state {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
