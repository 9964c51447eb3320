package typing

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ledgerlake/ledgerlake/schemas"
)

// Column is one column of a stream's effective schema: declared in schemas/, or inferred from the data.
type Column struct {
	Name        string   `json:"name"`
	Path        []string `json:"path"` // API field names from the record root
	Type        string   `json:"type"` // DuckDB syntax; "NULL" while only nulls have been seen
	Declared    bool     `json:"declared,omitempty"`
	Description string   `json:"description,omitempty"`
	// ID is the column's field id, written into every Parquet file as the column's field_id so an
	// Iceberg reader resolves it without a name mapping. Assigned once, never renumbered or reused.
	ID int `json:"id,omitempty"`
	// ElementID is a LIST column's element field id; KeyID and ValueID a MAP column's key's and value's.
	ElementID int `json:"element_id,omitempty"`
	KeyID     int `json:"key_id,omitempty"`
	ValueID   int `json:"value_id,omitempty"`
	typ       schemas.Type
}

// nullType marks an inferred column that has only been null so far: it is not written until a value
// gives it a type, so an early all-null batch cannot pin a column to VARCHAR.
const nullType = "NULL"

// Change is a recorded schema change: a new column, or a type widened to fit new data.
type Change struct {
	Table  string `json:"table"`
	Column string `json:"column"`
	From   string `json:"from,omitempty"` // empty for a new column
	To     string `json:"to"`
	RunID  string `json:"run_id,omitempty"`
}

func (c Change) String() string {
	switch c.From {
	case "":
		return fmt.Sprintf("%s.%s: new column %s", c.Table, c.Column, c.To)
	case nullType:
		return fmt.Sprintf("%s.%s: typed %s (null in every earlier record)", c.Table, c.Column, c.To)
	}
	return fmt.Sprintf("%s.%s: widened %s → %s", c.Table, c.Column, c.From, c.To)
}

// Schema is the effective schema of one table: its declared columns (fixed types, but for a DECIMAL's
// digits, which widen to hold the API's values; a value that does not fit is rejected) followed by
// inferred ones (types widen to fit: BIGINT → DECIMAL → VARCHAR). Arrays of
// objects become child tables carrying the parent key.
type Schema struct {
	Table    string   `json:"table"`
	Key      []string `json:"key"`
	Columns  []Column `json:"columns"`
	Children []string `json:"children,omitempty"` // API paths (dot-joined) of arrays of objects
	Changes  []Change `json:"changes,omitempty"`  // every change ever made, oldest first
	// Evidence adds the lineage column _evidence_sha256: the stored response body each row came from.
	Evidence bool `json:"evidence,omitempty"`
	// Window adds the lineage columns _window_start and _window_end: the date window each row came from.
	Window bool `json:"window,omitempty"`
	// LineageIDs are the field ids of the lineage columns, by name.
	LineageIDs map[string]int `json:"lineage_ids,omitempty"`
	// LastID is the highest field id ever assigned: a new field takes the next one, so no id is reused.
	LastID int `json:"last_id,omitempty"`

	used     map[int]bool // field ids taken
	byPath   map[string]int
	names    map[string]bool
	maps     map[string]bool
	children map[string]bool
	pending  []Change                       // changes since the last TakeChanges
	links    *childLinks                    // ChildRecords' view of the schema (childLink)
	subs     map[string]map[string]*subPath // nested paths by parent key and field (sub)
}

// NewSchema starts a table's schema from its declared columns (may be nil) and the schema persisted by
// earlier runs (may be nil). mapPaths are dot-joined API paths of tenant-defined objects kept as
// MAP(VARCHAR, VARCHAR) rather than flattened.
func NewSchema(table string, key []string, declared *schemas.Table, persisted *Schema, mapPaths []string) (*Schema, error) {
	s := &Schema{Table: table, Key: key, byPath: map[string]int{}, names: map[string]bool{}, maps: map[string]bool{}, children: map[string]bool{}}
	for _, p := range mapPaths {
		s.maps[p] = true
	}
	if err := s.startIDs(persisted); err != nil {
		return nil, err
	}
	if declared != nil {
		for _, d := range declared.Columns {
			c := Column{Name: d.Name, Path: strings.Split(d.Path, "."), Type: schemas.MustType(d.Type).String(), Declared: true, Description: d.Description}
			persistedIDs(&c, persisted)
			keepWidened(&c, persisted)
			if err := s.add(c); err != nil {
				return nil, fmt.Errorf("declared schema of %s: %w", table, err)
			}
		}
	}
	if persisted != nil {
		for _, c := range persisted.Columns {
			if c.Declared {
				continue // declared columns come from schemas/, which may have changed
			}
			if _, ok := s.byPath[pathKey(c.Path)]; ok {
				continue // now declared
			}
			if s.names[c.Name] {
				c.Name = s.freeName(c.Name)
				c.ID, c.ElementID, c.KeyID, c.ValueID = 0, 0, 0, 0 // its ids stay with the name: a new column
			}
			if err := s.add(c); err != nil {
				return nil, fmt.Errorf("persisted schema of %s: %w", table, err)
			}
		}
		for _, p := range persisted.Children {
			s.children[p] = true
		}
		s.Changes = append(s.Changes, persisted.Changes...)
	}
	s.assignLineage(persisted)
	return s, nil
}

