package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lithammer/fuzzysearch/fuzzy"
	"gopkg.in/yaml.v3"
)

// The config's keys are its types' yaml tags: the checks below and the reference (reference.go) both
// walk the types, so a key added to a struct is checked and documented without more code.

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// yamlKey is a struct field's key in the file ("" for a field the file cannot set).
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// deref is t without its pointers.
func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// fieldsOf lists struct type t's keys and fields, in declaration order; an inline struct's keys
// (`yaml:",inline"`, as Limits) are t's own.
func fieldsOf(t reflect.Type) (keys []string, fields map[string]reflect.StructField) {
	fields = map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if _, opts, _ := strings.Cut(f.Tag.Get("yaml"), ","); opts == "inline" && deref(f.Type).Kind() == reflect.Struct {
			ks, fs := fieldsOf(deref(f.Type))
			for _, k := range ks {
				inner := fs[k]
				inner.Index = append(slices.Clone(f.Index), inner.Index...)
				keys, fields[k] = append(keys, k), inner
			}
			continue
		}
		if k := yamlKey(f); k != "" {
			keys = append(keys, k)
			fields[k] = f
		}
	}
	return keys, fields
}

// secretPaths are the keys of credentials (tagged secret:"true"): a command that only reads never
// resolves them.
var secretPaths = func() map[string]bool {
	out := map[string]bool{}
	walkKeys(reflect.TypeFor[Config](), "", func(path string, f reflect.StructField) {
		if f.Tag.Get("secret") == "true" {
			out[path] = true
		}
	})
	return out
}()

// walkKeys calls fn with the path and field of every key under struct type t, depth first in
// declaration order; a list of mappings' keys are under "name[]".
func walkKeys(t reflect.Type, prefix string, fn func(path string, f reflect.StructField)) {
	keys, fields := fieldsOf(deref(t))
	for _, k := range keys {
		f := fields[k]
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		fn(path, f)
		ft := deref(f.Type)
		switch {
		case ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType):
			walkKeys(ft, path, fn)
		case ft.Kind() == reflect.Slice && deref(ft.Elem()).Kind() == reflect.Struct:
			walkKeys(ft.Elem(), path+"[]", fn)
		}
	}
}

// checkNode checks n against the type t it is decoded into, at path: every key must be one of the
// type's (an unknown one is named with the nearest valid key), mappings and lists must be where they
// belong, and with scalars, each value must be of its kind. Values still holding a ${VAR} are left to
// the check after expansion; from names the variable each expanded value came from, so that a
// message never prints a value that came from the environment.
func checkNode(n *yaml.Node, t reflect.Type, path []string, scalars bool, from map[*yaml.Node]string) error {
	t = deref(t)
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		n.Tag = "!!null" // explicit, so that the expanded file decodes it as absent too
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // a type that reads itself: Date says what is wrong with its value
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		if n.Kind != yaml.MappingNode {
			return kindError(n, path, "a mapping (key: value lines)", from)
		}
		keys, fields := []string(nil), map[string]reflect.StructField(nil)
		if t.Kind() == reflect.Struct {
			keys, fields = fieldsOf(t)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			elem := t
			if t.Kind() == reflect.Map {
				elem = t.Elem()
			} else if f, ok := fields[k.Value]; ok {
				elem = f.Type
			} else {
				return unknownKey(k, path, keys)
			}
			if err := checkNode(v, elem, append(slices.Clip(path), k.Value), scalars, from); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return kindError(n, path, "a list ([a, b], or one \"- item\" line each)", from)
		}
		for i, c := range n.Content {
			if err := checkNode(c, t.Elem(), append(slices.Clip(path), fmt.Sprintf("[%d]", i)), scalars, from); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return kindError(n, path, "a single value", from)
		}
		if scalars && !envRef.MatchString(n.Value) {
			if want := scalarKind(t, n); want != "" {
				return kindError(n, path, want, from)
			}
		}
	}
	return nil
}

// scalarKind is what a value of type t must be when n is not one ("" when it is).
func scalarKind(t reflect.Type, n *yaml.Node) string {
	tag := n.ShortTag()
	switch {
	case t == durationType:
		if _, err := time.ParseDuration(n.Value); err != nil {
			return "a duration such as 90s, 5m or 1h30m"
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		if tag != "!!int" {
			return "a whole number"
		}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		if tag != "!!int" && tag != "!!float" {
			return "a number"
		}
	case t.Kind() == reflect.Bool:
		if tag != "!!bool" {
			return "true or false"
		}
	}
	return ""
}

// kindError says that the value at path is not what it must be, without printing a value that came
// from the environment.
func kindError(n *yaml.Node, path []string, want string, from map[*yaml.Node]string) error {
	where := joinPath(path)
	if where == "" {
		where = "the file"
	}
	got := fmt.Sprintf("%q", n.Value)
	switch {
	case from[n] != "":
		got = "the value of ${" + from[n] + "}"
	case n.Kind == yaml.MappingNode:
		got = "a mapping"
	case n.Kind == yaml.SequenceNode:
		got = "a list"
	}
	return &Error{Msg: fmt.Sprintf("line %d: %s: %s is not %s", n.Line, where, got, want)}
}

// unknownKey names a key that is not one of keys, with the nearest valid one, or where the key
// belongs if it is valid elsewhere, or else the valid keys.
func unknownKey(k *yaml.Node, path []string, keys []string) error {
	where := "at the top level"
	if len(path) > 0 {
		where = "under " + joinPath(path)
	}
	msg := fmt.Sprintf("line %d: unknown key %q %s", k.Line, k.Value, where)
	if near := nearest(k.Value, keys); near != "" {
		return &Error{Msg: fmt.Sprintf("%s — did you mean %q?", msg, near)}
	}
	var elsewhere []string
	walkKeys(reflect.TypeFor[Config](), "", func(p string, _ reflect.StructField) {
		if p == k.Value || strings.HasSuffix(p, "."+k.Value) {
			elsewhere = append(elsewhere, strings.TrimSuffix(strings.TrimSuffix(p, k.Value), "."))
		}
	})
	if len(elsewhere) > 0 {
		for i, e := range elsewhere {
			if e == "" {
				elsewhere[i] = "the top level"
			}
		}
		return &Error{Msg: fmt.Sprintf("%s — it belongs under %s", msg, strings.Join(elsewhere, " or "))}
	}
	return &Error{Msg: fmt.Sprintf("%s; the keys here are %s (extract config lists them all)", msg, strings.Join(keys, ", "))}
}

// nearest is the key of keys closest to name in edits, if it is close enough to be a typo of it.
func nearest(name string, keys []string) string {
	best, dist := "", 0
	for _, k := range keys {
		d := fuzzy.LevenshteinDistance(strings.ToLower(name), k)
		if best == "" || d < dist {
			best, dist = k, d
		}
	}
	if best == "" || dist > max(2, len(name)/3) {
		return ""
	}
	return best
}

// joinPath writes a key's path as the messages name it: sources.gsapi.datatables[0].key.
func joinPath(path []string) string {
	var b strings.Builder
	for i, p := range path {
		if i > 0 && !strings.HasPrefix(p, "[") {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// goTypes are the Go names a decoding error may carry ("cannot unmarshal !!map into config.Date").
var goTypes = regexp.MustCompile(` (into|in type) [\w.*\[\]]+`)

// decodeError is a YAML decoding error in the file's terms: its Go type names taken out.
func decodeError(err error) error {
	return &Error{Msg: goTypes.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")}
}
