package config

import (
	"embed"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// Key is one configuration key as the reference documents it.
type Key struct {
	// Path is where the key goes: sources.signicat.since; the keys of a list's mappings are under
	// "name[]": sources.gsapi.datatables[].table.
	Path     string
	Type     string // what a value is, in words
	Default  string // what applies when the key is left out ("" when nothing does)
	Example  string
	Doc      string // what it does: the field's doc comment
	Required bool
	Secret   bool // a credential: from the environment only, never resolved by commands that only read
}

// sources holds this package's code, whose doc comments document the keys.
//
//go:embed *.go
var sources embed.FS

// Reference documents every key of a pipeline file, in the order of the types: the doc comment of
// each field says what the key does, its example tag shows a value, and its default is what applyDefaults
// fills in (or the default tag, where that depends on something else). A key added to the types is
// documented here without more code.
func Reference() ([]Key, error) {
	docs, err := fieldDocs()
	if err != nil {
		return nil, err
	}
	defaults, err := derivedDefaults()
	if err != nil {
		return nil, err
	}
	var out []Key
	var missing []string
	walkKeys(reflect.TypeFor[Config](), "", func(path string, f reflect.StructField) {
		k := Key{Path: path, Type: typeWords(f.Type), Example: f.Tag.Get("example"), Required: f.Tag.Get("required") == "true",
			Secret: f.Tag.Get("secret") == "true", Default: f.Tag.Get("default")}
		if k.Default == "" {
			k.Default = defaults[path]
		}
		k.Doc = docs[f.Name+"@"+path]
		if k.Doc == "" {
			missing = append(missing, path)
		}
		out = append(out, k)
	})
	if len(missing) > 0 {
		return out, fmt.Errorf("config keys without a doc comment: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// fieldDocs reads the doc comment of every struct field in this package's code, keyed by the field
// name and each path the field appears at.
func fieldDocs() (map[string]string, error) {
	byType := map[string]string{} // "Signicat.Since": doc
	entries, err := sources.ReadDir(".")
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		b, err := sources.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, e.Name(), b, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			if st, ok := ts.Type.(*ast.StructType); ok {
				for _, fl := range st.Fields.List {
					doc := fl.Doc.Text()
					if doc == "" {
						doc = fl.Comment.Text()
					}
					for _, name := range fl.Names {
						byType[ts.Name.Name+"."+name.Name] = sentence(name.Name, doc)
					}
				}
			}
			return false
		})
	}
	out := map[string]string{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		t = deref(t)
		keys, fields := fieldsOf(t)
		for _, k := range keys {
			f := fields[k]
			path := strings.TrimPrefix(prefix+"."+k, ".")
			owner := t // the struct that declares f: an inline struct's fields are its own
			if len(f.Index) > 1 {
				owner = deref(t.FieldByIndex(f.Index[:len(f.Index)-1]).Type)
			}
			out[f.Name+"@"+path] = byType[owner.Name()+"."+f.Name]
			ft := deref(f.Type)
			switch {
			case ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType):
				walk(ft, path)
			case ft.Kind() == reflect.Slice && deref(ft.Elem()).Kind() == reflect.Struct:
				walk(ft.Elem(), path+"[]")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out, nil
}

// sentence makes a field's doc comment read as the key's: "PageLimit is the items per page" becomes
// "The items per page", on one line.
func sentence(field, doc string) string {
	doc = strings.Join(strings.Fields(doc), " ")
	if rest, ok := strings.CutPrefix(doc, field+" "); ok {
		for _, verb := range []string{"is ", "are "} {
			rest = strings.TrimPrefix(rest, verb)
		}
		doc = rest
	}
	r, n := utf8.DecodeRuneInString(doc)
	return string(unicode.ToUpper(r)) + doc[n:]
}

// minimal is the least config validate accepts with both sources: what applyDefaults fills in is the defaults.
const minimal = `
sources:
  signicat: {base_url: "https://signicat.test", token_url: "https://signicat.test/token", client_id: id, client_secret: secret}
  gsapi: {base_url: "https://gsapi.test", jwt: jwt, datatables: [{table: t, sortorder: [id asc], key: id}]}
`

// derivedDefaults are the values applyDefaults fills into the minimal config, by key path.
func derivedDefaults() (map[string]string, error) {
	cfg, err := Parse([]byte(minimal), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, fmt.Errorf("the reference's minimal config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(minimal), &root); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	setPaths(root.Content[0], "", set)
	out := map[string]string{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		keys, fields := fieldsOf(v.Type())
		for _, k := range keys {
			path := strings.TrimPrefix(prefix+"."+k, ".")
			fv := v.FieldByIndex(fields[k].Index)
			if s := defaultText(fv); s != "" && !set[path] {
				out[path] = s
			}
			ft := deref(fv.Type())
			switch {
			case ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType):
				walk(fv, path)
			case ft.Kind() == reflect.Slice && deref(ft.Elem()).Kind() == reflect.Struct && fv.Len() > 0:
				walk(fv.Index(0), path+"[]")
			}
		}
	}
	walk(reflect.ValueOf(cfg), "")
	return out, nil
}

// setPaths adds the key paths n sets to set (a list's mappings' keys under "name[]").
func setPaths(n *yaml.Node, prefix string, set map[string]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := strings.TrimPrefix(prefix+"."+n.Content[i].Value, ".")
			set[p] = true
			setPaths(n.Content[i+1], p, set)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			setPaths(c, prefix+"[]", set)
		}
	}
}

// defaultText writes a filled-in value as it would be written in the file ("" for none).
func defaultText(v reflect.Value) string {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	switch x := v.Interface().(type) {
	case Date:
		if !x.IsZero() {
			return x.Format(time.DateOnly)
		}
		return ""
	case time.Duration:
		if x != 0 {
			return x.String()
		}
		return ""
	case Duration, ByteSize, Percent:
		if !v.IsZero() {
			return fmt.Sprint(x)
		}
		return ""
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Int, reflect.Int64, reflect.Int32:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64, reflect.Float32:
		if v.Float() != 0 {
			return strconv.FormatFloat(v.Float(), 'g', -1, 64)
		}
	case reflect.Bool:
		if v.Bool() {
			return "true"
		}
	}
	return ""
}

// typeWords says what a value of type t is, as a person writing the file reads it.
func typeWords(t reflect.Type) string {
	t = deref(t)
	switch t {
	case reflect.TypeFor[Date]():
		return "date (YYYY-MM-DD)"
	case reflect.TypeFor[Secret]():
		return "text (a secret)"
	case durationType, reflect.TypeFor[Duration]():
		return "duration (90s, 5m, 1h30m)"
	case reflect.TypeFor[ByteSize]():
		return "size (512MB, 1GiB)"
	case reflect.TypeFor[Percent]():
		return "percentage (50%)"
	case reflect.TypeFor[fieldmap.Entry]():
		return "column, or {sql: …}, {from: stream.column, via: …}, {value: …}"
	}
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "true or false"
	case reflect.Struct:
		return "mapping"
	case reflect.Slice:
		if deref(t.Elem()).Kind() == reflect.Struct {
			return "list of mappings"
		}
		return "list of " + typeWords(t.Elem())
	case reflect.Map:
		return "mapping of name → " + typeWords(t.Elem())
	}
	return t.Kind().String()
}
