package shimhost

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// maxMsgSize matches the peer's and the chaincode server's gRPC limit
// (100 MiB, fabric-chaincode-go shim/internal/server.go).
const maxMsgSize = 100 * 1024 * 1024

// connectTimeout bounds NewCCaaS's first connection attempt.
const connectTimeout = 10 * time.Second

// NewCCaaS dials a chaincode-as-a-service server (the same binary that runs on
// Fabric: CHAINCODE_SERVER_ADDRESS, CORE_CHAINCODE_ID_NAME, TLS on, no client
// CA) with TLS, rootCAPEM verifying its server certificate, and runs the shim
// protocol over peer.Chaincode/Connect. If the server is not up yet, or the
// stream breaks later, the next Execute dials again (an Execute that finds it
// down fails with an error naming the address).
func NewCCaaS(ccName, address string, rootCAPEM []byte, logf func(string, ...any)) (Host, error) {
	if ccName == "" || address == "" {
		return nil, errors.New("devledger: NewCCaaS needs a chaincode name and an address")
	}
	if logf == nil {
		logf = nopLogf
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rootCAPEM) {
		return nil, fmt.Errorf("devledger: chaincode %s at %s: no PEM certificate in the TLS root CA", ccName, address)
	}
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	h := &host{ccName: ccName, where: "at " + address, logf: logf}
	h.dial = func(ctx context.Context) (msgStream, func(), error) {
		return dialCCaaS(ctx, address, tlsCfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if _, err := h.current(ctx); err != nil {
		logf("%v (will dial again on the next invocation)", err)
	}
	return h, nil
}

// dialCCaaS opens a fresh gRPC connection and Connect stream. A new
// connection each time: a kept ClientConn would sit in its reconnect
// back-off and fail fast even after the server came back.
func dialCCaaS(ctx context.Context, address string, tlsCfg *tls.Config) (msgStream, func(), error) {
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg.Clone())),
		// The chaincode server's client settings (shim/internal/config.go);
		// its enforcement policy allows them.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: time.Minute, Timeout: 20 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, nil, err
	}
	// The stream lives on after ctx (the first Execute's) ends; ctx only
	// bounds the connection attempt.
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	st, err := peer.NewChaincodeClient(conn).Connect(sctx)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		conn.Close()
		return nil, nil, err
	}
	return st, func() { cancel(); conn.Close() }, nil
}
