// Command flexbridge keeps a Twilio Flex contact center's TaskRouter workers in step with the
// company's identity provider. See `flexbridge --help`.
package main

import (
	"os"

	"github.com/flexbridge/flexbridge/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