func pathKey(p []string) string { return strings.Join(p, "\x00") }

func (s *Schema) add(c Column) error {
	if c.Type != nullType {
		t, err := schemas.ParseType(c.Type)
		if err != nil {
			return err
		}
		c.typ = t
	}
	s.claim(&c)
	s.byPath[pathKey(c.Path)] = len(s.Columns)
	s.names[c.Name] = true
	s.Columns = append(s.Columns, c)
	return nil
}

// freeName resolves a name collision (ContractID and contract_id both give contract_id): the column
// that came first keeps the name, later ones get _2, _3 … Persisted schemas keep names stable across runs.
func (s *Schema) freeName(name string) string {
	for i := 2; ; i++ {
		if n := fmt.Sprintf("%s_%d", name, i); !s.names[n] {
			return n
		}
	}
}

// Observe widens the schema to fit a batch of records and reports whether anything changed. New
// fields are added in a deterministic order (sorted by path) so the same data gives the same names.
func (s *Schema) Observe(recs []Record) bool {
	seen := map[string]*observation{}
	for _, r := range recs {
		s.walk(r, nil, seen)
	}
	paths := make([]string, 0, len(seen))
	for k := range seen {
		paths = append(paths, k)
	}
	sort.Strings(paths)
	changed := false
	for _, k := range paths {
		o := seen[k]
		i, ok := s.byPath[k]
		from := ""
		if ok {
			from = s.Columns[i].Type // a column that was only null so far says so: its values came late
		} else {
			name := schemas.ColumnName(strings.Join(o.path, "."))
			if name == "" {
				name = "column"
			}
			if s.names[name] || isLineageColumn(name) {
				name = s.freeName(name)
			}
			_ = s.add(Column{Name: name, Path: o.path, Type: nullType})
			i = len(s.Columns) - 1
		}
		c := &s.Columns[i]
		if c.Declared {
			changed = s.widenDeclared(c, o) || changed
			continue
		}
		to := widen(c.Type, o.typ)
		if to != c.Type {
			if to != nullType {
				ch := Change{Table: s.Table, Column: c.Name, From: from, To: to}
				s.pending = append(s.pending, ch)
				changed = true
			}
			c.Type = to
			if to != nullType {
				c.typ = schemas.MustType(to)
				s.assign(c) // a list's element, a map's key and value: ids once they exist
			}
		}
	}
	return changed
}

// TakeChanges returns the changes made since the last call, stamped with runID, and records them.
func (s *Schema) TakeChanges(runID string) []Change {
	out := s.pending
	for i := range out {
		out[i].RunID = runID
	}
	s.Changes = append(s.Changes, out...)
	s.pending = nil
	return out
}

type observation struct {
	path []string
	typ  string
	// ints and scale are the most integer and fractional digits a declared DECIMAL column's values need.
	ints, scale int
}

