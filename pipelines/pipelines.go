// Package pipelines embeds the shipped pipeline definitions, so `extract demo` works from any directory.
package pipelines

import _ "embed"

// Demo is pipelines/demo.yaml.
//
//go:embed demo.yaml
var Demo []byte

// DemoTenantB is pipelines/demo-tenant-b.yaml: the demo against the sandbox's tenant b, with the
// mapping of that tenant's field names.
//
//go:embed demo-tenant-b.yaml
var DemoTenantB []byte
