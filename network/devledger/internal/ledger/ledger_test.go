package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

func TestGenesisBlock(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, 200, 5*time.Millisecond)
	defer l.Close()
	if h := l.Height(); h != 1 {
		t.Fatalf("height %d", h)
	}
	b, err := l.Block(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Data.Data) != 1 || !bytes.Equal(b.Metadata.Metadata[common.BlockMetadataIndex_TRANSACTIONS_FILTER], []byte{0}) {
		t.Fatalf("block 0 = %v", b)
	}
	env := &common.Envelope{}
	proto.Unmarshal(b.Data.Data[0], env)
	payload, chdr, err := channelHeaderOf(env)
	if err != nil || common.HeaderType(chdr.Type) != common.HeaderType_CONFIG || chdr.ChannelId != testChannel {
		t.Fatalf("chdr %v err %v", chdr, err)
	}
	if err := proto.Unmarshal(payload.Data, &common.ConfigEnvelope{}); err != nil {
		t.Fatal(err)
	}
	info := l.BlockchainInfo()
	if info.Height != 1 || !bytes.Equal(info.CurrentBlockHash, headerHash(b.Header)) {
		t.Fatalf("info %v", info)
	}
	if _, err := l.Block(1); err == nil || !bytes.Contains([]byte(err.Error()), []byte("[1]")) {
		t.Fatalf("Block(1) err = %v", err)
	}
}

func TestBlockChainHashes(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	seed(t, l, "a", "cc", "k", "v")
	seed(t, l, "b", "cc", "k2", "v")
	for n := uint64(1); n < l.Height(); n++ {
		prev, _ := l.Block(n - 1)
		b, _ := l.Block(n)
		if !bytes.Equal(b.Header.PreviousHash, headerHash(prev.Header)) || !bytes.Equal(b.Header.DataHash, dataHash(b.Data)) {
			t.Fatalf("block %d hashes do not chain", n)
		}
		if len(b.Metadata.Metadata) != len(common.BlockMetadataIndex_name) {
			t.Fatalf("metadata slots %d", len(b.Metadata.Metadata))
		}
	}
	if info := l.BlockchainInfo(); info.Height != 3 {
		t.Fatalf("info %v", info)
	}
}

func TestMVCCConflictSameBlock(t *testing.T) {
	l := openTest(t, t.TempDir(), 2, time.Minute) // the block is cut at 2 txs
	defer l.Close()
	seed2 := simulate(t, l, "seed", func(s Simulator) { put(t, s, "cc", "k", "0") })
	pad := simulate(t, l, "pad", func(s Simulator) {})
	commitAll(t, l, seed2, pad)
	inc := func(txid string) *common.Envelope {
		return simulate(t, l, txid, func(s Simulator) { put(t, s, "cc", "k", get(t, s, "cc", "k")+"1") })
	}
	a, b := inc("a"), inc("b")
	codes, blocks := commitAll(t, l, a, b)
	if codes[0] != peer.TxValidationCode_VALID || codes[1] != peer.TxValidationCode_MVCC_READ_CONFLICT || blocks[0] != blocks[1] {
		t.Fatalf("codes %v blocks %v", codes, blocks)
	}
	s, _ := l.NewSimulator("check")
	defer s.Done()
	if v := get(t, s, "cc", "k"); v != "01" {
		t.Fatalf("k = %q", v)
	}
	// The invalid tx stays in the block with its code.
	blk, _ := l.Block(blocks[1])
	if f := blk.Metadata.Metadata[common.BlockMetadataIndex_TRANSACTIONS_FILTER]; !bytes.Equal(f, []byte{0, byte(peer.TxValidationCode_MVCC_READ_CONFLICT)}) {
		t.Fatalf("filter %v", f)
	}
}

func TestMVCCConflictAcrossBlocksAndAbsentKey(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	seed(t, l, "seed", "cc", "k", "0")
	stale := simulate(t, l, "stale", func(s Simulator) { put(t, s, "cc", "k", get(t, s, "cc", "k")+"x") })
	absent := simulate(t, l, "absent", func(s Simulator) { get(t, s, "cc", "new") })
	seed(t, l, "writer", "cc", "k", "1", "cc", "new", "n")
	codes, _ := commitAll(t, l, stale, absent)
	if codes[0] != peer.TxValidationCode_MVCC_READ_CONFLICT || codes[1] != peer.TxValidationCode_MVCC_READ_CONFLICT {
		t.Fatalf("codes %v", codes)
	}
}