// walk records the type of every field of r under parent (nil: the record itself). Declared paths are
// skipped (their types are fixed) but for the digits a declared DECIMAL's values need; child arrays and
// maps are noted.
func (s *Schema) walk(r Record, parent *subPath, seen map[string]*observation) {
	var under []string
	if parent != nil {
		under = parent.path
	}
	for k, v := range r {
		key := k
		var sp *subPath
		if parent != nil {
			sp = s.sub(parent, k)
			key = sp.key
		}
		_, isMap := v.(map[string]any)
		_, isArr := v.([]any)
		if i, ok := s.byPath[key]; ok {
			c := &s.Columns[i]
			if c.Declared {
				if isMap && c.typ.Kind != schemas.Map {
					s.walk(v.(map[string]any), s.sub(parent, k), seen) // undeclared fields inside a declared object still become columns
				} else {
					noteDeclared(seen, key, under, k, c.typ, v)
				}
				continue
			}
			if c.Type == "VARCHAR" && !isMap && !isArr && len(s.children) == 0 {
				continue // the widest type already: nothing this value can change (the hot path)
			}
		}
		if !isMap && !isArr && len(s.children) == 0 {
			note(seen, key, under, k, inferType(v)) // a scalar: its path is only built the first time
			continue
		}
		if sp == nil {
			sp = s.sub(nil, k)
		}
		switch x := v.(type) {
		case map[string]any:
			if s.maps[sp.dotted] {
				note(seen, key, under, k, "MAP(VARCHAR, VARCHAR)")
			} else if len(x) > 0 || s.declaresUnder(sp.path) {
				s.walk(x, sp, seen)
			}
			continue
		case []any:
			if isObjectArray(x) {
				if !s.children[sp.dotted] {
					s.children[sp.dotted] = true
					s.Children = append(s.Children, sp.dotted)
					sort.Strings(s.Children)
				}
				continue
			}
		}
		if s.children[sp.dotted] {
			continue
		}
		note(seen, key, under, k, inferType(v))
	}
}

// subPath is a nested field's path in the forms walk asks for, worked out once per schema: walk visits
// every nested field of every record of a batch it observes.
type subPath struct {
	path   []string // never modified: note and the columns copy it
	key    string   // pathKey(path)
	dotted string   // the path joined with "."
}

// sub returns the path of field k under parent (nil: the record itself).
func (s *Schema) sub(parent *subPath, k string) *subPath {
	var pk string
	if parent != nil {
		pk = parent.key
	}
	if s.subs == nil {
		s.subs = map[string]map[string]*subPath{}
	}
	fields := s.subs[pk]
	if fields == nil {
		fields = map[string]*subPath{}
		s.subs[pk] = fields
	}
	if sp := fields[k]; sp != nil {
		return sp
	}
	var sp *subPath
	if parent == nil {
		sp = &subPath{path: []string{k}, key: k, dotted: k}
	} else {
		sp = &subPath{path: append(append([]string(nil), parent.path...), k), key: parent.key + "\x00" + k, dotted: parent.dotted + "." + k}
	}
	fields[k] = sp
	return sp
}

