// Package cryptogen writes the identity tree that Fabric's `cryptogen generate` writes for the project's peer
// organisations (network/fabric/crypto-config.yaml), in Go, so that the devledger runs where Fabric's binaries
// cannot be installed. The layout, file names, subjects, key usages, validity and the NodeOU config.yaml follow
// Fabric v3.1.5: cmd/cryptogen/main.go (generatePeerOrg, generateNodes, renderNodeSpec),
// internal/cryptogen/ca/ca.go (NewCA, SignCertificate, x509Template), internal/cryptogen/msp/msp.go
// (GenerateLocalMSP, GenerateVerifyingMSP, exportConfig) and internal/cryptogen/csp/csp.go (keys, low-S signer).
//
// Only peer organisations are written (the devledger replaces the orderers) and only the first peer, peer0.
package cryptogen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// OrgSpec is one peer organisation of crypto-config.yaml's PeerOrgs.
type OrgSpec struct {
	Name   string   // Org1
	Domain string   // org1.fc.local
	Users  int      // User1..UserN (plus Admin, always)
	SANs   []string // the peer template's extra SANs (127.0.0.1, localhost)
}

// Node OU names cryptogen stamps on signing certificates (internal/cryptogen/msp/msp.go CLIENTOU...ORDEREROU).
const (
	ouClient  = "client"
	ouPeer    = "peer"
	ouAdmin   = "admin"
	ouOrderer = "orderer"
)

const (
	peerName  = "peer0" // cmd/cryptogen/main.go: hostname template {{.Prefix}}{{.Index}}, Prefix "peer", Start 0
	adminName = "Admin" // adminBaseName
	userName  = "User"  // userBaseName
)

