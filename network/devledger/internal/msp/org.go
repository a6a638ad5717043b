// Package msp is the devledger's X.509 membership service: one Org per organisation (its root and intermediate
// CAs, TLS CAs and NodeOU classification from an MSP folder), a Manager that deserializes and validates creator
// identities as a Fabric peer does, and a Signer for the local peer identity.
//
// The rules follow Fabric v3.1.5 (read for facts, not copied): msp/mspimpl.go (deserializeIdentityInternal,
// getCertificationChainForBCCSPIdentity, getUniqueValidationChain, getValidationChain, sanitizeCert),
// msp/mspimplsetup.go (setupCAs, setupNodeOUsV142, getCertifiersIdentifier), msp/mspimplvalidate.go
// (validateIdentity, validateIdentityOUsV142, getValidityOptsForCert), msp/identities.go (Verify,
// GetOrganizationalUnits), msp/configbuilder.go (folder names, config.yaml), msp/mspmgrimpl.go
// (DeserializeIdentity) and fabric-lib-go bccsp/sw/ecdsa.go + bccsp/utils/ecdsa.go (low-S).
package msp

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"go.yaml.in/yaml/v3"
)

// Role is an identity's NodeOU classification.
type Role int

const (
	RoleMember  Role = iota // NodeOUs disabled for the org: the identity is only a member
	RoleClient              // OU "client" (or the org's ClientOUIdentifier)
	RoleAdmin               // OU "admin"
	RolePeer                // OU "peer"
	RoleOrderer             // OU "orderer"
)

