package ledger

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
)

func seed(t *testing.T, l *Ledger, txid string, kv ...string) {
	t.Helper()
	env := simulate(t, l, txid, func(s Simulator) {
		for i := 0; i < len(kv); i += 3 {
			put(t, s, kv[i], kv[i+1], kv[i+2])
		}
	})
	if codes, _ := commitAll(t, l, env); codes[0] != peer.TxValidationCode_VALID {
		t.Fatalf("seed: %v", codes[0])
	}
}

// simulateMixed runs one transaction of writes, a delete, reads and two range queries (the first
// six calls in reverse order with reverse) and returns its read-write set's bytes.
func simulateMixed(t *testing.T, l *Ledger, reverse bool) []byte {
	t.Helper()
	s, err := l.NewSimulator("tx1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Done()
	ops := []func(){
		func() { put(t, s, "zz", "w2", "v") },
		func() { put(t, s, "cc", "w1", "v") },
		func() {
			if err := s.DelState("cc", "a"); err != nil {
				t.Fatal(err)
			}
		},
		func() { get(t, s, "cc", "b") },
		func() { get(t, s, "cc", "missing") },
		func() { get(t, s, "other", "x") },
	}
	if reverse {
		for i := len(ops) - 1; i >= 0; i-- {
			ops[i]()
		}
	} else {
		for _, op := range ops {
			op()
		}
	}
	it, _ := s.GetStateRange("cc", "b", "d") // fully iterated: exhausted, EndKey = "d"
	if got := drain(t, it); !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Fatalf("range = %v", got)
	}
	it2, _ := s.GetStateRange("cc", "a", "") // stopped after one result: EndKey = "a"
	if kv, _ := it2.Next(); kv == nil || kv.Key != "a" || string(kv.Value) != "1" {
		t.Fatalf("first = %v", kv)
	}
	it2.Close()
	b, err := s.Results()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Results(); err == nil {
		t.Fatal("second Results() accepted")
	}
	return b
}

func TestRWSetShapeAndDeterminism(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	seed(t, l, "seed", "cc", "a", "1", "cc", "b", "2", "cc", "c", "3", "cc", "d", "4", "other", "x", "9")

	b1, b2 := simulateMixed(t, l, false), simulateMixed(t, l, true)
	if !bytes.Equal(b1, b2) {
		t.Fatal("rwset bytes depend on call order")
	}
	names, sets := parseResults(t, b1)
	if !reflect.DeepEqual(names, []string{"cc", "other", "zz"}) {
		t.Fatalf("namespaces %v", names)
	}
	cc := sets[0]
	var reads []string
	for _, r := range cc.Reads {
		reads = append(reads, fmt.Sprintf("%s%v", r.Key, r.Version != nil))
	}
	if !reflect.DeepEqual(reads, []string{"btrue", "missingfalse"}) {
		t.Fatalf("reads %v", reads)
	}
	if v := cc.Reads[0].Version; v.BlockNum != 1 || v.TxNum != 0 {
		t.Fatalf("version of b = %v", v)
	}
	if len(cc.Writes) != 2 || cc.Writes[0].Key != "a" || !cc.Writes[0].IsDelete || cc.Writes[1].Key != "w1" {
		t.Fatalf("writes %v", cc.Writes)
	}
	if len(cc.RangeQueriesInfo) != 2 {
		t.Fatalf("range infos %v", cc.RangeQueriesInfo)
	}
	r0, r1 := cc.RangeQueriesInfo[0], cc.RangeQueriesInfo[1]
	if r0.StartKey != "b" || r0.EndKey != "d" || !r0.ItrExhausted || len(r0.GetRawReads().GetKvReads()) != 2 {
		t.Fatalf("range 0 = %v", r0)
	}
	if r1.StartKey != "a" || r1.EndKey != "a" || r1.ItrExhausted || len(r1.GetRawReads().GetKvReads()) != 1 {
		t.Fatalf("range 1 = %v", r1)
	}
	if len(sets[2].Reads) != 0 || len(sets[2].Writes) != 1 {
		t.Fatalf("zz = %v", sets[2])
	}
}

func TestReadOwnWriteSeesCommitted(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	seed(t, l, "seed", "cc", "k", "old")
	s, _ := l.NewSimulator("tx")
	defer s.Done()
	put(t, s, "cc", "k", "new")
	if v := get(t, s, "cc", "k"); v != "old" {
		t.Fatalf("GetState after PutState = %q, want the committed value", v)
	}
	b, _ := s.Results()
	_, sets := parseResults(t, b)
	if len(sets[0].Reads) != 1 || sets[0].Reads[0].Version.GetBlockNum() != 1 {
		t.Fatalf("reads = %v", sets[0].Reads)
	}
}

func TestLongRangeIsMerkleSummarised(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	var kv []string
	for i := 0; i < 120; i++ {
		kv = append(kv, "cc", fmt.Sprintf("k%03d", i), "v")
	}
	seed(t, l, "seed", kv...)
	reader := simulate(t, l, "reader", func(s Simulator) {
		it, _ := s.GetStateRange("cc", "", "")
		if n := len(drain(t, it)); n != 120 {
			t.Fatalf("got %d", n)
		}
		put(t, s, "cc", "out-of-range", "x")
	})
	_, _, rws, _ := ParseEndorserTx(reader)
	_, sets := parseResults(t, mustMarshal(rws))
	m := sets[0].RangeQueriesInfo[0].GetReadsMerkleHashes()
	if m == nil || m.MaxDegree != 50 || m.MaxLevel != 1 || len(m.MaxLevelHashes) != 3 {
		t.Fatalf("merkle summary = %v", m)
	}
	again := simulate(t, l, "reader2", func(s Simulator) {
		it, _ := s.GetStateRange("cc", "", "")
		drain(t, it)
	})
	// "reader" commits first and writes a key inside the range: "reader2" is then a phantom.
	codes, _ := commitAll(t, l, reader, again)
	if codes[0] != peer.TxValidationCode_VALID || codes[1] != peer.TxValidationCode_PHANTOM_READ_CONFLICT {
		t.Fatalf("codes = %v", codes)
	}
}

