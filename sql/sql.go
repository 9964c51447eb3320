// Package sql embeds the SQL models and data tests run in the warehouse after each load:
// staging/ (views over the raw tables), marts/ (tables unifying both sources) and tests/ (queries that
// return offending rows). Each file starts with "-- " comment lines describing it. The tenant-defined
// fields the models read, and where a pipeline says its tenant keeps them, are package fieldmap's
// (fieldmap/fields.yaml).
package sql

import (
	"embed"
)

// Files holds every model and data test.
//
//go:embed staging/*.sql marts/*.sql tests/*.sql
var Files embed.FS
