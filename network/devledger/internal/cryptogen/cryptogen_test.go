package cryptogen

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// readPEM returns the DER bytes of the one block of type typ in the PEM file at path.
func readPEM(t *testing.T, path, typ string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		t.Fatalf("%s: no %s PEM", path, typ)
	}
	return blk.Bytes
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(readPEM(t, path, "CERTIFICATE"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func checkLowS(t *testing.T, c *x509.Certificate) {
	t.Helper()
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(c.Signature, &sig); err != nil {
		t.Fatal(err)
	}
	half := new(big.Int).Rsh(c.PublicKey.(*ecdsa.PublicKey).Curve.Params().N, 1) // all P-256 here
	if sig.S.Cmp(half) > 0 {
		t.Errorf("%s: high-S certificate signature", c.Subject.CommonName)
	}
}

func TestGenerateLayout(t *testing.T) {
	out := t.TempDir()
	start := time.Now()
	orgs := []OrgSpec{
		{Name: "Org1", Domain: "org1.fc.local", Users: 15, SANs: []string{"127.0.0.1", "localhost"}},
		{Name: "Org2", Domain: "org2.fc.local", Users: 15, SANs: []string{"127.0.0.1", "localhost"}},
		{Name: "Org3", Domain: "org3.fc.local", Users: 15, SANs: []string{"127.0.0.1", "localhost"}},
	}
	if err := Generate(out, orgs); err != nil {
		t.Fatal(err)
	}
	t.Logf("3 orgs x (peer + Admin + 15 users): %v", time.Since(start))

	d := "org2.fc.local"
	org := filepath.Join(out, "peerOrganizations", d)
	checkOrgFiles(t, org, d)
	caCert, roots, tlsRoots := checkCAs(t, org, d)
	for node, ou := range map[string]string{"peers/peer0." + d: "peer", "users/Admin@" + d: "admin", "users/User7@" + d: "client"} {
		checkNode(t, org, d, node, ou, caCert, roots, tlsRoots)
	}
}

// checkOrgFiles: every file of the org's tree and of a few of its nodes, with its mode; the
// NodeOU config.yaml wherever one is; nothing past the last user; no admincerts or org keystore.
func checkOrgFiles(t *testing.T, org, d string) {
	t.Helper()
	cfg := "NodeOUs:\n    Enable: true\n    ClientOUIdentifier:\n        Certificate: cacerts/ca.org2.fc.local-cert.pem\n" +
		"        OrganizationalUnitIdentifier: client\n    PeerOUIdentifier:\n        Certificate: cacerts/ca.org2.fc.local-cert.pem\n" +
		"        OrganizationalUnitIdentifier: peer\n    AdminOUIdentifier:\n        Certificate: cacerts/ca.org2.fc.local-cert.pem\n" +
		"        OrganizationalUnitIdentifier: admin\n    OrdererOUIdentifier:\n        Certificate: cacerts/ca.org2.fc.local-cert.pem\n" +
		"        OrganizationalUnitIdentifier: orderer\n"

	files := map[string]os.FileMode{
		"ca/ca.org2.fc.local-cert.pem":                0o644,
		"ca/priv_sk":                                  0o600,
		"tlsca/tlsca.org2.fc.local-cert.pem":          0o644,
		"tlsca/priv_sk":                               0o600,
		"msp/cacerts/ca.org2.fc.local-cert.pem":       0o644,
		"msp/tlscacerts/tlsca.org2.fc.local-cert.pem": 0o644,
		"msp/config.yaml":                             0o644,
	}
	for _, node := range []string{"peers/peer0." + d, "users/Admin@" + d, "users/User1@" + d, "users/User15@" + d} {
		name := filepath.Base(node)
		files[node+"/msp/cacerts/ca.org2.fc.local-cert.pem"] = 0o644
		files[node+"/msp/tlscacerts/tlsca.org2.fc.local-cert.pem"] = 0o644
		files[node+"/msp/keystore/priv_sk"] = 0o600
		files[node+"/msp/signcerts/"+name+"-cert.pem"] = 0o644
		files[node+"/msp/config.yaml"] = 0o644
		files[node+"/tls/ca.crt"] = 0o644
		p := "client"
		if strings.HasPrefix(node, "peers/") {
			p = "server"
		}
		files[node+"/tls/"+p+".crt"] = 0o644
		files[node+"/tls/"+p+".key"] = 0o600
	}
	for f, mode := range files {
		fi, err := os.Stat(filepath.Join(org, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", f, fi.Mode().Perm(), mode)
		}
		if strings.HasSuffix(f, "config.yaml") {
			if b, _ := os.ReadFile(filepath.Join(org, f)); string(b) != cfg {
				t.Errorf("%s:\n%s\nwant\n%s", f, b, cfg)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(org, "users/User16@"+d)); !os.IsNotExist(err) {
		t.Errorf("User16 exists: %v", err)
	}
	if ents, err := os.ReadDir(filepath.Join(org, "msp/admincerts")); err != nil || len(ents) != 0 {
		t.Errorf("org msp/admincerts should exist and be empty (NodeOUs): %v %v", ents, err)
	}
	if _, err := os.Stat(filepath.Join(org, "msp/keystore")); !os.IsNotExist(err) {
		t.Errorf("org msp has a keystore: %v", err)
	}
}

// checkCAs: the org's CA and TLS CA certificates; returns the CA and a pool of each.
func checkCAs(t *testing.T, org, d string) (*x509.Certificate, *x509.CertPool, *x509.CertPool) {
	t.Helper()
	caCert := readCert(t, filepath.Join(org, "ca/ca.org2.fc.local-cert.pem"))
	tlsCA := readCert(t, filepath.Join(org, "tlsca/tlsca.org2.fc.local-cert.pem"))
	for _, c := range []*x509.Certificate{caCert, tlsCA} {
		if !c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment|x509.KeyUsageCertSign|x509.KeyUsageCRLSign ||
			!slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}) ||
			len(c.SubjectKeyId) != 32 {
			t.Errorf("%s: CA flags/usages/SKI wrong: ca=%v ku=%v eku=%v ski=%x", c.Subject, c.IsCA, c.KeyUsage, c.ExtKeyUsage, c.SubjectKeyId)
		}
		if c.Subject.Organization[0] != d || c.Subject.Country[0] != "US" || c.Subject.Province[0] != "California" ||
			c.Subject.Locality[0] != "San Francisco" {
			t.Errorf("CA subject %s", c.Subject)
		}
		if got := c.NotAfter.Sub(c.NotBefore); got != 3650*24*time.Hour || time.Since(c.NotBefore) < 4*time.Minute {
			t.Errorf("validity %v from %v", got, c.NotBefore)
		}
		checkLowS(t, c)
	}
	if caCert.Subject.CommonName != "ca."+d || tlsCA.Subject.CommonName != "tlsca."+d {
		t.Errorf("CA names %q %q", caCert.Subject.CommonName, tlsCA.Subject.CommonName)
	}
	roots, tlsRoots := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(caCert)
	tlsRoots.AddCert(tlsCA)
	return caCert, roots, tlsRoots
}

// checkNode: a node's signcert and TLS certificate (subject, usages, SANs, chain) and its keys.
func checkNode(t *testing.T, org, d, node, ou string, caCert *x509.Certificate, roots, tlsRoots *x509.CertPool) {
	t.Helper()
	name := filepath.Base(node)
	c := readCert(t, filepath.Join(org, node, "msp/signcerts", name+"-cert.pem"))
	if c.Subject.String() != "CN="+name+",OU="+ou+",L=San Francisco,ST=California,C=US" {
		t.Errorf("subject %s", c.Subject)
	}
	if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature || len(c.ExtKeyUsage) != 0 || len(c.DNSNames) != 0 ||
		!slices.Equal(c.AuthorityKeyId, caCert.SubjectKeyId) {
		t.Errorf("%s: signcert usages wrong", name)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Error(err)
	}
	checkLowS(t, c)
	tlsName := "client.crt"
	if ou == "peer" {
		tlsName = "server.crt"
	}
	tc := readCert(t, filepath.Join(org, node, "tls", tlsName))
	if tc.Subject.String() != "CN="+name+",L=San Francisco,ST=California,C=US" ||
		tc.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment ||
		!slices.Equal(tc.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("%s: TLS cert %s ku=%v eku=%v", name, tc.Subject, tc.KeyUsage, tc.ExtKeyUsage)
	}
	checkLowS(t, tc)
	if ou == "peer" {
		if !slices.Equal(tc.DNSNames, []string{"peer0." + d, "peer0", "localhost"}) || len(tc.IPAddresses) != 1 ||
			tc.IPAddresses[0].String() != "127.0.0.1" {
			t.Errorf("peer SANs %v %v", tc.DNSNames, tc.IPAddresses)
		}
		for _, host := range []string{"127.0.0.1", "localhost", "peer0." + d} {
			if _, err := tc.Verify(x509.VerifyOptions{Roots: tlsRoots, DNSName: host}); err != nil {
				t.Errorf("server cert for %s: %v", host, err)
			}
		}
	} else if len(tc.DNSNames)+len(tc.IPAddresses) != 0 {
		t.Errorf("client TLS cert has SANs")
	}
	// The TLS key matches the TLS cert, the keystore key the signcert.
	keyFile := map[bool]string{true: "server.key", false: "client.key"}[ou == "peer"]
	for cert, kf := range map[*x509.Certificate]string{tc: filepath.Join("tls", keyFile), c: "msp/keystore/priv_sk"} {
		k, err := x509.ParsePKCS8PrivateKey(readPEM(t, filepath.Join(org, node, kf), "PRIVATE KEY"))
		if err != nil {
			t.Fatal(err)
		}
		if !k.(*ecdsa.PrivateKey).PublicKey.Equal(cert.PublicKey) {
			t.Errorf("%s/%s does not match its certificate", node, kf)
		}
	}
}

func TestReadSpec(t *testing.T) {
	b, err := os.ReadFile("../../../fabric/crypto-config.yaml")
	if err != nil {
		t.Skip("project crypto-config.yaml not found:", err)
	}
	orgs, err := ReadSpec(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(orgs) != 3 {
		t.Fatalf("orgs %+v", orgs)
	}
	for i, o := range orgs {
		n := string(rune('1' + i))
		if o.Name != "Org"+n || o.Domain != "org"+n+".fc.local" || o.Users != 15 || !slices.Equal(o.SANs, []string{"127.0.0.1", "localhost"}) {
			t.Errorf("org %d: %+v", i, o)
		}
	}
	orgs, _ = ReadSpec(b, 3)
	if orgs[0].Users != 3 {
		t.Errorf("override: %+v", orgs[0])
	}
	for _, bad := range []string{
		"PeerOrgs: []",
		"PeerOrgs: [{Name: A, Domain: a.x, EnableNodeOUs: false, Template: {Count: 1}}]",
		"PeerOrgs: [{Name: A, Domain: a.x, EnableNodeOUs: true, Template: {Count: 0}}]",
		"PeerOrgs: [{Name: A, Domain: a.x, EnableNodeOUs: true, Template: {Count: 1, SANS: ['{{.Hostname}}.alt']}}]",
		"PeerOrgs: {",
	} {
		if _, err := ReadSpec([]byte(bad), 0); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestGenerateRejects(t *testing.T) {
	if err := Generate(t.TempDir(), []OrgSpec{{Name: "A", Domain: "../x"}}); err == nil {
		t.Error("domain with a slash accepted")
	}
	if err := Generate(t.TempDir(), []OrgSpec{{Name: "A", Domain: "a.x"}, {Name: "B", Domain: "a.x"}}); err == nil {
		t.Error("duplicate domain accepted")
	}
}
