package fedcommittee

import (
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/hyperledger/fabric-contract-api-go/v2/metadata"
)

// ContractName is the contract's namespace; as the chaincode's only (and so
// default) contract its transactions can also be called without the prefix.
const ContractName = "fedcommittee"

// Contract is the fedcommittee smart contract. Every exported method with a
// TransactionContextInterface first argument is a transaction; helpers are
// unexported so that they are never callable from outside.
type Contract struct {
	contractapi.Contract
}

// New returns the contract with its name and metadata set.
func New() *Contract {
	c := &Contract{}
	c.Name = ContractName
	c.BeforeTransaction = checkArgumentCount
	c.Info = metadata.InfoMetadata{
		Title:       "fedcommittee",
		Description: "Committee-validated federated learning",
		Version:     "1.0.0",
	}
	return c
}

// NewChaincode builds the chaincode around the contract.
func NewChaincode() (*contractapi.ContractChaincode, error) {
	cc, err := contractapi.NewChaincode(New())
	if err != nil {
		return nil, err
	}
	cc.Info.Title = "fedcommittee"
	cc.Info.Version = "1.0.0"
	return cc, nil
}