func (r Role) String() string {
	switch r {
	case RoleMember:
		return "member"
	case RoleClient:
		return "client"
	case RoleAdmin:
		return "admin"
	case RolePeer:
		return "peer"
	case RoleOrderer:
		return "orderer"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Folder and file names of an MSP directory (msp/configbuilder.go).
const (
	dirCACerts           = "cacerts"
	dirIntermediateCerts = "intermediatecerts"
	dirTLSCACerts        = "tlscacerts"
	dirTLSIntermediate   = "tlsintermediatecerts"
	dirSignCerts         = "signcerts"
	dirKeystore          = "keystore"
	fileConfig           = "config.yaml"
)

// nodeOU is one NodeOU identifier: the OU name and, when config.yaml names a Certificate, the certifiers
// identifier (SHA-256 of the certification chain of that CA) the identity's chain must have.
type nodeOU struct {
	role       Role
	ou         string
	certifiers []byte
}

// Org is one organization's MSP: its root CAs (msp/cacerts), intermediate CAs, NodeOUs (msp/config.yaml) and
// TLS CAs. Read-only after LoadOrg.
type Org struct {
	MSPID             string
	RootCerts         []*x509.Certificate // sanitized (low-S) as Fabric keeps them
	IntermediateCerts []*x509.Certificate
	TLSRootCerts      []*x509.Certificate
	TLSIntermediates  []*x509.Certificate
	NodeOUs           bool // NodeOUs enabled with at least one identifier

	roots, intermediates *x509.CertPool
	ous                  []nodeOU
	internal             map[string]bool // RawTBSCertificate of CAs that issued an intermediate CA (not allowed to issue identities)
}

// mspConfig is msp/config.yaml (msp/configbuilder.go Configuration); OrganizationalUnitIdentifiers is read to
// refuse it rather than silently ignore it.
type mspConfig struct {
	OrganizationalUnitIdentifiers []ouConfig `yaml:"OrganizationalUnitIdentifiers"`
	NodeOUs                       *struct {
		Enable              bool      `yaml:"Enable"`
		ClientOUIdentifier  *ouConfig `yaml:"ClientOUIdentifier"`
		PeerOUIdentifier    *ouConfig `yaml:"PeerOUIdentifier"`
		AdminOUIdentifier   *ouConfig `yaml:"AdminOUIdentifier"`
		OrdererOUIdentifier *ouConfig `yaml:"OrdererOUIdentifier"`
	} `yaml:"NodeOUs"`
}

type ouConfig struct {
	Certificate                  string `yaml:"Certificate"`
	OrganizationalUnitIdentifier string `yaml:"OrganizationalUnitIdentifier"`
}

// LoadOrg reads an MSP folder (an org's msp/ or any node's msp/): cacerts (at least one root CA),
// intermediatecerts, tlscacerts, tlsintermediatecerts when present, and config.yaml's NodeOUs.
// Revocation lists (crls/) and OrganizationalUnitIdentifiers are not supported and refused if present.
func LoadOrg(mspID, mspDir string) (*Org, error) {
	if mspID == "" {
		return nil, fmt.Errorf("msp: empty MSP ID for %s", mspDir)
	}
	fail := func(format string, args ...any) (*Org, error) {
		return nil, fmt.Errorf("msp %s (%s): %s", mspID, mspDir, fmt.Sprintf(format, args...))
	}
	roots, err := readCertDir(filepath.Join(mspDir, dirCACerts))
	if err != nil {
		return fail("%v", err)
	}
	if len(roots) == 0 {
		return fail("no root CA certificate in %s", dirCACerts)
	}
	inters, err := readCertDir(filepath.Join(mspDir, dirIntermediateCerts))
	if err != nil {
		return fail("%v", err)
	}
	if crls, _ := readCertDirNames(filepath.Join(mspDir, "crls")); len(crls) > 0 {
		return fail("certificate revocation lists (crls/) are not supported by the devledger")
	}
	o := &Org{MSPID: mspID, roots: x509.NewCertPool(), intermediates: x509.NewCertPool(), internal: map[string]bool{}}

	// Roots: must be self-signed CAs; their signatures are normalised to low-S (mspimpl.go sanitizeCert).
	for _, c := range roots {
		if !c.IsCA {
			return fail("%s: certificate %q is not a CA", dirCACerts, c.Subject)
		}
		if err := c.CheckSignatureFrom(c); err != nil {
			return fail("%s: certificate %q is not a self-signed root CA: %v", dirCACerts, c.Subject, err)
		}
		if c, err = sanitize(c, c); err != nil {
			return fail("%s: %v", dirCACerts, err)
		}
		o.RootCerts = append(o.RootCerts, c)
		o.roots.AddCert(c)
	}
	// Intermediates: each must chain to a root; the CAs above them become internal nodes of the tree.
	raw := x509.NewCertPool()
	for _, c := range inters {
		raw.AddCert(c)
	}
	for _, c := range inters {
		if !c.IsCA {
			return fail("%s: certificate %q is not a CA", dirIntermediateCerts, c.Subject)
		}
		chain, err := uniqueChain(c, o.roots, raw)
		if err != nil {
			return fail("%s: %q: %v", dirIntermediateCerts, c.Subject, err)
		}
		if c, err = sanitize(c, chain[1]); err != nil {
			return fail("%s: %v", dirIntermediateCerts, err)
		}
		o.IntermediateCerts = append(o.IntermediateCerts, c)
		o.intermediates.AddCert(c)
		for _, p := range chain[1:] {
			o.internal[string(p.RawTBSCertificate)] = true
		}
	}

	if o.TLSRootCerts, err = readCertDir(filepath.Join(mspDir, dirTLSCACerts)); err != nil {
		return fail("%v", err)
	}
	if o.TLSIntermediates, err = readCertDir(filepath.Join(mspDir, dirTLSIntermediate)); err != nil {
		return fail("%v", err)
	}

	if err := o.loadConfig(mspDir); err != nil {
		return fail("%v", err)
	}
	return o, nil
}

func (o *Org) loadConfig(mspDir string) error {
	b, err := os.ReadFile(filepath.Join(mspDir, fileConfig))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var cfg mspConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%s: %w", fileConfig, err)
	}
	if len(cfg.OrganizationalUnitIdentifiers) > 0 {
		return fmt.Errorf("%s: OrganizationalUnitIdentifiers are not supported by the devledger", fileConfig)
	}
	if cfg.NodeOUs == nil || !cfg.NodeOUs.Enable {
		return nil
	}
	for _, e := range []struct {
		role Role
		c    *ouConfig
		name string
	}{
		{RoleClient, cfg.NodeOUs.ClientOUIdentifier, "ClientOUIdentifier"},
		{RolePeer, cfg.NodeOUs.PeerOUIdentifier, "PeerOUIdentifier"},
		{RoleAdmin, cfg.NodeOUs.AdminOUIdentifier, "AdminOUIdentifier"},
		{RoleOrderer, cfg.NodeOUs.OrdererOUIdentifier, "OrdererOUIdentifier"},
	} {
		// msp/configbuilder.go: an identifier without an OU name is dropped.
		if e.c == nil || e.c.OrganizationalUnitIdentifier == "" {
			continue
		}
		ou := nodeOU{role: e.role, ou: e.c.OrganizationalUnitIdentifier}
		if e.c.Certificate != "" {
			p := e.c.Certificate
			if !filepath.IsAbs(p) {
				p = filepath.Join(mspDir, p)
			}
			ou.certifiers, err = o.certifiersIdentifier(p)
			if err != nil {
				return fmt.Errorf("%s: NodeOUs.%s: %w", fileConfig, e.name, err)
			}
		}
		o.ous = append(o.ous, ou)
	}
	o.NodeOUs = len(o.ous) > 0
	return nil
}

// certifiersIdentifier: the CA certificate at path must be one of the org's roots or intermediates; the
// identifier is SHA-256 over the raw certificates of its chain up to the root (mspimplsetup.go
// getCertifiersIdentifier, mspimpl.go getCertificationChainIdentifierFromChain).
func (o *Org) certifiersIdentifier(path string) ([]byte, error) {
	certs, err := readCertFile(path)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%s: expected one certificate, found %d", path, len(certs))
	}
	// Compared by the signed part: sanitizing changes only the signature.
	c := certs[0]
	for _, r := range o.RootCerts {
		if bytes.Equal(r.RawTBSCertificate, c.RawTBSCertificate) {
			return chainID([]*x509.Certificate{r}), nil
		}
	}
	for _, in := range o.IntermediateCerts {
		if bytes.Equal(in.RawTBSCertificate, c.RawTBSCertificate) {
			chain, err := uniqueChain(in, o.roots, o.intermediates)
			if err != nil {
				return nil, err
			}
			return chainID(chain), nil
		}
	}
	return nil, fmt.Errorf("certificate %s (%q) is not one of the MSP's root or intermediate CAs", path, c.Subject)
}

