// Package fieldmap is where the SQL models' tenant-defined fields come from: fields.yaml lists the
// fields the models read, with their default columns; a pipeline says where its tenant keeps them
// (sources.gsapi.fields: a column, an expression, a parent's field or a constant). It is a leaf, so
// the config and the sources read the mapping without depending on the models.
package fieldmap

import (
	_ "embed"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed fields.yaml
var fieldsYAML []byte

// Field is one tenant-defined field a model reads.
type Field struct {
	Column      string `yaml:"column"` // the default: tenant a's column
	Description string `yaml:"description"`
}

// Fields are the tenant-defined fields the models read: table → the models' name → field.
var Fields = func() map[string]map[string]Field {
	var out map[string]map[string]Field
	if err := yaml.Unmarshal(fieldsYAML, &out); err != nil {
		panic("sql/fieldmap/fields.yaml: " + err.Error())
	}
	return out
}()

// Ref names one model field: its table and the models' name for it.
type Ref struct{ Table, Field string }

// Order lists every field of fields.yaml in the file's order (by table, the order a reader meets
// them in the models), for what shows or proposes the fields.
var Order = func() []Ref {
	var doc yaml.Node
	if err := yaml.Unmarshal(fieldsYAML, &doc); err != nil {
		panic("sql/fieldmap/fields.yaml: " + err.Error())
	}
	var out []Ref
	tables := doc.Content[0].Content
	for i := 0; i+1 < len(tables); i += 2 {
		fields := tables[i+1].Content
		for j := 0; j+1 < len(fields); j += 2 {
			out = append(out, Ref{tables[i].Value, fields[j].Value})
		}
	}
	return out
}()

// Mapping is where each model field comes from in a pipeline: the defaults, with what the config
// names (source → stream → field → entry) laid over them.
type Mapping map[string]map[string]Entry

// NewMapping lays what a source's config names (sources.<source>.fields: stream → field → entry) over
// the defaults; a table or field the models do not read, or an entry that is not exactly one
// well-formed form, is an error naming the config key, so a typo cannot pass silently. Whether the
// columns exist is the warehouse's to say when the models bind.
func NewMapping(source string, streams map[string]map[string]Entry) (Mapping, error) {
	m := Defaults()
	for _, stream := range slices.Sorted(maps.Keys(streams)) {
		fields := streams[stream]
		table := source + "_" + stream
		if m[table] == nil {
			return nil, fmt.Errorf("sources.%s.fields.%s: the models read no fields of %s (they read: %s)", source, stream, table, strings.Join(mapped(source), ", "))
		}
		for _, name := range slices.Sorted(maps.Keys(fields)) {
			if _, ok := m[table][name]; !ok {
				return nil, fmt.Errorf("sources.%s.fields.%s.%s: the models read no field %q of %s (they read: %s)", source, stream, name, name, table, strings.Join(names(Fields[table]), ", "))
			}
			if err := fields[name].check(); err != nil {
				return nil, fmt.Errorf("%s: %w", ConfigKey(table, name), err)
			}
			m[table][name] = fields[name]
		}
	}
	return m, nil
}

// Defaults is the mapping of fields.yaml alone: every field from its default column.
func Defaults() Mapping {
	m := Mapping{}
	for table, fields := range Fields {
		m[table] = map[string]Entry{}
		for name, f := range fields {
			m[table][name] = Column(f.Column)
		}
	}
	return m
}

// Expr is the SQL that reads table's field in a model, whose FROM names table without an alias.
func (m Mapping) Expr(table, field string) string {
	return m[table][field].Expr(table, ConfigKey(table, field))
}

// IsDefault reports whether table's field is read from its default column (fields.yaml).
func (m Mapping) IsDefault(table, field string) bool {
	return m[table][field] == Column(Fields[table][field].Column)
}

// Source is where a model field comes from, as people read it: the entry as a pipeline file writes
// it, and whether it is the default of fields.yaml.
type Source struct {
	Entry   string
	Default bool
}

// Sources is every field's Source under m.
func (m Mapping) Sources() map[Ref]Source {
	out := map[Ref]Source{}
	for _, r := range Order {
		out[r] = Source{Entry: m[r.Table][r.Field].String(), Default: m.IsDefault(r.Table, r.Field)}
	}
	return out
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