// Generate writes peerOrganizations/<domain>/... under out for every org. Existing files are overwritten; the
// orgs are generated concurrently.
func Generate(out string, orgs []OrgSpec) error {
	seen := map[string]bool{}
	for _, o := range orgs {
		if o.Domain == "" || strings.ContainsAny(o.Domain, `/\`) || o.Domain == "." || o.Domain == ".." {
			return fmt.Errorf("cryptogen: org %q: invalid domain %q", o.Name, o.Domain)
		}
		if o.Users < 0 {
			return fmt.Errorf("cryptogen: org %q: negative user count %d", o.Name, o.Users)
		}
		if seen[o.Domain] {
			return fmt.Errorf("cryptogen: domain %q listed twice", o.Domain)
		}
		seen[o.Domain] = true
	}
	errs := make([]error, len(orgs))
	var wg sync.WaitGroup
	for i := range orgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := generateOrg(out, orgs[i]); err != nil {
				errs[i] = fmt.Errorf("cryptogen: org %s (%s): %w", orgs[i].Name, orgs[i].Domain, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ca is one certificate authority of an org (the signing CA or the TLS CA).
type ca struct {
	name string // ca.<domain> / tlsca.<domain>
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	pem  []byte
}

func generateOrg(out string, o OrgSpec) error {
	orgDir := filepath.Join(out, "peerOrganizations", o.Domain)
	// cmd/cryptogen/main.go generatePeerOrg: the CA's CommonName is "ca.<domain>" (renderNodeSpec on the CA spec
	// with hostname "ca"), the TLS CA's "tls" + that.
	signCA, err := newCA(filepath.Join(orgDir, "ca"), o.Domain, "ca."+o.Domain)
	if err != nil {
		return err
	}
	tlsCA, err := newCA(filepath.Join(orgDir, "tlsca"), o.Domain, "tlsca."+o.Domain)
	if err != nil {
		return err
	}
	if err := verifyingMSP(filepath.Join(orgDir, "msp"), signCA, tlsCA); err != nil {
		return err
	}
	// renderNodeSpec: the peer's SANs are its CN, its hostname, then the template's SANS.
	peerCN := peerName + "." + o.Domain
	sans := append([]string{peerCN, peerName}, o.SANs...)
	if err := localMSP(filepath.Join(orgDir, "peers", peerCN), peerCN, sans, signCA, tlsCA, ouPeer); err != nil {
		return err
	}
	users := filepath.Join(orgDir, "users")
	for j := 1; j <= o.Users; j++ {
		cn := fmt.Sprintf("%s%d@%s", userName, j, o.Domain)
		if err := localMSP(filepath.Join(users, cn), cn, nil, signCA, tlsCA, ouClient); err != nil {
			return err
		}
	}
	cn := adminName + "@" + o.Domain
	return localMSP(filepath.Join(users, cn), cn, nil, signCA, tlsCA, ouAdmin)
}

// newCA writes <dir>/<name>-cert.pem and <dir>/priv_sk (internal/cryptogen/ca/ca.go NewCA).
func newCA(dir, org, name string) (*ca, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	key, err := newKey(dir)
	if err != nil {
		return nil, err
	}
	tmpl, err := certTemplate()
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	tmpl.Subject = subject()
	tmpl.Subject.Organization = []string{org}
	tmpl.Subject.CommonName = name
	tmpl.SubjectKeyId = subjectKeyID(&key.PublicKey)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, lowSSigner{key})
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c := &ca{name: name, key: key, cert: cert, pem: certPEM(der)}
	if err := writeFile(filepath.Join(dir, name+"-cert.pem"), c.pem, 0o644); err != nil {
		return nil, err
	}
	return c, nil
}

// sign issues a certificate for pub (internal/cryptogen/ca/ca.go SignCertificate): the CA's subject template
// (C, ST, L; no O), CN = name, OU = ous, SANs split into IP addresses and DNS names.
func (c *ca) sign(name string, ous, sans []string, pub crypto.PublicKey, ku x509.KeyUsage, eku []x509.ExtKeyUsage) ([]byte, error) {
	tmpl, err := certTemplate()
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = ku
	tmpl.ExtKeyUsage = eku
	tmpl.Subject = subject()
	tmpl.Subject.CommonName = name
	tmpl.Subject.OrganizationalUnit = append(tmpl.Subject.OrganizationalUnit, ous...)
	for _, san := range sans {
		if ip := net.ParseIP(san); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, san)
		}
	}
	return x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, lowSSigner{c.key})
}

// verifyingMSP writes the org's msp/ (internal/cryptogen/msp/msp.go GenerateVerifyingMSP with NodeOUs on: no
// admin certificate, an empty admincerts folder as cryptogen leaves it).
func verifyingMSP(dir string, signCA, tlsCA *ca) error {
	for _, d := range []string{"admincerts", "cacerts", "tlscacerts"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	return writeMSPCommon(dir, signCA, tlsCA)
}

func writeMSPCommon(dir string, signCA, tlsCA *ca) error {
	if err := writeFile(filepath.Join(dir, "cacerts", signCA.name+"-cert.pem"), signCA.pem, 0o644); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "tlscacerts", tlsCA.name+"-cert.pem"), tlsCA.pem, 0o644); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "config.yaml"), nodeOUConfig("cacerts/"+signCA.name+"-cert.pem"), 0o644)
}

// localMSP writes <base>/msp and <base>/tls for one node or user (internal/cryptogen/msp/msp.go GenerateLocalMSP).
func localMSP(base, name string, sans []string, signCA, tlsCA *ca, ou string) error {
	mspDir := filepath.Join(base, "msp")
	tlsDir := filepath.Join(base, "tls")
	for _, d := range []string{
		filepath.Join(mspDir, "admincerts"), filepath.Join(mspDir, "cacerts"), filepath.Join(mspDir, "tlscacerts"),
		filepath.Join(mspDir, "keystore"), filepath.Join(mspDir, "signcerts"), tlsDir,
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	key, err := newKey(filepath.Join(mspDir, "keystore"))
	if err != nil {
		return err
	}
	// Signing certificate: DigitalSignature only, no extended key usage, the NodeOU as OU, no SANs.
	der, err := signCA.sign(name, []string{ou}, nil, &key.PublicKey, x509.KeyUsageDigitalSignature, nil)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(mspDir, "signcerts", name+"-cert.pem"), certPEM(der), 0o644); err != nil {
		return err
	}
	if err := writeMSPCommon(mspDir, signCA, tlsCA); err != nil {
		return err
	}

	// TLS: no OU, the SANs, server+client auth; files server.* for peers, client.* for clients and admins.
	tlsKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err = tlsCA.sign(name, nil, sans, &tlsKey.PublicKey, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	if err != nil {
		return err
	}
	prefix := "server"
	if ou == ouClient || ou == ouAdmin {
		prefix = "client"
	}
	if err := writeFile(filepath.Join(tlsDir, "ca.crt"), tlsCA.pem, 0o644); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(tlsDir, prefix+".crt"), certPEM(der), 0o644); err != nil {
		return err
	}
	kp, err := keyPEM(tlsKey)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(tlsDir, prefix+".key"), kp, 0o600)
}

// newKey makes a P-256 key and writes it as PKCS#8 PEM "PRIVATE KEY" to <dir>/priv_sk, mode 0600
// (internal/cryptogen/csp/csp.go GeneratePrivateKey).
func newKey(dir string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate private key: %w", err)
	}
	p, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	return key, writeFile(filepath.Join(dir, "priv_sk"), p, 0o600)
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("failed to marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// certTemplate: random 128-bit serial, valid from now (rounded to the minute) minus 5 minutes for 3650 days
// (internal/cryptogen/ca/ca.go x509Template).
func certTemplate() (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	notBefore := time.Now().Round(time.Minute).Add(-5 * time.Minute).UTC()
	return &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(3650 * 24 * time.Hour).UTC(),
		BasicConstraintsValid: true,
	}, nil
}

func subject() pkix.Name {
	return pkix.Name{Country: []string{"US"}, Province: []string{"California"}, Locality: []string{"San Francisco"}}
}

// subjectKeyID is SHA-256 of the uncompressed public point, the SKI Fabric's BCCSP gives an ECDSA key and what
// cryptogen wrote up to v2.x. (v3.1.5's ca.computeSKI hashes the bytes of the key's crypto/ecdh form, which for a
// private key are the private scalar; nobody without the key can tell the two apart, and this one is the
// conventional, public-derivable identifier.)
func subjectKeyID(pub *ecdsa.PublicKey) []byte {
	k, err := pub.ECDH()
	if err != nil { // only for curves crypto/ecdh lacks; we only make P-256 keys
		return nil
	}
	h := sha256.Sum256(k.Bytes())
	return h[:]
}

// nodeOUConfig is msp/config.yaml as cryptogen writes it (internal/cryptogen/msp/msp.go exportConfig marshals
// msp.Configuration with go-yaml's default 4-space indentation).
func nodeOUConfig(caFile string) []byte {
	type ouID struct {
		Certificate                  string `yaml:"Certificate,omitempty"`
		OrganizationalUnitIdentifier string `yaml:"OrganizationalUnitIdentifier,omitempty"`
	}
	type nodeOUs struct {
		Enable              bool  `yaml:"Enable,omitempty"`
		ClientOUIdentifier  *ouID `yaml:"ClientOUIdentifier,omitempty"`
		PeerOUIdentifier    *ouID `yaml:"PeerOUIdentifier,omitempty"`
		AdminOUIdentifier   *ouID `yaml:"AdminOUIdentifier,omitempty"`
		OrdererOUIdentifier *ouID `yaml:"OrdererOUIdentifier,omitempty"`
	}
	type configuration struct {
		NodeOUs *nodeOUs `yaml:"NodeOUs,omitempty"`
	}
	b, err := yaml.Marshal(configuration{NodeOUs: &nodeOUs{
		Enable:              true,
		ClientOUIdentifier:  &ouID{caFile, ouClient},
		PeerOUIdentifier:    &ouID{caFile, ouPeer},
		AdminOUIdentifier:   &ouID{caFile, ouAdmin},
		OrdererOUIdentifier: &ouID{caFile, ouOrderer},
	}})
	if err != nil {
		panic(err) // a fixed structure of strings cannot fail to marshal
	}
	return b
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode) // WriteFile keeps the mode of an existing file
}

// lowSSigner signs with ECDSA and normalises S to the lower half of the group order, as Fabric's cryptogen
// signer does (internal/cryptogen/csp/csp.go ECDSASigner, toLowS): Fabric peers refuse high-S signatures.
type lowSSigner struct{ key *ecdsa.PrivateKey }

func (s lowSSigner) Public() crypto.PublicKey { return &s.key.PublicKey }

func (s lowSSigner) Sign(rnd io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	r, sv, err := ecdsa.Sign(rnd, s.key, digest)
	if err != nil {
		return nil, err
	}
	n := s.key.Curve.Params().N
	if sv.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		sv.Sub(n, sv)
	}
	return asn1.Marshal(struct{ R, S *big.Int }{r, sv})
}