func (s *Schema) declaresUnder(p []string) bool {
	prefix := pathKey(p) + "\x00"
	for k := range s.byPath {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// note widens what seen holds for key, the field k of the object at path.
func note(seen map[string]*observation, key string, path []string, k, typ string) {
	o := seen[key]
	if o == nil {
		seen[key] = &observation{path: append(append([]string(nil), path...), k), typ: typ}
		return
	}
	o.typ = widen(o.typ, typ)
}

func isObjectArray(a []any) bool {
	if len(a) == 0 {
		return false
	}
	for _, e := range a {
		if _, ok := e.(map[string]any); !ok {
			return false
		}
	}
	return true
}

// inferType is the narrowest type that holds v: BOOLEAN, BIGINT, DECIMAL(38,s) for other numbers
// (never DOUBLE: money must stay exact), DATE/TIMESTAMP/TIMESTAMPTZ for timestamps in any format of the
// specs, VARCHAR otherwise; arrays of scalars are lists; NULL for null and "".
func inferType(v any) string {
	switch x := v.(type) {
	case nil:
		return nullType
	case bool:
		return "BOOLEAN"
	case json.Number:
		return numberType(x.String())
	case string:
		if x == "" {
			return nullType
		}
		if _, k, ok := timestampKind(x); ok {
			return string(k)
		}
		return "VARCHAR"
	case []any:
		elem := nullType
		for _, e := range x {
			if _, isObj := e.(map[string]any); isObj {
				elem = "VARCHAR" // objects among scalars: kept as JSON text
				continue
			}
			if _, isArr := e.([]any); isArr {
				elem = "VARCHAR"
				continue
			}
			elem = widen(elem, inferType(e))
		}
		if elem == nullType {
			elem = "VARCHAR"
		}
		return elem + "[]"
	}
	return "VARCHAR"
}

// timestampKind reads s as a timestamp and names the type inference gives it: TIMESTAMPTZ when zoned,
// DATE for a bare date, TIMESTAMP otherwise.
func timestampKind(s string) (time.Time, schemas.Kind, bool) {
	ts, zoned, err := ParseTimestamp(s)
	switch {
	case err != nil:
		return ts, "", false
	case zoned:
		return ts, schemas.TimestampTZ, true
	case len(s) == 10 && ts.Hour() == 0:
		return ts, schemas.Date, true
	}
	return ts, schemas.Timestamp, true
}

// numberType types a JSON number literal.
func numberType(lit string) string {
	_, isInt, scale, ok := numberKind(lit)
	switch {
	case !ok:
		return "VARCHAR"
	case isInt:
		return "BIGINT"
	}
	return decimalTypes[scale]
}

// numberKind is how inference types a number literal: a BIGINT (n) when it has no point or exponent
// and fits 64 bits, else DECIMAL(38, scale) with scale ≥ 2, else nothing exact (ok false: VARCHAR).
func numberKind(lit string) (n int64, isInt bool, scale int, ok bool) {
	if mant, frac, plain := plainNumber(lit); plain {
		if frac < 0 {
			return mant, true, 0, true
		}
		return 0, false, max(frac, 2), true
	}
	if !strings.ContainsAny(lit, ".eE") {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return n, true, 0, true
		}
	}
	digits, exp, ok := decimalShape(lit)
	if !ok {
		return 0, false, 0, false
	}
	scale = max(0, -exp)
	// Trailing zeros after the point carry no value but keep the scale the API printed.
	intDigits := digits + exp
	if scale > 18 || intDigits+max(scale, 2) > 38 || exp > 18 {
		return 0, false, 0, false
	}
	return 0, false, max(scale, 2), true
}

// plainNumber reads the common literal shape, -?digits[.digits] with at most 18 digits, in one pass:
// its digits as an integer (mant) and how many follow the point (frac, -1 without a point). ok is false
// for any other text, which takes the general path. FuzzNumberType holds it to that path.
func plainNumber(lit string) (mant int64, frac int, ok bool) {
	i, neg := 0, false
	if len(lit) > 0 && lit[0] == '-' {
		i, neg = 1, true
	}
	frac, digits := -1, 0
	for ; i < len(lit); i++ {
		c := lit[i]
		switch {
		case c >= '0' && c <= '9':
			mant = mant*10 + int64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0 && digits > 0:
			frac = 0
		default:
			return 0, 0, false
		}
	}
	if digits == 0 || digits > 18 || frac == 0 {
		return 0, 0, false
	}
	if neg {
		mant = -mant
	}
	return mant, frac, true
}

// decimalTypes are the inferred decimal type names by scale (inference names one per number value).
var decimalTypes = func() (out [19]string) {
	for s := range out {
		out[s] = fmt.Sprintf("DECIMAL(38,%d)", s)
	}
	return out
}()

// decimalShape is splitDecimal without building the mantissa: the count of its significant digits
// (leading zeros dropped) and the exponent of its last digit. Type inference asks it of every number.
func decimalShape(s string) (digits, exp int, ok bool) {
	s = strings.TrimSpace(s)
	if e := strings.IndexAny(s, "eE"); e >= 0 {
		x, err := strconv.Atoi(s[e+1:])
		if err != nil || x > 100 || x < -100 {
			return 0, 0, false
		}
		exp, s = x, s[:e]
	}
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" {
		return 0, 0, false
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return 0, 0, false
			}
		}
	}
	if trimmed := strings.TrimLeft(intPart, "0"); trimmed != "" {
		digits = len(trimmed) + len(frac)
	} else {
		digits = len(strings.TrimLeft(frac, "0"))
	}
	return digits, exp - len(frac), true
}

// widen is the narrowest type holding values of both a and b. TIMESTAMP and TIMESTAMPTZ widen to
// VARCHAR (assumed; gsapi-notes.md only says both forms appear): an unzoned GSAPI value is on the
// tenant's clock, as its windows are, and no response states that clock's offset, so reading it as UTC
// would shift it silently; the text keeps both forms exactly.
func widen(a, b string) string {
	switch {
	case a == b:
		return a
	case a == nullType:
		return b
	case b == nullType:
		return a
	}
	ta, errA := schemas.ParseType(a)
	tb, errB := schemas.ParseType(b)
	if errA != nil || errB != nil {
		return "VARCHAR"
	}
	num := func(t schemas.Type) bool { return t.Kind == schemas.BigInt || t.Kind == schemas.Decimal }
	switch {
	case num(ta) && num(tb):
		s := max(ta.Scale, tb.Scale)
		if s == 0 {
			return "BIGINT"
		}
		if s < len(decimalTypes) {
			return decimalTypes[s] // widen runs for many values of a batch Observe reads
		}
		return fmt.Sprintf("DECIMAL(38,%d)", s)
	case (ta.Kind == schemas.Date && tb.Kind == schemas.Timestamp) || (tb.Kind == schemas.Date && ta.Kind == schemas.Timestamp):
		return "TIMESTAMP" // a bare date is midnight: nothing is lost
	case ta.Kind == schemas.List && tb.Kind == schemas.List:
		return widen(ta.Elem.String(), tb.Elem.String()) + "[]"
	}
	return "VARCHAR"
}

