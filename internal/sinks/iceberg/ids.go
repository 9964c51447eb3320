package iceberg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// The lake's files carry Iceberg field ids (typing gives every column one, kept across runs), and an
// Iceberg reader resolves a file's columns by them, not by name. So a table's schema holds the files'
// ids: create commits them over the fresh ids CreateTable assigns, and evolve adds a new column with
// the id its files carry (iceberg-go's UnionByName would number it after the table's last). A table
// whose ids are not its files' (made before the files carried ids) is rebuilt once, as a type change
// Iceberg cannot promote is. Files written before ids existed resolve through the name mapping, which
// every schema commit keeps in step.

// errIDsDiffer means a run's files number a column differently from the table.
var errIDsDiffer = errors.New("the files' field ids are not the table's")

// fieldIDKey is the Arrow field metadata key of a Parquet column's field id.
const fieldIDKey = "PARQUET:field_id"

// icebergSchema is the Iceberg schema of the union of a run's files: with their field ids when they
// carry them (ids true; a column only id-less files hold gets an id above every one the files use),
// else with fresh ids.
func icebergSchema(sc *arrow.Schema) (*iceberggo.Schema, bool, error) {
	fresh, err := table.ArrowSchemaToIcebergWithFreshIDs(sc, false)
	if err != nil {
		return nil, false, err
	}
	var with []arrow.Field
	for _, f := range sc.Fields() {
		if hasFieldIDs(f) {
			with = append(with, f)
		}
	}
	if len(with) == 0 {
		return fresh, false, nil
	}
	known, err := table.ArrowSchemaToIceberg(arrow.NewSchema(with, nil), false, nil)
	if err != nil {
		return nil, false, err
	}
	next := known.HighestFieldID()
	fields := make([]iceberggo.NestedField, 0, sc.NumFields())
	for _, f := range fresh.Fields() {
		if k, ok := known.FindFieldByName(f.Name); ok {
			fields = append(fields, k)
			continue
		}
		fields = append(fields, renumber(f, func() int { next++; return next }))
	}
	return iceberggo.NewSchema(0, fields...), true, nil
}

// hasFieldIDs reports whether f and every field nested in it (a list's element, a map's key and
// value) carry a field id. A Parquet reader gives a column without one the id -1.
func hasFieldIDs(f arrow.Field) bool {
	if v, ok := f.Metadata.GetValue(fieldIDKey); !ok {
		return false
	} else if id, err := strconv.Atoi(v); err != nil || id <= 0 {
		return false
	}
	switch t := f.Type.(type) {
	case arrow.ListLikeType:
		if m, ok := t.(*arrow.MapType); ok {
			return hasFieldIDs(m.KeyField()) && hasFieldIDs(m.ItemField())
		}
		return hasFieldIDs(t.ElemField())
	case *arrow.StructType:
		return !slices.ContainsFunc(t.Fields(), func(c arrow.Field) bool { return !hasFieldIDs(c) })
	}
	return true
}

// renumber gives f and the fields nested in it ids from next.
func renumber(f iceberggo.NestedField, next func() int) iceberggo.NestedField {
	f.ID = next()
	switch t := f.Type.(type) {
	case *iceberggo.ListType:
		l := *t
		l.ElementID = next()
		f.Type = &l
	case *iceberggo.MapType:
		m := *t
		m.KeyID, m.ValueID = next(), next()
		f.Type = &m
	case *iceberggo.StructType:
		s := &iceberggo.StructType{FieldList: make([]iceberggo.NestedField, len(t.FieldList))}
		for i, c := range t.FieldList {
			s.FieldList[i] = renumber(c, next)
		}
		f.Type = s
	}
	return f
}

