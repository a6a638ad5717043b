package msp

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"
	"time"

	pmsp "github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"google.golang.org/protobuf/proto"
)

// Kind classifies a Deserialize failure so the gateway can word it as Fabric does.
type Kind int

const (
	KindMalformed  Kind = iota + 1 // not a SerializedIdentity, not PEM, not an X.509 certificate
	KindUnknownOrg                 // the MSP ID is not one of the channel's orgs
	KindInvalid                    // parsed, but not a valid identity of its org (chain, CA flag, NodeOU, expiry, key)
)

func (k Kind) String() string {
	switch k {
	case KindMalformed:
		return "malformed"
	case KindUnknownOrg:
		return "unknown org"
	case KindInvalid:
		return "invalid"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// IdentityError is the error of Deserialize.
type IdentityError struct {
	Kind    Kind
	MSPID   string // as claimed by the SerializedIdentity ("" when it could not be parsed)
	Msg     string // the precise reason
	Expired bool   // KindInvalid because the certificate's NotAfter has passed
	// Unchained: KindInvalid because no chain leads to the org's CAs. Fabric finds that out while
	// deserializing (sanitizing an ECDSA certificate needs its parent, msp/mspimpl.go newIdentity),
	// so a peer words it like a malformed creator.
	Unchained bool
}

func (e *IdentityError) Error() string {
	if e.MSPID == "" {
		return fmt.Sprintf("%s identity: %s", e.Kind, e.Msg)
	}
	return fmt.Sprintf("%s identity of MSP %s: %s", e.Kind, e.MSPID, e.Msg)
}

// Identity is a validated creator. Shared between callers (cached): treat as read-only.
type Identity struct {
	MSPID      string
	Cert       *x509.Certificate // sanitized: an ECDSA-signed certificate carries its low-S signature
	Role       Role
	Serialized []byte // the SerializedIdentity bytes as received
}

// Verify checks sig over msg with the identity's key: ECDSA (P-256/P-384) over SHA-256 with an ASN.1 DER
// signature whose S must be in the lower half of the group order, or Ed25519 over the whole message
// (msp/identities.go Verify; fabric-lib-go bccsp/sw/ecdsa.go verifyECDSA).
func (id *Identity) Verify(msg, sig []byte) error {
	switch pub := id.Cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return verifyECDSA(pub, msg, sig)
	case ed25519.PublicKey:
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
			return errors.New("The signature is invalid")
		}
		return nil
	default:
		return fmt.Errorf("could not determine the validity of the signature: unsupported key type %T", id.Cert.PublicKey)
	}
}

type ecdsaSig struct{ R, S *big.Int }

// parseECDSASig decodes an ASN.1 {r, s}; r and s must be positive. Like Fabric (bccsp/utils/ecdsa.go
// UnmarshalECDSASignature) bytes after the DER value are ignored.
func parseECDSASig(sig []byte) (*big.Int, *big.Int, error) {
	var v ecdsaSig
	if _, err := asn1.Unmarshal(sig, &v); err != nil {
		return nil, nil, fmt.Errorf("failed unmashalling signature [%s]", err)
	}
	if v.R == nil || v.S == nil || v.R.Sign() != 1 || v.S.Sign() != 1 {
		return nil, nil, errors.New("invalid signature, R and S must be larger than zero")
	}
	return v.R, v.S, nil
}

func halfOrder(c elliptic.Curve) *big.Int { return new(big.Int).Rsh(c.Params().N, 1) }

func verifyECDSA(pub *ecdsa.PublicKey, msg, sig []byte) error {
	r, s, err := parseECDSASig(sig)
	if err != nil {
		return fmt.Errorf("could not determine the validity of the signature: Failed unmashalling signature [%s]", err)
	}
	if h := halfOrder(pub.Curve); s.Cmp(h) > 0 {
		return fmt.Errorf("could not determine the validity of the signature: Invalid S. Must be smaller than half the order [%s][%s].", s, h)
	}
	d := sha256.Sum256(msg)
	if !ecdsa.Verify(pub, d[:], r, s) {
		return errors.New("The signature is invalid")
	}
	return nil
}

// isECDSASigned: the certificate is signed with ECDSA (msp/cert.go isECDSASignedCert).
func isECDSASigned(c *x509.Certificate) bool {
	switch c.SignatureAlgorithm {
	case x509.ECDSAWithSHA1, x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
		return true
	}
	return false
}

