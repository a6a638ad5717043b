// Command fedcommittee runs the fedcommittee chaincode. With
// CHAINCODE_SERVER_ADDRESS and CORE_CHAINCODE_ID_NAME set it serves as
// chaincode-as-a-service (the peer dials it); otherwise it dials the peer.
package main

import (
	"fmt"
	"os"

	"github.com/fedcommittee/fedcommittee/chaincode/fedcommittee"
)

func main() {
	cc, err := fedcommittee.NewChaincode()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fedcommittee: creating chaincode: %v\n", err)
		os.Exit(1)
	}
	if os.Getenv("CHAINCODE_SERVER_ADDRESS") == "" || os.Getenv("CORE_CHAINCODE_ID_NAME") == "" {
		fmt.Fprintln(os.Stderr, "fedcommittee: CHAINCODE_SERVER_ADDRESS or CORE_CHAINCODE_ID_NAME not set: dialing the peer instead of serving as a service")
	}
	if err := cc.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "fedcommittee: chaincode stopped: %v\n", err)
		os.Exit(1)
	}
}
