package config

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// MergeFields writes fields (stream → model field → entry) into the pipeline file raw under
// sources.<source>.fields and returns the file. It edits the YAML's node tree, not a struct, so
// everything else stays: comments, key order, ${VAR} references; the entries it names replace the
// file's, the others are kept. Lines it did not change keep their layout (alignment, blank lines).
// notes, where given (stream → field → text), become the entry's line comment.
func MergeFields(raw []byte, source string, fields map[string]map[string]fieldmap.Entry, notes map[string]map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, &Error{Msg: "the pipeline file is not a YAML mapping"}
	}
	src := child(child(doc.Content[0], "sources", false), source, false)
	if src == nil || src.Kind != yaml.MappingNode {
		return nil, &Error{Msg: fmt.Sprintf("the pipeline file has no sources.%s section for the fields to go in", source)}
	}
	block := child(src, "fields", true)
	for _, ref := range fieldmap.Order {
		stream, ok := strings.CutPrefix(ref.Table, source+"_")
		e, has := fields[stream][ref.Field]
		if !ok || !has {
			continue
		}
		m := child(block, stream, true)
		m.Style = 0 // block style: a flow mapping of a dozen entries would be one unreadable line
		v := e.Node()
		v.LineComment = notes[stream][ref.Field]
		set(m, ref.Field, v)
	}
	block.Style = 0
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(indentOf(raw))
	if err := enc.Encode(&doc); err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	if err := enc.Close(); err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	return []byte(keepLayout(string(raw), b.String())), nil
}

// child is key's value in mapping m; with create, an empty block mapping added at m's end when absent.
func child(m *yaml.Node, key string, create bool) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			if v := m.Content[i+1]; v.Kind == yaml.MappingNode || !create {
				return v
			}
			m.Content[i+1] = &yaml.Node{Kind: yaml.MappingNode} // fields: (empty) or a scalar becomes a mapping
			return m.Content[i+1]
		}
	}
	if !create {
		return nil
	}
	v := &yaml.Node{Kind: yaml.MappingNode}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
	return v
}

// set puts v under key in mapping m, in place of the old value (keeping its comments unless v has
// its own) or at the end.
func set(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			old := m.Content[i+1]
			if v.LineComment == "" {
				v.LineComment = old.LineComment
			}
			v.HeadComment, v.FootComment = old.HeadComment, old.FootComment
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
}

var indented = regexp.MustCompile(`(?m)^( +)[^ #-]`)

// indentOf is the file's indentation step: its least indentation of a key (2 when it has none).
func indentOf(raw []byte) int {
	step := 0
	for _, m := range indented.FindAllSubmatch(raw, -1) {
		if n := len(m[1]); step == 0 || n < step {
			step = n
		}
	}
	return min(max(step, 2), 8)
}

var beforeComment = regexp.MustCompile(`\s+#`)

// keepLayout returns encoded with each line that the original has too (the same but for spaces
// before a comment) in the original's form, and the original's blank lines kept where they were: the
// encoder normalises both, and a user's file should change only where the fields did.
func keepLayout(original, encoded string) string {
	a, b := strings.Split(strings.TrimRight(original, "\n"), "\n"), strings.Split(strings.TrimRight(encoded, "\n"), "\n")
	norm := func(s string) string { return beforeComment.ReplaceAllString(strings.TrimRight(s, " \t"), " #") }
	// Longest common subsequence of the normalised lines.
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if norm(a[i]) == norm(b[j]) {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && norm(a[i]) == norm(b[j]):
			out = append(out, a[i])
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			if strings.TrimSpace(a[i]) == "" {
				out = append(out, a[i]) // a blank line the encoder dropped
			}
			i++
		default:
			out = append(out, b[j])
			j++
		}
	}
	return strings.Join(out, "\n") + "\n"
}
