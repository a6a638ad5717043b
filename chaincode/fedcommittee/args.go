package fedcommittee

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// checkArgumentCount refuses a call with more arguments than its transaction
// takes. contract-api only refuses too few, so without this a call such as
// ApproveModel(model, score, "extra") would commit, and what a client or an
// auditor reads from the transaction would differ from what the contract used.
func checkArgumentCount(ctx contractapi.TransactionContextInterface) error {
	fn, params := ctx.GetStub().GetFunctionAndParameters()
	name := strings.TrimPrefix(fn, ContractName+":")
	method, ok := reflect.TypeOf(&Contract{}).MethodByName(name)
	if !ok {
		return nil // unknown functions are refused by contract-api itself
	}
	// Receiver and transaction context come before the transaction's own arguments.
	want := method.Type.NumIn() - 2
	if len(params) != want {
		return fmt.Errorf("%s takes %d argument(s), got %d", name, want, len(params))
	}
	return nil
}