func chainID(chain []*x509.Certificate) []byte {
	h := sha256.New()
	for _, c := range chain {
		h.Write(c.Raw)
	}
	return h.Sum(nil)
}

// uniqueChain verifies c against roots+intermediates, any key usage, at c.NotBefore+1s as Fabric does
// (mspimplvalidate.go getValidityOptsForCert: the MSP checks the chain, not the expiry), and requires exactly
// one chain (mspimpl.go getUniqueValidationChain).
func uniqueChain(c *x509.Certificate, roots, inters *x509.CertPool) ([]*x509.Certificate, error) {
	chains, err := c.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inters,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		CurrentTime:   c.NotBefore.Add(time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("the supplied identity is not valid: %w", err)
	}
	if len(chains) != 1 {
		return nil, fmt.Errorf("this MSP only supports a single validation chain, got %d", len(chains))
	}
	return chains[0], nil
}

// Orgs' accessors.

// TLSRootPool returns a pool of the org's TLS root and intermediate CAs (for verifying its nodes' TLS certs).
func (o *Org) TLSRootPool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range o.TLSRootCerts {
		p.AddCert(c)
	}
	for _, c := range o.TLSIntermediates {
		p.AddCert(c)
	}
	return p
}

// readCertDir reads every regular file of dir holding PEM CERTIFICATE blocks (a missing dir is empty), sorted by
// name. Files without PEM content are skipped as Fabric does (configbuilder.go getPemMaterialFromDir).
func readCertDir(dir string) ([]*x509.Certificate, error) {
	names, err := readCertDirNames(dir)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, n := range names {
		certs, err := readCertFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, certs...)
	}
	return out, nil
}

func readCertDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(dir, e.Name())) // follows symlinks, as Fabric
		if err != nil || fi.IsDir() {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

func readCertFile(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	return out, nil
}