// certASN1 is the outer structure of an X.509 certificate (RFC 5280 Certificate).
type certASN1 struct {
	TBS       asn1.RawValue
	Algorithm pkix.AlgorithmIdentifier
	Signature asn1.BitString
}

// sanitize returns c with its ECDSA signature's S normalised to low-S using the curve of parent's key, re-encoded
// (msp/mspimpl.go sanitizeCert, msp/cert.go sanitizeECDSASignedCert). Other certificates come back unchanged.
func sanitize(c, parent *x509.Certificate) (*x509.Certificate, error) {
	if !isECDSASigned(c) {
		return c, nil
	}
	pub, ok := parent.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("certificate %q is ECDSA-signed but its issuer's key is %T", c.Subject, parent.PublicKey)
	}
	r, s, err := parseECDSASig(c.Signature)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %v", c.Subject, err)
	}
	if s.Cmp(halfOrder(pub.Curve)) <= 0 {
		return c, nil
	}
	s.Sub(pub.Curve.Params().N, s)
	low, err := asn1.Marshal(ecdsaSig{r, s})
	if err != nil {
		return nil, err
	}
	var outer certASN1
	if _, err := asn1.Unmarshal(c.Raw, &outer); err != nil {
		return nil, fmt.Errorf("unmarshalling of the certificate failed: %w", err)
	}
	outer.Signature = asn1.BitString{Bytes: low, BitLength: 8 * len(low)}
	raw, err := asn1.Marshal(outer)
	if err != nil {
		return nil, fmt.Errorf("marshalling of the certificate failed: %w", err)
	}
	return x509.ParseCertificate(raw)
}

// Manager knows every org of the channel and caches validated identities by their serialized bytes.
type Manager struct {
	orgs map[string]*Org
	ids  []string

	mu    sync.RWMutex
	cache map[string]*Identity
	now   func() time.Time // for tests
}

// cacheMax bounds the identity cache; when full an arbitrary entry is dropped.
const cacheMax = 4096

// NewManager returns a Manager for the given orgs (nil entries ignored; a later org with the same MSP ID wins).
func NewManager(orgs ...*Org) *Manager {
	m := &Manager{orgs: map[string]*Org{}, cache: map[string]*Identity{}, now: time.Now}
	for _, o := range orgs {
		if o != nil {
			m.orgs[o.MSPID] = o
		}
	}
	for id := range m.orgs {
		m.ids = append(m.ids, id)
	}
	sort.Strings(m.ids)
	return m
}

// Orgs returns the sorted MSP IDs.
func (m *Manager) Orgs() []string { return append([]string(nil), m.ids...) }

// Org returns the org with that MSP ID, or nil.
func (m *Manager) Org(mspID string) *Org { return m.orgs[mspID] }

// Deserialize parses a SerializedIdentity and validates it against its org. Errors are *IdentityError.
func (m *Manager) Deserialize(serialized []byte) (*Identity, error) {
	key := string(serialized)
	m.mu.RLock()
	id := m.cache[key]
	m.mu.RUnlock()
	if id != nil {
		if err := m.checkExpiry(id.MSPID, id.Cert); err != nil {
			return nil, err
		}
		return id, nil
	}
	id, err := m.deserialize(serialized)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if len(m.cache) >= cacheMax {
		for k := range m.cache {
			delete(m.cache, k)
			break
		}
	}
	m.cache[key] = id
	m.mu.Unlock()
	return id, nil
}

func (m *Manager) checkExpiry(mspID string, c *x509.Certificate) error {
	// Fabric's MSP validates the chain at the certificate's own NotBefore; the peer's expiration filter
	// (core/handlers/auth/filter/expiration.go) and the orderer (orderer/common/msgprocessor/expiration.go)
	// refuse a creator whose certificate has expired. NotBefore in the future is not refused (as Fabric).
	if now := m.now(); now.After(c.NotAfter) {
		return &IdentityError{Kind: KindInvalid, MSPID: mspID, Expired: true,
			Msg: fmt.Sprintf("identity expired: certificate %q expired at %s (%s ago)",
				c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339), now.Sub(c.NotAfter).Round(time.Second))}
	}
	return nil
}

