package schemas

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is a column's logical type, named as DuckDB names it.
type Kind string

// The column kinds a schema may declare.
const (
	Varchar     Kind = "VARCHAR"
	Boolean     Kind = "BOOLEAN"
	BigInt      Kind = "BIGINT"
	Double      Kind = "DOUBLE"
	Decimal     Kind = "DECIMAL"
	Date        Kind = "DATE"
	Timestamp   Kind = "TIMESTAMP"   // wall-clock time as the API printed it, no zone
	TimestampTZ Kind = "TIMESTAMPTZ" // an instant; the API gave a zone or offset
	List        Kind = "LIST"        // written VARCHAR[] etc.
	Map         Kind = "MAP"         // MAP(VARCHAR, VARCHAR): tenant-defined key/value objects
)

// Type is a parsed column type.
type Type struct {
	Kind             Kind
	Precision, Scale int   // DECIMAL only
	Elem             *Type // LIST only
}

// String renders the type in DuckDB syntax.
func (t Type) String() string {
	switch t.Kind {
	case Decimal:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case List:
		return t.Elem.String() + "[]"
	case Map:
		return "MAP(VARCHAR, VARCHAR)"
	}
	return string(t.Kind)
}

// ParseType reads a DuckDB-style type: VARCHAR, BOOLEAN, BIGINT, DOUBLE, DECIMAL(p,s), DATE, TIMESTAMP,
// TIMESTAMPTZ, T[] for a list, MAP(VARCHAR, VARCHAR).
func ParseType(s string) (Type, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if elem, ok := strings.CutSuffix(s, "[]"); ok {
		e, err := ParseType(elem)
		if err != nil {
			return Type{}, err
		}
		if e.Kind == List || e.Kind == Map {
			return Type{}, fmt.Errorf("type %q: nested lists and maps are child streams, not columns", s)
		}
		return Type{Kind: List, Elem: &e}, nil
	}
	if strings.ReplaceAll(s, " ", "") == "MAP(VARCHAR,VARCHAR)" {
		return Type{Kind: Map}, nil
	}
	if args, ok := strings.CutPrefix(s, "DECIMAL("); ok {
		p, sc, ok := strings.Cut(strings.TrimSuffix(args, ")"), ",")
		prec, err1 := strconv.Atoi(strings.TrimSpace(p))
		scale, err2 := strconv.Atoi(strings.TrimSpace(sc))
		if !ok || err1 != nil || err2 != nil || prec < 1 || prec > 38 || scale < 0 || scale > prec {
			return Type{}, fmt.Errorf("type %q: want DECIMAL(precision 1..38, scale 0..precision)", s)
		}
		return Type{Kind: Decimal, Precision: prec, Scale: scale}, nil
	}
	switch k := Kind(s); k {
	case Varchar, Boolean, BigInt, Double, Date, Timestamp, TimestampTZ:
		return Type{Kind: k}, nil
	}
	return Type{}, fmt.Errorf("unknown type %q (VARCHAR, BOOLEAN, BIGINT, DOUBLE, DECIMAL(p,s), DATE, TIMESTAMP, TIMESTAMPTZ, T[], MAP(VARCHAR, VARCHAR))", s)
}

// MustType parses a type known to be valid (schemas are validated when loaded).
func MustType(s string) Type {
	t, err := ParseType(s)
	if err != nil {
		panic(err)
	}
	return t
}