func TestMerkleMultiLevel(t *testing.T) {
	// A small fan-out forces several levels; the summary must be deterministic and at most maxDegree wide.
	rr := newRangeReads(2)
	var all []*kvrwset.KVRead
	for i := 0; i < 20; i++ {
		r := &kvrwset.KVRead{Key: fmt.Sprint(i), Version: &kvrwset.Version{BlockNum: 1}}
		all = append(all, r)
		if err := rr.add(r); err != nil {
			t.Fatal(err)
		}
	}
	_, s1, _ := rr.done()
	rr2 := newRangeReads(2)
	for _, r := range all {
		rr2.add(r)
	}
	_, s2, _ := rr2.done()
	if s1 == nil || s1.MaxLevel < 2 || !summariesEqual(s1, s2) || uint32(len(s1.MaxLevelHashes)) > 2 {
		t.Fatalf("summary = %v", s1)
	}
}

func TestPaginatedQueryThenWriteRefused(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	s, _ := l.NewSimulator("txp")
	defer s.Done()
	if _, _, err := s.GetStateRangePage("cc", "", "", 10, ""); err != nil {
		t.Fatal(err)
	}
	want := "txid [txp]: unsuppored transaction. Transaction has already performed a paginated query. Writes are not allowed"
	if err := s.PutState("cc", "k", []byte("v")); err == nil || err.Error() != want {
		t.Fatalf("PutState err = %v", err)
	}
	if err := s.DelState("cc", "k"); err == nil || err.Error() != want {
		t.Fatalf("DelState err = %v", err)
	}
	s2, _ := l.NewSimulator("txw")
	defer s2.Done()
	put(t, s2, "cc", "k", "v")
	want2 := "txid [txw]: unsuppored transaction. Paginated queries are supported only in a read-only transaction"
	if _, _, err := s2.GetStateRangePage("cc", "", "", 10, ""); err == nil || err.Error() != want2 {
		t.Fatalf("paginated after write err = %v", err)
	}
}

func TestPaginationBookmarks(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	seed(t, l, "seed", "cc", "k1", "v", "cc", "k2", "v", "cc", "k3", "v", "cc", "k4", "v", "cc", "k5", "v",
		"cc", "k6", "v", "cc", "k7", "v", "cc", "z", "v", "dd", "k0", "v")
	s, _ := l.NewSimulator("q")
	defer s.Done()
	var pages [][]string
	var counts []int32
	bm := ""
	for i := 0; i < 5; i++ {
		it, page, err := s.GetStateRangePage("cc", "k", "l", 3, bm)
		if err != nil {
			t.Fatal(err)
		}
		keys := drain(t, it)
		n, next := page()
		pages, counts = append(pages, keys), append(counts, n)
		if bm = next; bm == "" {
			break
		}
	}
	want := [][]string{{"k1", "k2", "k3"}, {"k4", "k5", "k6"}, {"k7"}}
	if !reflect.DeepEqual(pages, want) || !reflect.DeepEqual(counts, []int32{3, 3, 1}) {
		t.Fatalf("pages %v counts %v", pages, counts)
	}
	// A full page records what Fabric records: the limit makes the iterator look exhausted.
	b, _ := s.Results()
	_, sets := parseResults(t, b)
	rq := sets[0].RangeQueriesInfo
	if len(rq) != 3 || rq[1].StartKey != "k4" || rq[1].EndKey != "l" || !rq[1].ItrExhausted {
		t.Fatalf("range infos %v", rq)
	}
}

func TestHistoryNewestFirst(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	seed(t, l, "h1", "cc", "k", "v1")
	seed(t, l, "h2", "cc", "k", "v2")
	del := simulate(t, l, "h3", func(s Simulator) { s.DelState("cc", "k") })
	commitAll(t, l, del)
	s, _ := l.NewSimulator("q")
	defer s.Done()
	h, err := s.GetHistoryForKey("cc", "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[0].TxID != "h3" || !h[0].IsDelete || h[0].Value != nil ||
		h[1].TxID != "h2" || string(h[1].Value) != "v2" || h[2].TxID != "h1" || h[2].IsDelete {
		t.Fatalf("history %+v", h)
	}
	for _, m := range h {
		if m.Timestamp == nil || time.Since(m.Timestamp.AsTime()) > time.Minute {
			t.Fatalf("timestamp %v", m.Timestamp)
		}
	}
	if v := get(t, s, "cc", "k"); v != "" {
		t.Fatalf("deleted key reads %q", v)
	}
	// A simulator's history is as of its snapshot.
	old, _ := l.NewSimulator("old")
	defer old.Done()
	seed(t, l, "h4", "cc", "k", "v4")
	if h, _ := old.GetHistoryForKey("cc", "k"); len(h) != 3 {
		t.Fatalf("snapshot history has %d entries", len(h))
	}
}

func TestDoneIsFinal(t *testing.T) {
	l := openTest(t, t.TempDir(), 200, 5*time.Millisecond)
	defer l.Close()
	s, _ := l.NewSimulator("d")
	s.Done()
	s.Done()
	if _, err := s.GetState("cc", "k"); err == nil {
		t.Fatal("GetState after Done accepted")
	}
}
