package main

import (
	_ "github.com/fedcommittee/fedcommittee/chaincode/fedcommittee"
	_ "github.com/google/btree"
	_ "github.com/hyperledger/fabric-chaincode-go/v2/shim"
	_ "github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	_ "go.yaml.in/yaml/v3"
	_ "google.golang.org/grpc"
	_ "github.com/hyperledger/fabric-gateway/pkg/client"
)

func main() {}
