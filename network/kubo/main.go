// Command ipfs is Kubo, built as a dependency of this module rather than with `go install`:
// Kubo >= v0.40 has exclude directives in its go.mod, which `go install pkg@version` refuses,
// while a dependent module ignores them.
package main

import (
	"os"

	"github.com/ipfs/kubo/cmd/ipfs/kubo"
)

func main() { os.Exit(kubo.Start(kubo.BuildDefaultEnv)) }
