package shimhost

import "github.com/fedcommittee/fedcommittee/network/devledger/internal/ledger"

// The ledger's types under short local names (aliases: identical types).
type (
	// Simulator is ledger.Simulator: one transaction's view of the state.
	Simulator = ledger.Simulator
	// RangeIterator is ledger.RangeIterator.
	RangeIterator = ledger.RangeIterator
	// KV is ledger.KV.
	KV = ledger.KV
	// KeyMod is ledger.KeyMod.
	KeyMod = ledger.KeyMod
)
