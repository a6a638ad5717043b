package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
)

// startProfiling serves Go's profiles (goroutine dumps, CPU, heap) on addr, a loopback
// host:port, when it is set (FC_DEVLEDGER_PPROF): how a stalled scale run is looked at without
// killing the ledger for a SIGQUIT dump. Off by default.
func startProfiling(addr string, logf func(string, ...any)) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("FC_DEVLEDGER_PPROF must be host:port, got %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("FC_DEVLEDGER_PPROF must be a loopback address (profiles show everything in flight), got %q", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("FC_DEVLEDGER_PPROF: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go func() { logf("profiling server ended: %v", http.Serve(ln, mux)) }()
	logf("profiles on http://%s/debug/pprof/", ln.Addr())
	return nil
}
