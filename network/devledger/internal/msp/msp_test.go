package msp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedcommittee/fedcommittee/network/devledger/internal/cryptogen"
	pmsp "github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"google.golang.org/protobuf/proto"
)

var tree string // generated once for the package's tests

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "msp-test-")
	if err != nil {
		panic(err)
	}
	if err := cryptogen.Generate(dir, []cryptogen.OrgSpec{
		{Name: "Org1", Domain: "org1.fc.local", Users: 2, SANs: []string{"127.0.0.1", "localhost"}},
		{Name: "Org2", Domain: "org2.fc.local", Users: 1, SANs: []string{"127.0.0.1", "localhost"}},
	}); err != nil {
		panic(err)
	}
	tree = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func orgDir(n string) string { return filepath.Join(tree, "peerOrganizations", "org"+n+".fc.local") }

func nodeMSP(n, node string) string {
	d := orgDir(n)
	if strings.HasPrefix(node, "peer") {
		return filepath.Join(d, "peers", node+".org"+n+".fc.local", "msp")
	}
	return filepath.Join(d, "users", node+"@org"+n+".fc.local", "msp")
}

func manager(t *testing.T) *Manager {
	t.Helper()
	var orgs []*Org
	for _, n := range []string{"1", "2"} {
		o, err := LoadOrg("Org"+n+"MSP", filepath.Join(orgDir(n), "msp"))
		if err != nil {
			t.Fatal(err)
		}
		orgs = append(orgs, o)
	}
	return NewManager(orgs...)
}

func signer(t *testing.T, n, node string) *Signer {
	t.Helper()
	s, err := LoadSigner("Org"+n+"MSP", nodeMSP(n, node))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func serialize(mspID string, der []byte) []byte {
	b, err := proto.Marshal(&pmsp.SerializedIdentity{Mspid: mspID, IdBytes: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})})
	if err != nil {
		panic(err)
	}
	return b
}

func wantKind(t *testing.T, err error, kind Kind, substr string) *IdentityError {
	t.Helper()
	var ie *IdentityError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T), want *IdentityError of kind %v", err, err, kind)
	}
	if ie.Kind != kind || !strings.Contains(ie.Error(), substr) {
		t.Fatalf("got %v (kind %v), want kind %v containing %q", ie, ie.Kind, kind, substr)
	}
	return ie
}

