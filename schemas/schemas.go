// Package schemas holds the declared schemas of ledgerlake's streams, embedded in the binary. Each YAML
// file describes one stream: its key, its columns with the API field they come from, their types and a
// description; the warehouse documentation is generated from them.
package schemas

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

//go:embed */*.yaml
var files embed.FS

// Table is the declared schema of one stream.
type Table struct {
	Source      string `yaml:"source"`
	Stream      string `yaml:"stream"`
	Description string `yaml:"description"`
	// Key is what ../shared/spec says identifies a record (in force: rows sharing it are reported).
	Key []string `yaml:"key"`
	// Ident is what the examples suggest identifies a record where the spec does not say so: an
	// assumption that names rejects and links child rows, and never groups rows.
	Ident   []string `yaml:"ident"`
	Columns []Column `yaml:"columns"`
}

// Column is one declared column. Path is the API field (dots for nested objects); Name defaults to the
// snake_case form of Path with "__" between nesting levels, as DESIGN.md fixes.
type Column struct {
	Name        string `yaml:"name"`
	Path        string `yaml:"path"`
	Type        string `yaml:"type"`
	Description string `yaml:"description"`
}

// Name of the warehouse table for a source's stream: "signicat" + "accounts" → "signicat_accounts".
func (t *Table) Name() string { return t.Source + "_" + t.Stream }

var (
	loadOnce sync.Once
	tables   map[string]*Table
	loadErr  error
)

// Lookup returns the declared schema of source's stream, or nil when the stream has none.
func Lookup(source, stream string) (*Table, error) {
	loadOnce.Do(load)
	if loadErr != nil {
		return nil, loadErr
	}
	return tables[source+"/"+stream], nil
}

// All returns every declared schema, ordered by table name.
func All() ([]*Table, error) {
	loadOnce.Do(load)
	if loadErr != nil {
		return nil, loadErr
	}
	out := make([]*Table, 0, len(tables))
	for _, t := range tables {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

func load() {
	tables = map[string]*Table{}
	loadErr = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		t, err := Parse(b)
		if err != nil {
			return fmt.Errorf("schemas/%s: %w", p, err)
		}
		if want := path.Dir(p) + "/" + strings.TrimSuffix(path.Base(p), ".yaml"); t.Source+"/"+t.Stream != want {
			return fmt.Errorf("schemas/%s: declares %s/%s, want %s", p, t.Source, t.Stream, want)
		}
		tables[t.Source+"/"+t.Stream] = t
		return nil
	})
}

// Parse reads and validates one schema file.
func Parse(b []byte) (*Table, error) {
	var t Table
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, err
	}
	if t.Source == "" || t.Stream == "" {
		return nil, fmt.Errorf("source and stream are required")
	}
	seen := map[string]bool{}
	for i := range t.Columns {
		c := &t.Columns[i]
		if c.Path == "" {
			return nil, fmt.Errorf("column %d: path is required", i+1)
		}
		if c.Name == "" {
			c.Name = ColumnName(c.Path)
		}
		if _, err := ParseType(c.Type); err != nil {
			return nil, fmt.Errorf("column %s: %w", c.Name, err)
		}
		if c.Description == "" {
			return nil, fmt.Errorf("column %s: description is required", c.Name)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("column %s declared twice", c.Name)
		}
		seen[c.Name] = true
	}
	for _, k := range append(slices.Clone(t.Key), t.Ident...) {
		if !seen[k] {
			return nil, fmt.Errorf("key or ident column %s is not declared", k)
		}
	}
	if len(t.Key) > 0 && len(t.Ident) > 0 {
		return nil, fmt.Errorf("a key in force and an ident: say one (ident when the spec does not say what identifies a record)")
	}
	return &t, nil
}

var (
	camelBoundary = regexp.MustCompile(`([a-z0-9])([A-Z])`)
	acronymEnd    = regexp.MustCompile(`([A-Z]+)([A-Z][a-z])`)
	nonWord       = regexp.MustCompile(`[^a-z0-9]+`)
)

// ColumnName turns an API field path into a warehouse column name: snake_case per level, "__" between
// levels ("lastModifiedDate" → "last_modified_date", "ContractID" → "contract_id",
// "organization.id" → "organization__id", "INIT.PROCEDURE" inside a map stays a map key, not a path).
func ColumnName(apiPath string) string {
	parts := strings.Split(apiPath, ".")
	for i, p := range parts {
		lead := strings.HasPrefix(p, "_") // _position, _parent_id: ledgerlake's own columns keep their mark
		p = acronymEnd.ReplaceAllString(p, "${1}_${2}")
		p = camelBoundary.ReplaceAllString(p, "${1}_${2}")
		p = nonWord.ReplaceAllString(strings.ToLower(p), "_")
		parts[i] = strings.Trim(p, "_")
		if lead {
			parts[i] = "_" + parts[i]
		}
	}
	return strings.Join(parts, "__")
}
