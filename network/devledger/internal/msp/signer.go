package msp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	pmsp "github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"google.golang.org/protobuf/proto"
)

// Signer is a local signing identity (a peer's, for endorsements).
type Signer struct {
	mspID      string
	cert       *x509.Certificate
	key        crypto.Signer
	serialized []byte
}

// LoadSigner reads <mspDir>/signcerts (exactly one certificate) and the key of <mspDir>/keystore that matches
// it (PKCS#8 PEM of an ECDSA or Ed25519 key, or SEC 1 "EC PRIVATE KEY"). When the certificate's issuer is in
// <mspDir>/cacerts or intermediatecerts its signature is normalised to low-S as Fabric's signing identity does.
func LoadSigner(mspID, mspDir string) (*Signer, error) {
	fail := func(format string, args ...any) (*Signer, error) {
		return nil, fmt.Errorf("msp signer %s (%s): %s", mspID, mspDir, fmt.Sprintf(format, args...))
	}
	if mspID == "" {
		return fail("empty MSP ID")
	}
	certs, err := readCertDir(filepath.Join(mspDir, dirSignCerts))
	if err != nil {
		return fail("%v", err)
	}
	if len(certs) != 1 {
		return fail("expected exactly one certificate in %s, found %d", dirSignCerts, len(certs))
	}
	cert := certs[0]
	cas, _ := readCertDir(filepath.Join(mspDir, dirCACerts))
	inters, _ := readCertDir(filepath.Join(mspDir, dirIntermediateCerts))
	for _, ca := range append(cas, inters...) {
		if cert.CheckSignatureFrom(ca) == nil {
			if s, err := sanitize(cert, ca); err == nil {
				cert = s
			}
			break
		}
	}

	names, err := readCertDirNames(filepath.Join(mspDir, dirKeystore))
	if err != nil {
		return fail("%v", err)
	}
	var key crypto.Signer
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(mspDir, dirKeystore, n))
		if err != nil {
			return fail("%v", err)
		}
		k := parseKey(b)
		if k != nil && publicKeysEqual(k.Public(), cert.PublicKey) {
			key = k
			break
		}
	}
	if key == nil {
		return fail("no private key in %s matches the certificate %q", dirKeystore, cert.Subject)
	}
	ser, err := proto.Marshal(&pmsp.SerializedIdentity{
		Mspid:   mspID,
		IdBytes: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
	})
	if err != nil {
		return fail("%v", err)
	}
	return &Signer{mspID: mspID, cert: cert, key: key, serialized: ser}, nil
}

func parseKey(b []byte) crypto.Signer {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil
	}
	var k any
	var err error
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k
	case ed25519.PrivateKey:
		return k
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	if e, ok := a.(interface{ Equal(crypto.PublicKey) bool }); ok {
		return e.Equal(b)
	}
	return false
}

// Sign signs msg: ECDSA over SHA-256, ASN.1 DER, S normalised to low-S (fabric-lib-go bccsp/sw/ecdsa.go
// signECDSA); Ed25519 over the whole message.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	switch k := s.key.(type) {
	case *ecdsa.PrivateKey:
		d := sha256.Sum256(msg)
		r, sv, err := ecdsa.Sign(rand.Reader, k, d[:])
		if err != nil {
			return nil, err
		}
		if sv.Cmp(halfOrder(k.Curve)) > 0 {
			sv.Sub(k.Curve.Params().N, sv)
		}
		return asn1.Marshal(ecdsaSig{r, sv})
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg), nil
	}
	return nil, fmt.Errorf("msp signer: unsupported key type %T", s.key)
}

// Serialized returns the SerializedIdentity{mspid, PEM certificate} bytes.
func (s *Signer) Serialized() []byte { return s.serialized }

// MSPID returns the signer's MSP ID.
func (s *Signer) MSPID() string { return s.mspID }

// Cert returns the signer's (sanitized) certificate.
func (s *Signer) Cert() *x509.Certificate { return s.cert }