// orgCA loads org n's signing CA (cert + key) to issue test certificates.
func orgCA(t *testing.T, n string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	d := filepath.Join(orgDir(n), "ca")
	b, err := os.ReadFile(filepath.Join(d, "ca.org"+n+".fc.local-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(filepath.Join(d, "priv_sk"))
	if err != nil {
		t.Fatal(err)
	}
	k := parseKey(kb)
	if k == nil {
		t.Fatal("CA key unreadable")
	}
	return c, k
}

// issue makes a leaf certificate for pub signed by org n's CA.
func issue(t *testing.T, n string, pub crypto.PublicKey, ous []string, notBefore, notAfter time.Time) []byte {
	t.Helper()
	ca, key := orgCA(t, n)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "test@org" + n + ".fc.local", OrganizationalUnit: ous},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// validNow: from just after the CA's NotBefore (Fabric checks the chain at the leaf's NotBefore, when the CA
// must already be valid) to an hour from now.
func validNow(t *testing.T) (time.Time, time.Time) {
	ca, _ := orgCA(t, "1")
	return ca.NotBefore.Add(time.Second), time.Now().Add(time.Hour)
}

func TestRoles(t *testing.T) {
	m := manager(t)
	if got := m.Orgs(); len(got) != 2 || got[0] != "Org1MSP" || got[1] != "Org2MSP" {
		t.Fatalf("Orgs %v", got)
	}
	for node, role := range map[string]Role{"User1": RoleClient, "User2": RoleClient, "Admin": RoleAdmin, "peer0": RolePeer} {
		s := signer(t, "1", node)
		id, err := m.Deserialize(s.Serialized())
		if err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		if id.Role != role || id.MSPID != "Org1MSP" || string(id.Serialized) != string(s.Serialized()) {
			t.Errorf("%s: role %v mspid %s", node, id.Role, id.MSPID)
		}
		again, _ := m.Deserialize(s.Serialized())
		if again != id {
			t.Errorf("%s: not served from the cache", node)
		}
	}
}

func TestSignVerify(t *testing.T) {
	m := manager(t)
	s := signer(t, "2", "User1")
	if s.MSPID() != "Org2MSP" {
		t.Fatal(s.MSPID())
	}
	id, err := m.Deserialize(s.Serialized())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("proposal bytes")
	half := new(big.Int).Rsh(elliptic.P256().Params().N, 1)
	for i := 0; i < 32; i++ {
		sig, err := s.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := id.Verify(msg, sig); err != nil {
			t.Fatal(err)
		}
		var v ecdsaSig
		if _, err := asn1.Unmarshal(sig, &v); err != nil || v.S.Cmp(half) > 0 {
			t.Fatalf("Sign gave a high-S or bad signature: %v", err)
		}
		if i == 0 {
			if err := id.Verify([]byte("other bytes"), sig); err == nil || !strings.Contains(err.Error(), "signature is invalid") {
				t.Errorf("tampered message: %v", err)
			}
			// The same signature with S replaced by n - S is mathematically valid; Fabric refuses it.
			high, _ := asn1.Marshal(ecdsaSig{v.R, new(big.Int).Sub(elliptic.P256().Params().N, v.S)})
			if err := id.Verify(msg, high); err == nil || !strings.Contains(err.Error(), "Invalid S. Must be smaller than half the order") {
				t.Errorf("high-S signature: %v", err)
			}
			if err := id.Verify(msg, []byte{0x30, 0x00}); err == nil {
				t.Error("empty DER signature accepted")
			}
			// Another org's signer cannot sign for this identity.
			other, _ := signer(t, "1", "User1").Sign(msg)
			if err := id.Verify(msg, other); err == nil {
				t.Error("foreign signature accepted")
			}
		}
	}
}

func TestDeserializeErrors(t *testing.T) {
	m := manager(t)
	user2 := signer(t, "2", "User1")
	var sid pmsp.SerializedIdentity
	if err := proto.Unmarshal(user2.Serialized(), &sid); err != nil {
		t.Fatal(err)
	}
	der := user2.Cert().Raw

	// Org2's certificate presented as Org1MSP: does not chain to Org1's CA.
	ie := wantKind(t, errOnly(m.Deserialize(serialize("Org1MSP", der))), KindInvalid, "certificate signed by unknown authority")
	if !ie.Unchained {
		t.Fatal("a certificate of another CA must be marked Unchained (Fabric fails it while deserializing)")
	}
	if ie.MSPID != "Org1MSP" {
		t.Errorf("MSPID %q", ie.MSPID)
	}
	wantKind(t, errOnly(m.Deserialize(serialize("Org9MSP", der))), KindUnknownOrg, "MSP Org9MSP is not defined on channel")
	wantKind(t, errOnly(m.Deserialize([]byte("garbage"))), KindMalformed, "could not deserialize a SerializedIdentity")
	wantKind(t, errOnly(m.Deserialize([]byte{0xff, 0xff, 0xff})), KindMalformed, "SerializedIdentity")
	notPEM, _ := proto.Marshal(&pmsp.SerializedIdentity{Mspid: "Org1MSP", IdBytes: []byte("not a pem")})
	wantKind(t, errOnly(m.Deserialize(notPEM)), KindMalformed, "could not decode the PEM structure")
	badDER, _ := proto.Marshal(&pmsp.SerializedIdentity{Mspid: "Org1MSP",
		IdBytes: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})})
	wantKind(t, errOnly(m.Deserialize(badDER)), KindMalformed, "parseCertificate failed")

	// A CA certificate cannot be an identity.
	ca, _ := orgCA(t, "1")
	wantKind(t, errOnly(m.Deserialize(serialize("Org1MSP", ca.Raw))), KindInvalid, "Certificate Authority equals true")

	// Expired: NotAfter in the past, signed by the org's own CA.
	k := newKey(t)
	nb, na := validNow(t)
	expired := issue(t, "1", &k.PublicKey, []string{"client"}, nb, time.Now().Add(-time.Second))
	if ie := wantKind(t, errOnly(m.Deserialize(serialize("Org1MSP", expired))), KindInvalid, "expired"); !ie.Expired {
		t.Error("Expired flag not set")
	}

	// No NodeOU; two NodeOUs; an OU that is not a NodeOU.
	wantKind(t, errOnly(m.Deserialize(serialize("Org1MSP", issue(t, "1", &k.PublicKey, nil, nb, na)))), KindInvalid,
		"does not have an OU that resolves to client, peer, orderer, or admin")
	wantKind(t, errOnly(m.Deserialize(serialize("Org1MSP", issue(t, "1", &k.PublicKey, []string{"department7"}, nb, na)))), KindInvalid,
		"does not have an OU")
	wantKind(t, errOnly(m.Deserialize(serialize("Org1MSP", issue(t, "1", &k.PublicKey, []string{"client", "peer"}, nb, na)))), KindInvalid,
		"not a combination of them")
	// An extra non-node OU beside one NodeOU is fine; orderer is a role too.
	for ous, role := range map[string]Role{"client,dept": RoleClient, "orderer": RoleOrderer} {
		id, err := m.Deserialize(serialize("Org1MSP", issue(t, "1", &k.PublicKey, strings.Split(ous, ","), nb, na)))
		if err != nil || id.Role != role {
			t.Errorf("%s: %v %v", ous, err, id)
		}
	}
	// A self-signed certificate claiming the client OU.
	self := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x", OrganizationalUnit: []string{"client"}},
		NotBefore: nb, NotAfter: na}
	selfDER, _ := x509.CreateCertificate(rand.Reader, self, self, &k.PublicKey, k)
	wantKind(t, errOnly(m.Deserialize(serialize("Org1MSP", selfDER))), KindInvalid, "unknown authority")
}