// fieldIDs are f's id and those nested in it, in order.
func fieldIDs(f iceberggo.NestedField) []int {
	out := []int{f.ID}
	switch t := f.Type.(type) {
	case *iceberggo.ListType:
		out = append(out, t.ElementID)
	case *iceberggo.MapType:
		out = append(out, t.KeyID, t.ValueID)
	case *iceberggo.StructType:
		for _, c := range t.FieldList {
			out = append(out, fieldIDs(c)...)
		}
	}
	return out
}

// merge is the table's schema holding a run's files numbered by their field ids: the table's columns
// with types promoted where Iceberg allows it (a narrower type in the files stays the table's, the
// files are conformed), then the files' new columns with their own ids, optional as added columns must
// be. A column numbered otherwise than in the table, or a new column on an id the table uses, fails
// with errIDsDiffer; a type Iceberg cannot promote to with errCannotPromote.
func merge(current, run *iceberggo.Schema) (*iceberggo.Schema, error) {
	fields := make([]iceberggo.NestedField, 0, len(current.Fields()))
	for _, f := range current.Fields() {
		r, ok := run.FindFieldByName(f.Name)
		if !ok {
			fields = append(fields, f)
			continue
		}
		if r.ID != f.ID || (sameType(r.Type, f.Type) && !slices.Equal(fieldIDs(r), fieldIDs(f))) {
			return nil, fmt.Errorf("%w: column %s is field %v in the table, %v in the files", errIDsDiffer, f.Name, fieldIDs(f), fieldIDs(r))
		}
		switch {
		case sameType(f.Type, r.Type):
		case promotable(f.Type, r.Type):
			f.Type = r.Type
		case castable(r.Type, f.Type):
		default:
			return nil, fmt.Errorf("%w: column %s is %s in the table, %s in the run", errCannotPromote, f.Name, f.Type, r.Type)
		}
		fields = append(fields, f)
	}
	for _, r := range run.Fields() {
		if _, ok := current.FindFieldByName(r.Name); ok {
			continue
		}
		for _, id := range fieldIDs(r) {
			if used, ok := current.FindFieldByID(id); ok {
				return nil, fmt.Errorf("%w: the new column %s has field id %d, the table's %s", errIDsDiffer, r.Name, id, used.Name)
			}
		}
		r.Required = false
		fields = append(fields, r)
	}
	return iceberggo.NewSchema(current.ID+1, fields...), nil
}

// evolveByID brings the table's schema to hold a run's files that carry field ids (see merge),
// committed before the run's files are added: a crash between leaves a schema that already holds
// them, which the retry finds unchanged.
func (c *Catalog) evolveByID(ctx context.Context, tbl *table.Table, name string, run *iceberggo.Schema) (*table.Table, error) {
	next, err := merge(tbl.Schema(), run)
	if err != nil {
		return nil, err
	}
	if next.Equals(tbl.Schema()) {
		return tbl, nil
	}
	return c.setSchema(ctx, tbl, name, next)
}

// setSchema commits sc as the table's current schema, ids as they are, with the name mapping of its
// columns (files written before ids existed resolve by it). The commit is conditional on the schema
// it replaces, as every Iceberg commit is.
func (c *Catalog) setSchema(ctx context.Context, tbl *table.Table, name string, sc *iceberggo.Schema) (*table.Table, error) {
	mapping, err := json.Marshal(sc.NameMapping())
	if err != nil {
		return nil, err
	}
	reqs := []table.Requirement{table.AssertTableUUID(tbl.Metadata().TableUUID()), table.AssertCurrentSchemaID(tbl.Schema().ID)}
	updates := []table.Update{table.NewAddSchemaUpdate(sc), table.NewSetCurrentSchemaUpdate(-1),
		table.NewSetPropertiesUpdate(iceberggo.Properties{table.DefaultNameMappingKey: string(mapping)})}
	if _, _, err := c.cat.CommitTable(ctx, c.ident(name), reqs, updates); err != nil {
		return nil, fmt.Errorf("committing the schema with the files' field ids: %w", err)
	}
	return c.Table(ctx, name)
}
