package fieldmap

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Entry says where one model field comes from in a tenant's table. Exactly one form is set:
//
//	net_amount: total_net                                          a column of the table
//	net_amount: {sql: "amounts__excl_vat + coalesce(rounding, 0)"}  one expression over its columns
//	currency: {from: datasync_invoices.currency, via: iheader_id}  the field of the record's parent
//	currency: {value: EUR}                                         a constant
//
// A from entry joins the parent on the via column both tables have, or on "<this table's column> =
// <the parent's column>" where their names differ.
type Entry struct {
	Column string `yaml:"column,omitempty"`
	SQL    string `yaml:"sql,omitempty"`
	From   string `yaml:"from,omitempty"`
	Via    string `yaml:"via,omitempty"`
	Value  string `yaml:"value,omitempty"`
}

// Entry kinds, as Kind names them.
const (
	KindColumn = "column"
	KindSQL    = "sql"
	KindFrom   = "from"
	KindValue  = "value"
)

// Column is the entry that reads column col.
func Column(col string) Entry { return Entry{Column: col} }

// Kind is the entry's form: KindColumn, KindSQL, KindFrom or KindValue ("" when none is set).
func (e Entry) Kind() string {
	switch {
	case e.Column != "":
		return KindColumn
	case e.SQL != "":
		return KindSQL
	case e.From != "":
		return KindFrom
	case e.Value != "":
		return KindValue
	}
	return ""
}

// UnmarshalYAML reads a column name, or a mapping of the entry's keys; unknown keys are refused as
// anywhere in a pipeline file. Which combinations are valid is checked by NewMapping, which names
// the config key.
func (e *Entry) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil
		}
		*e = Entry{Column: n.Value}
		return nil
	case yaml.MappingNode:
		*e = Entry{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: %s of a fields entry must be text", v.Line, k.Value)
			}
			dst := map[string]*string{"column": &e.Column, "sql": &e.SQL, "from": &e.From, "via": &e.Via, "value": &e.Value}[k.Value]
			if dst == nil {
				return fmt.Errorf("line %d: field %s not found in a fields entry (it takes a column name, or one of sql, from with via, value)", k.Line, k.Value)
			}
			*dst = v.Value
		}
		return nil
	}
	return fmt.Errorf("line %d: a fields entry is a column name or {sql: …}, {from: …, via: …}, {value: …}", n.Line)
}

// MarshalYAML writes a column as its name and any other form as a flow mapping, as a person writes it.
func (e Entry) MarshalYAML() (any, error) { return e.Node(), nil }

// Node is the entry as a YAML node: a plain scalar for a column, else a flow mapping.
func (e Entry) Node() *yaml.Node {
	if e.Kind() == KindColumn {
		return &yaml.Node{Kind: yaml.ScalarNode, Value: e.Column}
	}
	n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	add := func(k, v string, style yaml.Style) {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, &yaml.Node{Kind: yaml.ScalarNode, Value: v, Style: style})
	}
	switch e.Kind() {
	case KindSQL:
		add("sql", e.SQL, yaml.DoubleQuotedStyle)
	case KindFrom:
		add("from", e.From, 0)
		add("via", e.Via, 0)
	case KindValue:
		add("value", e.Value, 0)
	}
	return n
}

// String is the entry as a pipeline file writes it.
func (e Entry) String() string {
	switch e.Kind() {
	case KindColumn:
		return e.Column
	case KindSQL:
		return fmt.Sprintf("{sql: %q}", e.SQL)
	case KindFrom:
		return fmt.Sprintf("{from: %s, via: %s}", e.From, e.Via)
	case KindValue:
		return fmt.Sprintf("{value: %s}", e.Value)
	}
	return "{}"
}

// check refuses an entry that is not exactly one well-formed form.
func (e Entry) check() error {
	set := 0
	for _, v := range []string{e.Column, e.SQL, e.From, e.Value} {
		if strings.TrimSpace(v) != "" {
			set++
		}
	}
	switch {
	case set == 0 && e.Via != "":
		return fmt.Errorf("via needs from: the parent's field, as {from: <stream>.<column>, via: <column>}")
	case set == 0:
		return fmt.Errorf("name the column that holds it, or give {sql: …}, {from: …, via: …} or {value: …}")
	case set > 1:
		return fmt.Errorf("%s sets more than one of column, sql, from and value: give one", e)
	case e.Via != "" && e.From == "":
		return fmt.Errorf("via goes with from: %s", e)
	case e.SQL != "":
		if err := CheckExpression(e.SQL); err != nil {
			return fmt.Errorf("sql %q %w", e.SQL, err)
		}
	case e.From != "":
		if _, _, ok := e.parent(); !ok {
			return fmt.Errorf("from %q: name the parent's field as <stream>.<column>, e.g. datasync_invoices.currency", e.From)
		}
		if _, _, ok := e.via(); !ok {
			return fmt.Errorf("from %s needs via: the column that links the record to its parent, e.g. via: iheader_id (or via: <this table's column> = <the parent's>)", e.From)
		}
	}
	return nil
}

// parent splits From into the parent stream and its column.
func (e Entry) parent() (stream, column string, ok bool) {
	stream, column, ok = strings.Cut(e.From, ".")
	stream, column = strings.TrimSpace(stream), strings.TrimSpace(column)
	return stream, column, ok && stream != "" && column != ""
}

