package shimhost

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// store is a tiny committed state + history for the fake simulator.
type store struct {
	mu   sync.Mutex
	data map[string][]byte   // ns \x00 key -> value
	hist map[string][]KeyMod // newest first
	open int                 // range iterators not closed yet
}

func newStore() *store { return &store{data: map[string][]byte{}, hist: map[string][]KeyMod{}} }

func sk(ns, key string) string { return ns + "\x00" + key }

func (s *store) put(ns, key string, v []byte, txid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[sk(ns, key)] = v
	s.hist[sk(ns, key)] = append([]KeyMod{{TxID: txid, Value: v, Timestamp: timestamppb.Now()}}, s.hist[sk(ns, key)]...)
}

func (s *store) openIters() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// fakeSim reads the committed store (not its own writes, as Fabric) and
// records writes; commit applies them.
type fakeSim struct {
	s      *store
	txid   string
	mu     sync.Mutex
	writes map[string]*[]byte // nil pointer value = delete
	order  []string
	paged  bool
	done   bool
}

func (s *store) sim(txid string) *fakeSim {
	return &fakeSim{s: s, txid: txid, writes: map[string]*[]byte{}}
}

func (f *fakeSim) check() error {
	if f.done {
		return errors.New("fake simulator used after Done")
	}
	return nil
}

func (f *fakeSim) GetState(ns, key string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return nil, err
	}
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	return f.s.data[sk(ns, key)], nil
}

func (f *fakeSim) write(ns, key string, v *[]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return err
	}
	if f.paged {
		return errors.New("txSimulator does not support write operations after a paginated query")
	}
	k := sk(ns, key)
	if _, ok := f.writes[k]; !ok {
		f.order = append(f.order, k)
	}
	f.writes[k] = v
	return nil
}

func (f *fakeSim) PutState(ns, key string, value []byte) error { return f.write(ns, key, &value) }
func (f *fakeSim) DelState(ns, key string) error               { return f.write(ns, key, nil) }

type sliceIter struct {
	s    *store
	kvs  []*KV
	i    int
	once sync.Once
}

func (it *sliceIter) Next() (*KV, error) {
	if it.i >= len(it.kvs) {
		return nil, nil
	}
	it.i++
	return it.kvs[it.i-1], nil
}

func (it *sliceIter) Close() {
	it.once.Do(func() {
		it.s.mu.Lock()
		it.s.open--
		it.s.mu.Unlock()
	})
}

func (f *fakeSim) scan(ns, start, end string, limit int) *sliceIter {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	var kvs []*KV
	for k, v := range f.s.data {
		n, key, _ := strings.Cut(k, "\x00")
		if n == ns && key >= start && (end == "" || key < end) {
			kvs = append(kvs, &KV{Namespace: ns, Key: key, Value: v})
		}
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	if limit > 0 && len(kvs) > limit {
		kvs = kvs[:limit+1] // one extra: tells the bookmark
	}
	f.s.open++
	return &sliceIter{s: f.s, kvs: kvs}
}

func (f *fakeSim) GetStateRange(ns, start, end string) (RangeIterator, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	return f.scan(ns, start, end, 0), nil
}

func (f *fakeSim) GetStateRangePage(ns, start, end string, pageSize int32, bookmark string) (RangeIterator, func() (int32, string), error) {
	if err := f.check(); err != nil {
		return nil, nil, err
	}
	f.mu.Lock()
	f.paged = true
	f.mu.Unlock()
	if bookmark != "" {
		start = bookmark
	}
	it := f.scan(ns, start, end, int(pageSize))
	next := ""
	if len(it.kvs) > int(pageSize) {
		next = it.kvs[pageSize].Key
		it.kvs = it.kvs[:pageSize]
	}
	return it, func() (int32, string) { return int32(it.i), next }, nil
}

func (f *fakeSim) GetHistoryForKey(ns, key string) ([]KeyMod, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	return append([]KeyMod(nil), f.s.hist[sk(ns, key)]...), nil
}

func (f *fakeSim) Results() ([]byte, error) { return nil, nil }

func (f *fakeSim) Done() {
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
}

// commit applies the writes to the store.
func (f *fakeSim) commit() {
	for _, k := range f.order {
		ns, key, _ := strings.Cut(k, "\x00")
		if v := f.writes[k]; v != nil {
			f.s.put(ns, key, *v, f.txid)
		} else {
			f.s.mu.Lock()
			delete(f.s.data, k)
			f.s.mu.Unlock()
		}
	}
}

// --- identities, certificates, proposals ---

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"org1.test"}},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate; ips make it a TLS server certificate.
func (ca *testCA) issue(t testing.TB, cn, ou string, ips ...net.IP) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"org1.test"}, OrganizationalUnit: []string{ou}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		IPAddresses:  ips,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedProposal builds the SignedProposal a Fabric client sends (the
// signature is not checked by the shim, so it is left empty).
func signedProposal(t testing.TB, channel, txid, ccName, mspID string, certPEM []byte, args ...string) (*peer.SignedProposal, *peer.ChaincodeInput) {
	t.Helper()
	in := &peer.ChaincodeInput{}
	for _, a := range args {
		in.Args = append(in.Args, []byte(a))
	}
	ext := mustMarshal(t, &peer.ChaincodeHeaderExtension{ChaincodeId: &peer.ChaincodeID{Name: ccName}})
	chdr := mustMarshal(t, &common.ChannelHeader{
		Type: int32(common.HeaderType_ENDORSER_TRANSACTION), ChannelId: channel, TxId: txid,
		Timestamp: timestamppb.Now(), Extension: ext,
	})
	nonce := make([]byte, 24)
	_, _ = rand.Read(nonce)
	shdr := mustMarshal(t, &common.SignatureHeader{
		Creator: mustMarshal(t, &msp.SerializedIdentity{Mspid: mspID, IdBytes: certPEM}), Nonce: nonce,
	})
	payload := mustMarshal(t, &peer.ChaincodeProposalPayload{Input: mustMarshal(t, &peer.ChaincodeInvocationSpec{
		ChaincodeSpec: &peer.ChaincodeSpec{Type: peer.ChaincodeSpec_GOLANG, ChaincodeId: &peer.ChaincodeID{Name: ccName}, Input: in},
	})})
	prop := mustMarshal(t, &peer.Proposal{
		Header:  mustMarshal(t, &common.Header{ChannelHeader: chdr, SignatureHeader: shdr}),
		Payload: payload,
	})
	return &peer.SignedProposal{ProposalBytes: prop}, in
}