func TestPhantomReadConflict(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	seed(t, l, "seed", "cc", "a", "1", "cc", "c", "3", "cc", "x", "9")
	scanAll := func(txid string) *common.Envelope {
		return simulate(t, l, txid, func(s Simulator) {
			it, _ := s.GetStateRange("cc", "a", "m")
			drain(t, it)
			put(t, s, "other", txid, "done")
		})
	}
	scanFirst := func(txid string) *common.Envelope { // reads only "a": the range info ends at "a"
		return simulate(t, l, txid, func(s Simulator) {
			it, _ := s.GetStateRange("cc", "a", "m")
			it.Next()
			it.Close()
		})
	}
	full, first := scanAll("full"), scanFirst("first")
	seed(t, l, "insert", "cc", "b", "2") // inside [a, m), after "a"
	codes, _ := commitAll(t, l, full, first)
	if codes[0] != peer.TxValidationCode_PHANTOM_READ_CONFLICT || codes[1] != peer.TxValidationCode_VALID {
		t.Fatalf("codes %v", codes)
	}
	// Deleting a key of the range is a phantom too; an unrelated write is not.
	full3 := scanAll("full3")
	del := simulate(t, l, "del", func(s Simulator) { s.DelState("cc", "c") })
	codes3, _ := commitAll(t, l, del, full3)
	if codes3[1] != peer.TxValidationCode_PHANTOM_READ_CONFLICT {
		t.Fatalf("codes %v", codes3)
	}
	full4 := scanAll("full4")
	unrelated := simulate(t, l, "unrelated", func(s Simulator) { put(t, s, "cc", "z", "after the range") })
	codes4, _ := commitAll(t, l, unrelated, full4)
	if codes4[1] != peer.TxValidationCode_VALID {
		t.Fatalf("codes %v", codes4)
	}
}

func TestPhantomInsideOneBlock(t *testing.T) {
	l := openTest(t, t.TempDir(), 2, time.Minute) // blocks of exactly 2 txs
	defer l.Close()
	a := simulate(t, l, "a", func(s Simulator) { put(t, s, "cc", "a", "1") })
	b := simulate(t, l, "b", func(s Simulator) { put(t, s, "cc", "c", "3") })
	commitAll(t, l, a, b)
	scan := simulate(t, l, "scan", func(s Simulator) {
		it, _ := s.GetStateRange("cc", "a", "m")
		drain(t, it)
	})
	ins := simulate(t, l, "ins", func(s Simulator) { put(t, s, "cc", "b", "2") })
	codes, blocks := commitAll(t, l, ins, scan)
	if blocks[0] != blocks[1] || codes[0] != peer.TxValidationCode_VALID || codes[1] != peer.TxValidationCode_PHANTOM_READ_CONFLICT {
		t.Fatalf("codes %v blocks %v", codes, blocks)
	}
}

func TestDuplicateTxID(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	orig := simulate(t, l, "dup", func(s Simulator) { put(t, s, "cc", "k", "first") })
	codes, blocks := commitAll(t, l, orig)
	if codes[0] != peer.TxValidationCode_VALID {
		t.Fatal(codes)
	}
	again := simulate(t, l, "dup", func(s Simulator) { put(t, s, "cc", "k", "second") })
	if err := l.Order(again); err != nil {
		t.Fatal(err)
	}
	// One new txid twice in a row (same or next block), then a sentinel: blocks commit in order.
	twin := simulate(t, l, "twin", func(s Simulator) { put(t, s, "cc", "t", "1") })
	l.Order(twin)
	l.Order(twin)
	commitAll(t, l, simulate(t, l, "sentinel", func(s Simulator) {}))
	env, code, blk, ok := l.TxByID("dup")
	if !ok || code != peer.TxValidationCode_VALID || blk != blocks[0] || !proto.Equal(env, orig) {
		t.Fatalf("TxByID(dup) = %v %v %v", code, blk, ok)
	}
	var dupCodes []peer.TxValidationCode
	eachTx(t, l, func(_ uint64, _ int, e *common.Envelope, code peer.TxValidationCode) {
		if id, _, _, _ := ParseEndorserTx(e); id == "dup" || id == "twin" {
			dupCodes = append(dupCodes, code)
		}
	})
	want := []peer.TxValidationCode{0, peer.TxValidationCode_DUPLICATE_TXID, 0, peer.TxValidationCode_DUPLICATE_TXID}
	if !reflect.DeepEqual(dupCodes, want) {
		t.Fatalf("codes in blocks %v", dupCodes)
	}
	s, _ := l.NewSimulator("q")
	defer s.Done()
	if v := get(t, s, "cc", "k"); v != "first" {
		t.Fatalf("k = %q", v)
	}
}

