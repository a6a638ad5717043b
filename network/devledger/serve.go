package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	gp "github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/fedcommittee/fedcommittee/chaincode/fedcommittee"
	"github.com/fedcommittee/fedcommittee/network/devledger/internal/gateway"
	"github.com/fedcommittee/fedcommittee/network/devledger/internal/ledger"
	"github.com/fedcommittee/fedcommittee/network/devledger/internal/msp"
	"github.com/fedcommittee/fedcommittee/network/devledger/internal/shimhost"
)

// Config is what `serve` reads; scripts/devledger.sh writes it from the network layout.
type Config struct {
	Channel          string      `json:"channel"`
	Chaincode        string      `json:"chaincode"`
	ChaincodeVersion string      `json:"chaincode_version"`
	DataDir          string      `json:"data_dir"`
	BatchTimeoutMS   int         `json:"batch_timeout_ms"`
	BatchMaxTx       int         `json:"batch_max_tx"`
	ChaincodeMode    string      `json:"chaincode_mode"` // "inproc" (default) or "ccaas"
	OutagesFile      string      `json:"outages_file"`
	Orgs             []OrgConfig `json:"orgs"`
}

// OrgConfig is one org's peer: its MSP, its signing identity, its TLS listener.
type OrgConfig struct {
	MSPID        string `json:"msp_id"`
	Name         string `json:"name"`
	Listen       string `json:"listen"`
	MSPDir       string `json:"msp_dir"`
	PeerMSPDir   string `json:"peer_msp_dir"`
	TLSCert      string `json:"tls_cert"`
	TLSKey       string `json:"tls_key"`
	CCaaSAddress string `json:"ccaas_address"`
	CCaaSRootCA  string `json:"ccaas_root_ca"`
}

func loadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg := &Config{BatchTimeoutMS: 30, BatchMaxTx: 200, ChaincodeMode: "inproc", ChaincodeVersion: "1.0"}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case cfg.Channel == "" || cfg.Chaincode == "" || cfg.DataDir == "":
		return nil, fmt.Errorf("%s: channel, chaincode and data_dir are required", path)
	case len(cfg.Orgs) == 0:
		return nil, fmt.Errorf("%s: orgs must list at least one org", path)
	case cfg.ChaincodeMode != "inproc" && cfg.ChaincodeMode != "ccaas":
		return nil, fmt.Errorf("%s: chaincode_mode must be inproc or ccaas, got %q", path, cfg.ChaincodeMode)
	}
	return cfg, nil
}