func (m *Manager) deserialize(serialized []byte) (*Identity, error) {
	var sid pmsp.SerializedIdentity
	if err := proto.Unmarshal(serialized, &sid); err != nil {
		return nil, &IdentityError{Kind: KindMalformed, Msg: "could not deserialize a SerializedIdentity: " + err.Error()}
	}
	org := m.orgs[sid.Mspid]
	if org == nil {
		return nil, &IdentityError{Kind: KindUnknownOrg, MSPID: sid.Mspid,
			Msg: fmt.Sprintf("MSP %s is not defined on channel (known: %s)", sid.Mspid, strings.Join(m.ids, ", "))}
	}
	malformed := func(msg string) error { return &IdentityError{Kind: KindMalformed, MSPID: sid.Mspid, Msg: msg} }
	blk, _ := pem.Decode(sid.IdBytes)
	if blk == nil {
		return nil, malformed("could not decode the PEM structure")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, malformed("parseCertificate failed: " + err.Error())
	}
	cert, role, err := org.validate(cert)
	if err != nil {
		var ce *chainError
		return nil, &IdentityError{Kind: KindInvalid, MSPID: sid.Mspid, Msg: err.Error(), Unchained: errors.As(err, &ce)}
	}
	if err := m.checkExpiry(sid.Mspid, cert); err != nil {
		return nil, err
	}
	return &Identity{MSPID: sid.Mspid, Cert: cert, Role: role, Serialized: bytes.Clone(serialized)}, nil
}

// chainError is a certificate with no chain to the org's CAs.
type chainError struct{ error }

func (e *chainError) Unwrap() error { return e.error }

// validate checks cert as an identity of the org (msp/mspimplvalidate.go validateIdentity) and returns the
// sanitized certificate and its role.
func (o *Org) validate(cert *x509.Certificate) (*x509.Certificate, Role, error) {
	switch cert.PublicKeyAlgorithm {
	case x509.ECDSA, x509.Ed25519:
	default:
		return nil, 0, fmt.Errorf("could not validate identity's public key algorithm: %s is not supported", cert.PublicKeyAlgorithm)
	}
	if cert.IsCA {
		return nil, 0, errors.New("could not obtain certification chain: An X509 certificate with Basic Constraint: " +
			"Certificate Authority equals true cannot be used as an identity")
	}
	chain, err := uniqueChain(cert, o.roots, o.intermediates)
	if err != nil {
		return nil, 0, &chainError{fmt.Errorf("could not obtain certification chain: %v (certificate subject=%s issuer=%s)",
			err, cert.Subject, cert.Issuer)}
	}
	if len(chain) < 2 {
		return nil, 0, fmt.Errorf("could not obtain certification chain: expected a chain of length at least 2, got %d", len(chain))
	}
	if o.internal[string(chain[1].RawTBSCertificate)] {
		return nil, 0, fmt.Errorf("could not obtain certification chain: invalid validation chain. Parent certificate %q should be a leaf of the certification tree", chain[1].Subject)
	}
	if cert, err = sanitize(cert, chain[1]); err != nil {
		return nil, 0, err
	}
	role, err := o.nodeOURole(cert, chain[1:])
	if err != nil {
		return nil, 0, fmt.Errorf("could not validate identity's OUs: %v", err)
	}
	return cert, role, nil
}

// nodeOURole finds the one NodeOU among the certificate's OUs (msp/mspimplvalidate.go validateIdentityOUsV142).
func (o *Org) nodeOURole(cert *x509.Certificate, certifiers []*x509.Certificate) (Role, error) {
	if !o.NodeOUs {
		return RoleMember, nil
	}
	ous := cert.Subject.OrganizationalUnit
	cid := chainID(certifiers)
	found := -1
	for _, name := range ous {
		for i, n := range o.ous {
			if n.ou != name {
				continue
			}
			if len(n.certifiers) != 0 && !bytes.Equal(n.certifiers, cid) {
				return 0, fmt.Errorf("certifiersIdentifier does not match: OU %q of %v is certified by another CA than the MSP's %s OU, MSP: [%s]", name, ous, n.role, o.MSPID)
			}
			if found >= 0 {
				return 0, fmt.Errorf("the identity must have a client, a peer, an orderer, or an admin OU role to be valid, not a combination of them. OUs: %v, MSP: [%s]", ous, o.MSPID)
			}
			found = i
			break // one identifier per OU name, as Fabric's map of them
		}
	}
	if found < 0 {
		return 0, fmt.Errorf("the identity does not have an OU that resolves to client, peer, orderer, or admin role. OUs: %v, MSP: [%s]", ous, o.MSPID)
	}
	return o.ous[found].role, nil
}