func TestInvalidByValidateNotApplied(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	bad := simulate(t, l, "bad-1", func(s Simulator) { put(t, s, "cc", "k", "x") })
	codes, _ := commitAll(t, l, bad)
	if codes[0] != peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE {
		t.Fatal(codes)
	}
	if st := dumpState(l); len(st) != 0 {
		t.Fatalf("state %v", st)
	}
}

func TestWaitContextAndClose(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := l.WaitTx(ctx, "never"); err == nil {
		t.Fatal("WaitTx returned without the tx")
	}
	if err := l.WaitHeight(ctx, 5); err == nil {
		t.Fatal("WaitHeight returned early")
	}
	// Close commits what is queued.
	env := simulate(t, l, "last", func(s Simulator) { put(t, s, "cc", "k", "v") })
	l.Order(env)
	l.Close()
	l.Close()
	if err := l.Order(env); err == nil {
		t.Fatal("Order after Close accepted")
	}
	l2 := openTest(t, l.cfg.Dir, 200, 5*time.Millisecond)
	defer l2.Close()
	if _, code, _, ok := l2.TxByID("last"); !ok || code != peer.TxValidationCode_VALID {
		t.Fatal("queued tx lost on Close")
	}
}

// buildHistory commits a mix of valid and invalid transactions and returns the ledger, still open.
func buildHistory(t *testing.T, dir string) *Ledger {
	l := openTest(t, dir, 3, 5*time.Millisecond)
	seed(t, l, "s1", "cc", "a", "1", "cc", "b", "2", "zz", "q", "9")
	stale := simulate(t, l, "stale", func(s Simulator) { put(t, s, "cc", "a", get(t, s, "cc", "a")+"!") })
	seed(t, l, "s2", "cc", "a", "10")
	del := simulate(t, l, "del", func(s Simulator) { s.DelState("cc", "b"); put(t, s, "cc", "c", "3") })
	bad := simulate(t, l, "bad-x", func(s Simulator) { put(t, s, "cc", "evil", "x") })
	commitAll(t, l, stale, del, bad)
	seed(t, l, "s3", "cc", "b", "again")
	return l
}