// via splits Via into this table's join column and the parent's.
func (e Entry) via() (own, parent string, ok bool) {
	own, parent, two := strings.Cut(e.Via, "=")
	own, parent = strings.TrimSpace(own), strings.TrimSpace(parent)
	if !two {
		parent = own
	}
	return own, parent, own != "" && parent != "" && !strings.ContainsAny(own+parent, " \t\"'")
}

// Link is what a from entry reads: the parent table (source_stream) and its column, and the columns
// joining them.
type Link struct{ Parent, Column, Own, ParentKey string }

// Link is the parent a from entry of source reads; ok is false for other forms.
func (e Entry) Link(source string) (Link, bool) {
	stream, col, ok1 := e.parent()
	own, pk, ok2 := e.via()
	if e.Kind() != KindFrom || !ok1 || !ok2 {
		return Link{}, false
	}
	return Link{Parent: source + "_" + stream, Column: col, Own: own, ParentKey: pk}, true
}

var number = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// Expr is the entry as SQL in a query over table (named in its FROM without an alias): a quoted
// column, the expression in parentheses, a literal (a decimal number stays a number), or a subquery
// reading the parent's field — which fails, naming key, when the parent rows sharing the link
// disagree, instead of picking one.
func (e Entry) Expr(table, key string) string {
	switch e.Kind() {
	case KindColumn:
		return quoteIdent(e.Column)
	case KindSQL:
		return "(" + e.SQL + ")"
	case KindValue:
		if number.MatchString(e.Value) {
			return e.Value
		}
		return quoteString(e.Value)
	case KindFrom:
		source, _, _ := strings.Cut(table, "_")
		l, _ := e.Link(source)
		p, own := "_parent."+quoteIdent(l.Column), quoteIdent(table)+"."+quoteIdent(l.Own)
		msg := fmt.Sprintf("%s: the rows of %s whose %s is ", key, l.Parent, l.ParentKey)
		return fmt.Sprintf("(SELECT CASE WHEN count(DISTINCT %[1]s) > 1 THEN error(%[2]s || %[3]s::VARCHAR || %[4]s) ELSE any_value(%[1]s) END FROM %[5]s _parent WHERE _parent.%[6]s::VARCHAR = %[3]s::VARCHAR)",
			p, quoteString(msg), own, quoteString(" disagree on "+l.Column), quoteIdent(l.Parent), quoteIdent(l.ParentKey))
	}
	return "NULL"
}

func quoteIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// sqlStatement are the words that start a query or statement: an expression holding one would read
// another table (a parent's field is a from entry) or do something else entirely.
var sqlStatement = map[string]bool{"select": true, "with": true, "insert": true, "update": true, "delete": true,
	"create": true, "drop": true, "alter": true, "attach": true, "detach": true, "copy": true, "pragma": true,
	"install": true, "load": true, "set": true, "call": true, "export": true, "import": true, "values": true}

// CheckExpression refuses SQL that is not a single expression the models can wrap in parentheses:
// a list, a statement separator, a comment (it would swallow the model's next line), unbalanced
// parentheses or quotes, or a query (a subquery reads another table: use a from entry). Only the
// text is read here; the warehouse binds the expression against the table's columns before a model
// uses it.
func CheckExpression(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("is empty")
	}
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			// E'…' strings take backslash escapes; others double the quote.
			escapes := c == '\'' && i > 0 && (s[i-1] == 'e' || s[i-1] == 'E') && (i == 1 || !isWord(s[i-2]))
			end := closing(s, i, escapes)
			if end < 0 {
				return fmt.Errorf("has an unclosed %c", c)
			}
			i = end
		case c == ';':
			return fmt.Errorf("holds a ';': give one expression, not statements")
		case c == '-' && i+1 < len(s) && s[i+1] == '-', c == '/' && i+1 < len(s) && s[i+1] == '*':
			return fmt.Errorf("holds a comment: leave it out (it would swallow the rest of the model's line)")
		case c == '(':
			depth++
		case c == ')':
			if depth--; depth < 0 {
				return fmt.Errorf("closes a parenthesis it did not open")
			}
		case c == ',' && depth == 0:
			return fmt.Errorf("is a list (a ',' outside parentheses): give one expression")
		case isWord(c) && (i == 0 || !isWord(s[i-1])):
			j := i
			for j < len(s) && isWord(s[j]) {
				j++
			}
			switch w := strings.ToLower(s[i:j]); {
			case sqlStatement[w]:
				return fmt.Errorf("holds %s: give an expression over the table's own columns (a parent record's field is {from: <stream>.<column>, via: <column>})", strings.ToUpper(w))
			case w == "unnest":
				return fmt.Errorf("holds unnest, which makes rows: a field holds one value per row")
			}
			i = j - 1
		}
	}
	if depth > 0 {
		return fmt.Errorf("leaves %d parenthesis(es) open", depth)
	}
	return nil
}

// closing is the index of the quote that closes the one at s[open], or -1.
func closing(s string, open int, escapes bool) int {
	q := s[open]
	for i := open + 1; i < len(s); i++ {
		switch {
		case escapes && s[i] == '\\':
			i++
		case s[i] == q && i+1 < len(s) && s[i+1] == q:
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

func isWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
