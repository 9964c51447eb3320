package iceberg

import (
	"errors"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	iceberggo "github.com/apache/iceberg-go"
)

func withID(f arrow.Field, id int) arrow.Field {
	f.Metadata = arrow.NewMetadata([]string{fieldIDKey}, []string{strconv.Itoa(id)})
	return f
}

// The union of a run's files numbered by their ids keeps them; a column only files without ids hold
// (a reader gives it id -1) gets ids above every one the files use, nested ones too; files without
// any id get fresh ids (ids false: the table then resolves them by name).
func TestIcebergSchemaTakesTheFilesIDs(t *testing.T) {
	tags := withID(arrow.Field{Name: "tags", Type: arrow.ListOfField(withID(arrow.Field{Name: "item", Type: arrow.BinaryTypes.String, Nullable: true}, 12)), Nullable: true}, 11)
	oldList := withID(arrow.Field{Name: "old", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true}, -1)
	sc, ids, err := icebergSchema(arrow.NewSchema([]arrow.Field{
		withID(arrow.Field{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, 7), tags, oldList}, nil))
	if err != nil || !ids {
		t.Fatalf("%v %v", ids, err)
	}
	want := map[string]int{"id": 7, "tags": 11, "tags.element": 12, "old": 13, "old.element": 14}
	for name, id := range want {
		if f, ok := sc.FindFieldByName(name); !ok || f.ID != id {
			t.Errorf("%s: field %d (found %v), want %d", name, f.ID, ok, id)
		}
	}
	_, ids, err = icebergSchema(arrow.NewSchema([]arrow.Field{withID(arrow.Field{Name: "id", Type: arrow.PrimitiveTypes.Int64}, -1)}, nil))
	if err != nil || ids {
		t.Errorf("files without ids: ids %v, %v", ids, err)
	}
}

// merge keeps the table's ids and adds a new column with the files' id, optional; a column the files
// number otherwise, or a new column on an id the table uses, is errIDsDiffer (the table is rebuilt);
// a promotable type is promoted in place, an unpromotable one is errCannotPromote.
func TestMergeKeepsTheTablesIDs(t *testing.T) {
	long := func(name string, id int) iceberggo.NestedField {
		return iceberggo.NestedField{ID: id, Name: name, Type: iceberggo.PrimitiveTypes.Int64}
	}
	dec := func(name string, id, prec int) iceberggo.NestedField {
		return iceberggo.NestedField{ID: id, Name: name, Type: iceberggo.DecimalTypeOf(prec, 2)}
	}
	current := iceberggo.NewSchema(3, long("id", 1), dec("amount", 2, 18),
		iceberggo.NestedField{ID: 3, Name: "_run_id", Type: iceberggo.PrimitiveTypes.String, Required: true})

	next, err := merge(current, iceberggo.NewSchema(0, long("id", 1), dec("amount", 2, 38),
		iceberggo.NestedField{ID: 9, Name: "added", Type: iceberggo.PrimitiveTypes.String, Required: true}))
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := next.FindFieldByName("amount"); a.ID != 2 || !a.Type.Equals(iceberggo.DecimalTypeOf(38, 2)) {
		t.Errorf("amount promoted: %v", a)
	}
	if a, _ := next.FindFieldByName("added"); a.ID != 9 || a.Required {
		t.Errorf("added column: %v (want id 9, optional)", a)
	}
	if r, _ := next.FindFieldByName("_run_id"); r.ID != 3 || !r.Required {
		t.Errorf("a column the run lacks changed: %v", r)
	}

	for _, c := range []struct {
		name string
		run  *iceberggo.Schema
		want error
	}{
		{"renumbered", iceberggo.NewSchema(0, long("id", 5)), errIDsDiffer},
		{"new column on a used id", iceberggo.NewSchema(0, long("other", 2)), errIDsDiffer},
		{"unpromotable", iceberggo.NewSchema(0, iceberggo.NestedField{ID: 1, Name: "id", Type: iceberggo.PrimitiveTypes.String}), errCannotPromote},
		// A decimal with more scale does not fit the table's: conformed to it, its values would not cast.
		{"more scale", iceberggo.NewSchema(0, iceberggo.NestedField{ID: 2, Name: "amount", Type: iceberggo.DecimalTypeOf(28, 10)}), errCannotPromote},
		{"more integer digits", iceberggo.NewSchema(0, iceberggo.NestedField{ID: 2, Name: "amount", Type: iceberggo.DecimalTypeOf(17, 0)}), errCannotPromote},
	} {
		if _, err := merge(current, c.run); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
