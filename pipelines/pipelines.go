// Package pipelines embeds the shipped pipeline definitions, so `extract demo` works from any directory.
package pipelines

import _ "embed"

// Demo is pipelines/demo.yaml.
//
//go:embed demo.yaml
var Demo []byte
