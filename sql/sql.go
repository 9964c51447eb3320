// Package sql embeds the SQL models and data tests run in the warehouse after each load:
// staging/ (views over the raw tables), marts/ (tables unifying both sources) and tests/ (queries that
// return offending rows). Each file starts with "-- " comment lines describing it. fields.yaml lists
// the tenant-defined columns the models read, with their defaults; a pipeline maps them to its
// tenant's names (sources.gsapi.fields).
package sql

import (
	"embed"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Files holds every model and data test.
//
//go:embed staging/*.sql marts/*.sql tests/*.sql
var Files embed.FS

//go:embed fields.yaml
var fieldsYAML []byte

// Field is one tenant-defined column a model reads.
type Field struct {
	Column      string `yaml:"column"` // the default: tenant a's column
	Description string `yaml:"description"`
}

// Fields are the tenant-defined columns the models read: table → the models' name → field.
var Fields = func() map[string]map[string]Field {
	var out map[string]map[string]Field
	if err := yaml.Unmarshal(fieldsYAML, &out); err != nil {
		panic("sql/fields.yaml: " + err.Error())
	}
	return out
}()

// Mapping is the column each model field reads in a pipeline: the defaults, with what the config
// names (source → stream → field → column) laid over them.
type Mapping map[string]map[string]string

// NewMapping lays what a source's config names (sources.<source>.fields: stream → field → column) over
// the defaults; a table or field the models do not read is an error naming the config key, so a typo
// cannot pass silently.
func NewMapping(source string, streams map[string]map[string]string) (Mapping, error) {
	m := Mapping{}
	for table, fields := range Fields {
		m[table] = map[string]string{}
		for name, f := range fields {
			m[table][name] = f.Column
		}
	}
	for stream, fields := range streams {
		table := source + "_" + stream
		if m[table] == nil {
			return nil, fmt.Errorf("sources.%s.fields.%s: the models read no fields of %s (they read: %s)", source, stream, table, strings.Join(mapped(source), ", "))
		}
		for name, col := range fields {
			if _, ok := m[table][name]; !ok {
				return nil, fmt.Errorf("sources.%s.fields.%s.%s: the models read no field %q of %s (they read: %s)", source, stream, name, name, table, strings.Join(names(Fields[table]), ", "))
			}
			if col == "" {
				return nil, fmt.Errorf("sources.%s.fields.%s.%s: name the column that holds it", source, stream, name)
			}
			m[table][name] = col
		}
	}
	return m, nil
}

// ConfigKey is the config key that maps table's field: sources.gsapi.fields.datasync_invoices.net_amount.
func ConfigKey(table, field string) string {
	source, stream, _ := strings.Cut(table, "_")
	return fmt.Sprintf("sources.%s.fields.%s.%s", source, stream, field)
}

func mapped(source string) []string {
	var out []string
	for t := range Fields {
		if s, stream, _ := strings.Cut(t, "_"); s == source {
			out = append(out, stream)
		}
	}
	sort.Strings(out)
	return out
}

func names(fields map[string]Field) []string { return slices.Sorted(maps.Keys(fields)) }