func serveCommand(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	path := fs.String("config", "", "the devledger config (JSON)")
	_ = fs.Parse(args)
	if *path == "" {
		return fmt.Errorf("serve: --config is required")
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	logger := log.New(os.Stderr, "devledger ", log.LstdFlags|log.Lmicroseconds)
	if err := startProfiling(os.Getenv("FC_DEVLEDGER_PPROF"), logger.Printf); err != nil {
		return err
	}
	n, err := build(cfg, logger.Printf)
	if err != nil {
		return err
	}
	defer n.Ledger.Close()
	srv := newListeners(cfg, n, logger.Printf)
	if err := srv.apply(); err != nil {
		return err
	}
	logger.Printf("ready: channel %s, chaincode %s (%s), %d orgs, height %d", cfg.Channel, cfg.Chaincode, cfg.ChaincodeMode, len(cfg.Orgs), n.Ledger.Height())
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for sig := range signals {
		if sig == syscall.SIGHUP {
			if err := srv.apply(); err != nil {
				logger.Printf("outages: %v", err)
			}
			continue
		}
		logger.Printf("%s: stopping", sig)
		srv.stopAll()
		return nil
	}
	return nil
}

// build opens the ledger and starts each org's chaincode.
func build(cfg *Config, logf func(string, ...any)) (*gateway.Network, error) {
	var orgs []*gateway.Org
	var mspOrgs []*msp.Org
	for _, oc := range cfg.Orgs {
		mo, err := msp.LoadOrg(oc.MSPID, oc.MSPDir)
		if err != nil {
			return nil, fmt.Errorf("org %s: %w", oc.MSPID, err)
		}
		signer, err := msp.LoadSigner(oc.MSPID, oc.PeerMSPDir)
		if err != nil {
			return nil, fmt.Errorf("org %s peer identity: %w", oc.MSPID, err)
		}
		host, err := chaincodeHost(cfg, oc, logf)
		if err != nil {
			return nil, fmt.Errorf("org %s chaincode: %w", oc.MSPID, err)
		}
		mspOrgs = append(mspOrgs, mo)
		orgs = append(orgs, &gateway.Org{MSPID: oc.MSPID, Name: oc.Name, Address: oc.Listen, Signer: signer, Host: host})
	}
	n := gateway.NewNetwork(cfg.Channel, cfg.Chaincode, cfg.ChaincodeVersion, orgs, msp.NewManager(mspOrgs...), nil, logf)
	l, err := ledger.Open(ledger.Config{
		Dir: cfg.DataDir, Channel: cfg.Channel,
		BatchTimeout: time.Duration(cfg.BatchTimeoutMS) * time.Millisecond, BatchMaxTx: cfg.BatchMaxTx,
		Validate: n.Validate, Logf: logf,
	})
	if err != nil {
		return nil, err
	}
	n.Ledger = l
	return n, nil
}

// chaincodeHost runs the project's chaincode through the real shim: in this process (one
// instance per org, as each Fabric peer has its own), or by dialling the org's
// chaincode-as-a-service process, the binary that runs on Fabric.
func chaincodeHost(cfg *Config, oc OrgConfig, logf func(string, ...any)) (shimhost.Host, error) {
	if cfg.ChaincodeMode == "ccaas" {
		ca, err := os.ReadFile(oc.CCaaSRootCA)
		if err != nil {
			return nil, err
		}
		return shimhost.NewCCaaS(cfg.Chaincode, oc.CCaaSAddress, ca, logf)
	}
	cc, err := fedcommittee.NewChaincode()
	if err != nil {
		return nil, err
	}
	return shimhost.NewInProc(cfg.Chaincode, cc, logf)
}

// listeners serves each org's gateway on its own TLS listener, and stops or restarts one to stand
// for a peer outage.
type listeners struct {
	cfg     *Config
	net     *gateway.Network
	logf    func(string, ...any)
	mu      sync.Mutex
	servers map[string]*grpc.Server
}

func newListeners(cfg *Config, n *gateway.Network, logf func(string, ...any)) *listeners {
	return &listeners{cfg: cfg, net: n, logf: logf, servers: map[string]*grpc.Server{}}
}

// apply brings the listeners in line with the outages file.
func (s *listeners) apply() error {
	down, err := readOutages(s.cfg.OutagesFile)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, oc := range s.cfg.Orgs {
		org := s.net.OrgByID(oc.MSPID)
		srv, serving := s.servers[oc.MSPID]
		switch {
		case down[oc.Name] && serving:
			org.SetUp(false)
			srv.Stop()
			delete(s.servers, oc.MSPID)
			s.logf("%s: listener stopped (peer outage)", oc.Name)
		case !down[oc.Name] && !serving:
			srv, err := s.serve(oc)
			if err != nil {
				return err
			}
			s.servers[oc.MSPID] = srv
			org.SetUp(true)
			s.logf("%s: gateway on %s", oc.Name, oc.Listen)
		}
	}
	return nil
}

func (s *listeners) serve(oc OrgConfig) (*grpc.Server, error) {
	cert, err := tls.LoadX509KeyPair(oc.TLSCert, oc.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("%s TLS: %w", oc.Name, err)
	}
	lis, err := net.Listen("tcp", oc.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", oc.Name, err)
	}
	const maxMessage = 100 * 1024 * 1024 // the peer's default (core.yaml peer.maxRecvMsgSize)
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})),
		grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage),
		// The peer's keepalive policy (core.yaml peer.keepalive): clients may ping every 60 s.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 60 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Hour, Timeout: 20 * time.Second}),
	)
	gp.RegisterGatewayServer(srv, gateway.NewServer(s.net, s.net.OrgByID(oc.MSPID)))
	go func() {
		if err := srv.Serve(lis); err != nil {
			s.logf("%s: listener ended: %v", oc.Name, err)
		}
	}()
	return srv, nil
}

func (s *listeners) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, srv := range s.servers {
		srv.Stop()
		delete(s.servers, id)
	}
	for _, o := range s.net.Orgs {
		_ = o.Host.Close()
	}
}

// readOutages reads the org names (one a line) whose listeners are to be stopped.
func readOutages(path string) (map[string]bool, error) {
	down := map[string]bool{}
	if path == "" {
		return down, nil
	}
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return down, nil
	}
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if name := strings.TrimSpace(line); name != "" {
			down[name] = true
		}
	}
	return down, nil
}
