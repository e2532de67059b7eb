// Package configs holds flexbridge's example configuration files. The example mapping is also
// compiled into the binary, so `flexbridge serve` runs with no files at all.
package configs

import _ "embed"

// DefaultMapping is configs/mapping.yaml, used when mapping.file is left at its default and no
// such file exists in the working directory.
//
//go:embed mapping.yaml
var DefaultMapping []byte