func errOnly(_ *Identity, err error) error { return err }

func TestExpiryOfCachedIdentity(t *testing.T) {
	m := manager(t)
	k := newKey(t)
	nb, na := validNow(t)
	ser := serialize("Org1MSP", issue(t, "1", &k.PublicKey, []string{"client"}, nb, na))
	if _, err := m.Deserialize(ser); err != nil {
		t.Fatal(err)
	}
	m.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	wantKind(t, errOnly(m.Deserialize(ser)), KindInvalid, "expired")
}

// A certificate whose ECDSA signature has a high S still validates (Fabric re-encodes it with low-S,
// mspimpl.go sanitizeCert); the identity carries the low-S form, Serialized the bytes as received.
func TestHighSCertificate(t *testing.T) {
	m := manager(t)
	k := newKey(t)
	nb, na := validNow(t)
	der := issue(t, "1", &k.PublicKey, []string{"client"}, nb, na)
	c, _ := x509.ParseCertificate(der)
	var v ecdsaSig
	if _, err := asn1.Unmarshal(c.Signature, &v); err != nil {
		t.Fatal(err)
	}
	n := elliptic.P256().Params().N
	half := new(big.Int).Rsh(n, 1)
	lowS, highS := v.S, new(big.Int).Sub(n, v.S)
	if lowS.Cmp(half) > 0 {
		lowS, highS = highS, lowS
	}
	reencode := func(s *big.Int) []byte {
		sig, _ := asn1.Marshal(ecdsaSig{v.R, s})
		var outer certASN1
		if _, err := asn1.Unmarshal(der, &outer); err != nil {
			t.Fatal(err)
		}
		outer.Signature = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
		raw, err := asn1.Marshal(outer)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	highDER, lowDER := reencode(highS), reencode(lowS)
	ser := serialize("Org1MSP", highDER)
	id, err := m.Deserialize(ser)
	if err != nil {
		t.Fatal(err)
	}
	if string(id.Cert.Raw) != string(lowDER) || string(id.Serialized) != string(ser) || id.Role != RoleClient {
		t.Errorf("high-S certificate not sanitized to its low-S form")
	}
	// The identity still verifies signatures of its key.
	msg := []byte("m")
	sig, _ := (&Signer{key: k}).Sign(msg)
	if err := id.Verify(msg, sig); err != nil {
		t.Error(err)
	}
}

// Ed25519 identities (Fabric v3 MSPs accept them): a leaf with an Ed25519 key under the ECDSA CA, and a
// Signer loaded from a PKCS#8 Ed25519 keystore file.
func TestEd25519(t *testing.T) {
	m := manager(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	nb, na := validNow(t)
	der := issue(t, "1", pub, []string{"client"}, nb, na)

	dir := t.TempDir()
	for _, d := range []string{"signcerts", "keystore", "cacerts"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "signcerts", "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	other := newKey(t) // a non-matching key first: LoadSigner must pick the matching one
	ob, _ := x509.MarshalPKCS8PrivateKey(other)
	os.WriteFile(filepath.Join(dir, "keystore", "a_sk"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ob}), 0o600)
	pb, _ := x509.MarshalPKCS8PrivateKey(priv)
	os.WriteFile(filepath.Join(dir, "keystore", "b_sk"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pb}), 0o600)

	s, err := LoadSigner("Org1MSP", dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Deserialize(s.Serialized())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("ed25519 message")
	sig, err := s.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Verify(msg, sig); err != nil {
		t.Fatal(err)
	}
	if err := id.Verify([]byte("x"), sig); err == nil {
		t.Error("tampered Ed25519 message accepted")
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := LoadOrg("X", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no root CA certificate") {
		t.Errorf("empty dir: %v", err)
	}
	// A signcerts folder whose key is missing.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "signcerts"), 0o755)
	os.MkdirAll(filepath.Join(dir, "keystore"), 0o755)
	b, _ := os.ReadFile(filepath.Join(nodeMSP("1", "User1"), "signcerts", "User1@org1.fc.local-cert.pem"))
	os.WriteFile(filepath.Join(dir, "signcerts", "c.pem"), b, 0o644)
	if _, err := LoadSigner("Org1MSP", dir); err == nil || !strings.Contains(err.Error(), "no private key") {
		t.Errorf("missing key: %v", err)
	}
	// config.yaml naming a certificate that is not one of the MSP's CAs.
	mspDir := t.TempDir()
	os.MkdirAll(filepath.Join(mspDir, "cacerts"), 0o755)
	ca, _ := os.ReadFile(filepath.Join(orgDir("1"), "msp", "cacerts", "ca.org1.fc.local-cert.pem"))
	os.WriteFile(filepath.Join(mspDir, "cacerts", "ca.pem"), ca, 0o644)
	os.WriteFile(filepath.Join(mspDir, "config.yaml"), []byte("NodeOUs:\n  Enable: true\n  ClientOUIdentifier:\n    Certificate: signcert.pem\n    OrganizationalUnitIdentifier: client\n"), 0o644)
	os.WriteFile(filepath.Join(mspDir, "signcert.pem"), b, 0o644)
	if _, err := LoadOrg("Org1MSP", mspDir); err == nil || !strings.Contains(err.Error(), "not one of the MSP's root or intermediate CAs") {
		t.Errorf("bad NodeOU certificate: %v", err)
	}
	// A node's own msp folder loads as the org (same cacerts and config.yaml).
	if _, err := LoadOrg("Org1MSP", nodeMSP("1", "peer0")); err != nil {
		t.Error(err)
	}
}

// An org with an intermediate CA: identities issued by the intermediate validate; the root, which issued the
// intermediate, may no longer issue identities itself (mspimpl.go getValidationChain).
func TestIntermediateCA(t *testing.T) {
	root, rootKey := orgCA(t, "1")
	nb, na := validNow(t)
	ik := newKey(t)
	itmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "ica.org1.fc.local"},
		NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	ider, err := x509.CreateCertificate(rand.Reader, itmpl, root, &ik.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	ica, _ := x509.ParseCertificate(ider)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "cacerts"), 0o755)
	os.MkdirAll(filepath.Join(dir, "intermediatecerts"), 0o755)
	os.WriteFile(filepath.Join(dir, "cacerts", "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644)
	os.WriteFile(filepath.Join(dir, "intermediatecerts", "ica.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ider}), 0o644)
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("NodeOUs:\n  Enable: true\n"+
		"  ClientOUIdentifier:\n    Certificate: intermediatecerts/ica.pem\n    OrganizationalUnitIdentifier: client\n"+
		"  PeerOUIdentifier:\n    Certificate: cacerts/ca.pem\n    OrganizationalUnitIdentifier: peer\n"), 0o644)
	o, err := LoadOrg("Org1MSP", dir)
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(o)
	k := newKey(t)
	leaf := func(ou string) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "u", OrganizationalUnit: []string{ou}},
			NotBefore: nb.Add(time.Second), NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ica, &k.PublicKey, ik)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	if id, err := m.Deserialize(serialize("Org1MSP", leaf("client"))); err != nil || id.Role != RoleClient {
		t.Fatalf("leaf of the intermediate: %v", err)
	}
	// The peer OU is certified by the root only; a peer issued by the intermediate does not match.
	wantKind(t, errOnly(m.Deserialize(serialize("Org1MSP", leaf("peer")))), KindInvalid, "certifiersIdentifier does not match")
	// User1 of the tree was issued by the root, which is now an internal node of the certification tree.
	wantKind(t, errOnly(m.Deserialize(signer(t, "1", "User1").Serialized())), KindInvalid, "should be a leaf of the certification tree")
}

// Fabric validates the chain at the leaf's NotBefore (mspimplvalidate.go getValidityOptsForCert): a leaf dated
// before its CA existed is refused even though both are valid now.
func TestLeafOlderThanCA(t *testing.T) {
	m := manager(t)
	ca, _ := orgCA(t, "1")
	k := newKey(t)
	der := issue(t, "1", &k.PublicKey, []string{"client"}, ca.NotBefore.Add(-time.Hour), time.Now().Add(time.Hour))
	wantKind(t, errOnly(m.Deserialize(serialize("Org1MSP", der))), KindInvalid, "not yet valid")
}

func TestConcurrentDeserialize(t *testing.T) {
	m := manager(t)
	sers := [][]byte{signer(t, "1", "User1").Serialized(), signer(t, "1", "Admin").Serialized(), signer(t, "2", "peer0").Serialized()}
	done := make(chan error)
	for g := 0; g < 6; g++ {
		go func() {
			var err error
			for i := 0; i < 20 && err == nil; i++ {
				_, err = m.Deserialize(sers[(g+i)%len(sers)])
			}
			done <- err
		}()
	}
	for g := 0; g < 6; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