// Arrow is the Arrow schema of the columns that have a type, lineage columns last, each field (and a
// list's element, a map's key and value) carrying its field id.
func (s *Schema) Arrow() *arrow.Schema {
	var fields []arrow.Field
	for _, c := range s.Columns {
		if c.Type == nullType {
			continue
		}
		fields = append(fields, c.arrowField())
	}
	fields = append(fields,
		s.lineageField(RunIDColumn, arrow.BinaryTypes.String, false),
		s.lineageField(ExtractedAtColumn, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, false))
	if s.Evidence {
		fields = append(fields, s.lineageField(EvidenceColumn, arrow.BinaryTypes.String, true))
	}
	if s.Window {
		fields = append(fields, s.lineageField(WindowStartColumn, &arrow.TimestampType{Unit: arrow.Microsecond}, true),
			s.lineageField(WindowEndColumn, &arrow.TimestampType{Unit: arrow.Microsecond}, true))
	}
	return arrow.NewSchema(fields, nil)
}

// Child names the child table of an array path: signicat_invoices + lines → signicat_invoices__lines.
func (s *Schema) Child(path string) string { return s.Table + "__" + schemas.ColumnName(path) }

// keyPaths returns the API paths of the key columns.
func (s *Schema) keyPaths() [][]string {
	out := make([][]string, 0, len(s.Key))
	for _, k := range s.Key {
		for _, c := range s.Columns {
			if c.Name == k {
				out = append(out, c.Path)
			}
		}
	}
	return out
}

// ChildRecords takes the arrays of objects out of r as child records. Each child carries the parent's
// key as _parent_<key> columns and its 1-based _position, so child rows join back to their parent and
// keep their order; the underscore keeps them apart from any API field.
func (s *Schema) ChildRecords(r Record) map[string][]Record {
	if len(s.children) == 0 {
		return nil
	}
	link := s.childLink()
	var out map[string][]Record
	for dotted := range s.children {
		v, ok := lookup(r, link.paths[dotted])
		arr, isArr := v.([]any)
		if !ok || !isArr {
			continue
		}
		if out == nil {
			out = map[string][]Record{}
		}
		children := make([]Record, 0, len(arr))
		for i, e := range arr {
			el, ok := e.(map[string]any)
			if !ok {
				continue
			}
			child := make(Record, len(el)+len(s.Key)+1)
			for k, v := range el {
				child[k] = v
			}
			for j, kp := range link.keys {
				kv, _ := lookup(r, kp)
				child[link.parents[j]] = kv
			}
			child["_position"] = link.position(i + 1)
			children = append(children, child)
		}
		if len(children) > 0 {
			out[dotted] = children
		}
	}
	return out
}

// childLinks is what ChildRecords needs for every record, worked out once per schema.
type childLinks struct {
	paths     map[string][]string // each child array's API path, split
	keys      [][]string          // the key columns' API paths
	parents   []string            // _parent_<key> per key column
	positions []any               // json.Number "1", "2", … boxed once
}

// childLink returns the schema's child links, made again when a child array or a key column appears.
func (s *Schema) childLink() *childLinks {
	l := s.links
	if l != nil && len(l.paths) == len(s.children) && len(l.keys) == len(s.Key) {
		return l
	}
	l = &childLinks{paths: make(map[string][]string, len(s.children)), keys: s.keyPaths()}
	for dotted := range s.children {
		l.paths[dotted] = strings.Split(dotted, ".")
	}
	for j := range l.keys {
		l.parents = append(l.parents, "_parent_"+s.Key[j])
	}
	s.links = l
	return l
}

// position is n (1-based) as the json.Number a decoded record would hold.
func (l *childLinks) position(n int) any {
	for len(l.positions) < n {
		l.positions = append(l.positions, json.Number(strconv.Itoa(len(l.positions)+1)))
	}
	return l.positions[n-1]
}

// ChildKey is the key of a child table: the parent's key columns and _position.
func (s *Schema) ChildKey() []string {
	out := make([]string, 0, len(s.Key)+1)
	for _, k := range s.Key {
		out = append(out, "_parent_"+k)
	}
	return append(out, "_position")
}
