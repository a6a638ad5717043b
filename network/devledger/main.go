// Command devledger is fedcommittee's embedded ledger: a Fabric-protocol ledger in one process,
// for machines where Fabric's binaries cannot be installed. See README.md beside this file.
//
//	devledger serve  --config FILE     serve every org's Gateway until SIGTERM/SIGINT
//	devledger crypto --crypto-config crypto-config.yaml --out DIR [--users N]
//
// SIGHUP re-reads the outages file named in the config: an org listed there has its listener
// stopped (a peer outage); one no longer listed is served again.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/fedcommittee/fedcommittee/network/devledger/internal/cryptogen"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serveCommand(os.Args[2:])
	case "crypto":
		err = cryptoCommand(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "devledger: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: devledger serve --config FILE | devledger crypto --crypto-config FILE --out DIR [--users N]")
	os.Exit(2)
}

// cryptoCommand writes the identity tree cryptogen would write for the config's peer orgs.
func cryptoCommand(args []string) error {
	fs := flag.NewFlagSet("crypto", flag.ExitOnError)
	config := fs.String("crypto-config", "", "cryptogen's crypto-config.yaml (its PeerOrgs are generated)")
	out := fs.String("out", "", "output folder (peerOrganizations/ is written under it)")
	users := fs.Int("users", 0, "client users per org (0: the Users count of the config)")
	_ = fs.Parse(args)
	if *config == "" || *out == "" {
		return fmt.Errorf("crypto: --crypto-config and --out are required")
	}
	raw, err := os.ReadFile(*config)
	if err != nil {
		return err
	}
	specs, err := cryptogen.ReadSpec(raw, *users)
	if err != nil {
		return fmt.Errorf("%s: %w", *config, err)
	}
	return cryptogen.Generate(*out, specs)
}