func TestReplayEqualsPreRestart(t *testing.T) {
	dir := t.TempDir()
	l := buildHistory(t, dir)
	state, height, info := dumpState(l), l.Height(), l.BlockchainInfo()
	s, _ := l.NewSimulator("h")
	histA, _ := s.GetHistoryForKey("cc", "a")
	histB, _ := s.GetHistoryForKey("cc", "b")
	s.Done()
	var blocks [][]byte
	for n := uint64(0); n < height; n++ {
		b, _ := l.Block(n)
		blocks = append(blocks, mustMarshal(b))
	}
	txids := []string{"s1", "stale", "s2", "del", "bad-x", "s3"}
	idx := map[string][2]uint64{}
	for _, id := range txids {
		_, code, blk, ok := l.TxByID(id)
		if !ok {
			t.Fatalf("%s not indexed", id)
		}
		idx[id] = [2]uint64{uint64(code), blk}
	}
	if !reflect.DeepEqual(state, replayWrites(t, l)) {
		t.Fatalf("state %v differs from the blocks' writes %v", state, replayWrites(t, l))
	}
	l.Close()

	r := openTest(t, dir, 3, 5*time.Millisecond)
	defer r.Close()
	if got := dumpState(r); !reflect.DeepEqual(got, state) {
		t.Fatalf("replayed state %v, want %v", got, state)
	}
	if r.Height() != height || !proto.Equal(r.BlockchainInfo(), info) {
		t.Fatalf("info %v, want %v", r.BlockchainInfo(), info)
	}
	for n := uint64(0); n < height; n++ {
		b, _ := r.Block(n)
		if !bytes.Equal(mustMarshal(b), blocks[n]) {
			t.Fatalf("block %d differs", n)
		}
	}
	for _, id := range txids {
		_, code, blk, ok := r.TxByID(id)
		if !ok || idx[id] != [2]uint64{uint64(code), blk} {
			t.Fatalf("index of %s", id)
		}
	}
	s2, _ := r.NewSimulator("h")
	defer s2.Done()
	ha, _ := s2.GetHistoryForKey("cc", "a")
	hb, _ := s2.GetHistoryForKey("cc", "b")
	if !reflect.DeepEqual(ha, histA) || !reflect.DeepEqual(hb, histB) || len(hb) != 3 {
		t.Fatalf("history differs: %v / %v", hb, histB)
	}
	// The replayed ledger keeps committing on top.
	seed(t, r, "after", "cc", "z", "1")
	if r.Height() != height+1 {
		t.Fatal("no commit after replay")
	}
}

func TestTornTailEveryOffset(t *testing.T) {
	dir := t.TempDir()
	l := buildHistory(t, dir)
	height := l.Height()
	l.Close()
	data, err := os.ReadFile(filepath.Join(dir, BlockFileName))
	if err != nil {
		t.Fatal(err)
	}
	// Find the last record's offset by walking the length prefixes.
	var offs []int
	for off := 0; off < len(data); {
		offs = append(offs, off)
		n := int(binary.BigEndian.Uint64(data[off:]))
		off += recHeader + n + recTrailer
	}
	last := offs[len(offs)-1]
	if uint64(len(offs)) != height {
		t.Fatalf("%d records for height %d", len(offs), height)
	}
	open := func(content []byte) *Ledger {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, BlockFileName), content, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(Config{Dir: d, Channel: testChannel, Validate: testValidate, BatchTimeout: time.Millisecond})
		if err != nil {
			t.Fatalf("open cut file: %v", err)
		}
		return l
	}
	ref := open(data[:last]) // the state as of block height-2
	refState := dumpState(ref)
	ref.Close()
	for cut := last + 1; cut < len(data); cut++ {
		r := open(data[:cut])
		if r.Height() != height-1 || !reflect.DeepEqual(dumpState(r), refState) {
			t.Fatalf("cut at %d: height %d state %v", cut, r.Height(), dumpState(r))
		}
		st, _ := os.Stat(filepath.Join(r.cfg.Dir, BlockFileName))
		if st.Size() != int64(last) {
			t.Fatalf("cut at %d: file not truncated to %d (size %d)", cut, last, st.Size())
		}
		r.Close()
	}
	// A torn tail then more commits: the new block follows the good ones.
	r := open(append(append([]byte{}, data...), data[last:last+20]...))
	if r.Height() != height {
		t.Fatalf("height %d", r.Height())
	}
	seed(t, r, "after-tear", "cc", "n", "1")
	r.Close()
	r = open(mustRead(t, filepath.Join(r.cfg.Dir, BlockFileName)))
	if r.Height() != height+1 {
		t.Fatalf("after reopen height %d", r.Height())
	}
	r.Close()
	// Zeros after the last block (a crash after the file grew) are a torn tail too.
	r = open(append(append([]byte{}, data...), make([]byte, 100)...))
	if r.Height() != height {
		t.Fatalf("zero tail: height %d", r.Height())
	}
	r.Close()
	// Damage in the middle with good data after it is corruption, not a torn tail.
	bad := append([]byte{}, data...)
	bad[offs[1]+recHeader+3] ^= 0xff
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, BlockFileName), bad, 0o644)
	if _, err := Open(Config{Dir: d, Channel: testChannel}); err == nil {
		t.Fatal("mid-file corruption accepted")
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
