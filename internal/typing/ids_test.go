package typing

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ledgerlake/ledgerlake/schemas"
)

// persist is what a run leaves in _schemas/<table>.json, read back as the next run reads it.
func persist(t *testing.T, s *Schema) *Schema {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out Schema
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// arrowIDs is every field id of an Arrow schema by dotted field path, nested fields (a list's item, a
// map's key and value) included; a field without one is -1.
func arrowIDs(sc *arrow.Schema) map[string]int {
	out := map[string]int{}
	var walk func(prefix string, f arrow.Field)
	walk = func(prefix string, f arrow.Field) {
		id := -1
		if v, ok := f.Metadata.GetValue(FieldIDKey); ok {
			id, _ = strconv.Atoi(v)
		}
		out[prefix+f.Name] = id
		switch t := f.Type.(type) {
		case *arrow.MapType:
			walk(prefix+f.Name+".", t.KeyField())
			walk(prefix+f.Name+".", t.ItemField())
		case *arrow.ListType:
			walk(prefix+f.Name+".", t.ElemField())
		}
	}
	for _, f := range sc.Fields() {
		walk("", f)
	}
	return out
}

// checkUnique fails unless every field id of sc is positive and distinct.
func checkUnique(t *testing.T, sc *arrow.Schema) map[string]int {
	t.Helper()
	ids := arrowIDs(sc)
	seen := map[int]string{}
	for name, id := range ids {
		if id <= 0 {
			t.Errorf("%s has no field id (%d)", name, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s share the field id %d", name, other, id)
		}
		seen[id] = name
	}
	return ids
}

// A column keeps its field id from run to run (its list element, map key and value, and the lineage
// columns too); a column added later gets an id never used before, even when an earlier column's type
// changed in between.
func TestFieldIDsStayAcrossRunsAndNewColumnsGetUnusedOnes(t *testing.T) {
	run1, _ := NewSchema("x_y", []string{"id"}, nil, nil, []string{"objectfields"})
	run1.Evidence, run1.Window = true, true
	run1.Observe(recs(t, `{"id":1,"name":"a","tags":["x"],"objectfields":{"k":"v"},"later":null}`))
	before := checkUnique(t, run1.Arrow())
	for _, f := range []string{"id", "tags.item", "objectfields.key", "objectfields.value", RunIDColumn, WindowEndColumn} {
		if before[f] <= 0 {
			t.Fatalf("%s has no field id: %v", f, before)
		}
	}

	run2, err := NewSchema("x_y", []string{"id"}, nil, persist(t, run1), []string{"objectfields"})
	if err != nil {
		t.Fatal(err)
	}
	run2.Evidence, run2.Window = true, true
	run2.Observe(recs(t, `{"id":2,"name":7,"tags":["y"],"objectfields":{},"later":"now typed","brandNew":1.5}`))
	after := checkUnique(t, run2.Arrow())
	for name, id := range before {
		if after[name] != id {
			t.Errorf("%s: field id %d in run 1, %d in run 2", name, id, after[name])
		}
	}
	for _, added := range []string{"later", "brand_new"} {
		if after[added] <= run1.LastID && added == "brand_new" {
			t.Errorf("%s took id %d, not above run 1's last id %d", added, after[added], run1.LastID)
		}
		for name, id := range before {
			if id == after[added] {
				t.Errorf("%s reuses %s's field id %d", added, name, id)
			}
		}
	}
	if colType(run2, "name") != "VARCHAR" || after["name"] != before["name"] {
		t.Errorf("a widened column keeps its id: %s, id %d → %d", colType(run2, "name"), before["name"], after["name"])
	}
}

// A schema persisted before field ids existed gets them on load, the same ones on every load: a run
// that crashes before saving its schema must not write files numbered differently from its retry.
func TestSchemaPersistedWithoutIDsIsNumberedTheSameOnEveryLoad(t *testing.T) {
	old := `{"table":"x_y","key":["id"],"columns":[
		{"name":"id","path":["id"],"type":"BIGINT"},
		{"name":"tags","path":["tags"],"type":"VARCHAR[]"},
		{"name":"gone","path":["gone"],"type":"NULL"},
		{"name":"amount","path":["amount"],"type":"DECIMAL(38,2)"}]}`
	load := func() *Schema {
		var p Schema
		if err := json.Unmarshal([]byte(old), &p); err != nil {
			t.Fatal(err)
		}
		s, err := NewSchema("x_y", []string{"id"}, nil, &p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := load(), load()
	ida, idb := checkUnique(t, a.Arrow()), arrowIDs(b.Arrow())
	for name, id := range ida {
		if idb[name] != id {
			t.Errorf("%s: field id %d on one load, %d on another", name, id, idb[name])
		}
	}
	if len(ida) != 6 { // id, tags, tags.item, amount, _run_id, _extracted_at
		t.Errorf("ids of %v", ida)
	}
	// Saved and loaded again, nothing moves, and the null column, typed later, keeps the id it had.
	gone := a.Columns[2].ID
	c, err := NewSchema("x_y", []string{"id"}, nil, persist(t, a), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Observe(recs(t, `{"id":1,"gone":"back"}`))
	idc := arrowIDs(c.Arrow())
	for name, id := range ida {
		if idc[name] != id {
			t.Errorf("%s: field id %d before saving, %d after", name, id, idc[name])
		}
	}
	if idc["gone"] != gone {
		t.Errorf("a column typed late has id %d, was given %d when first seen", idc["gone"], gone)
	}
}

// Declared columns take the ids their names had in the persisted schema (schemas/ is read anew each
// run); an inferred column renamed because a declared one took its name is a new column, with a new id.
func TestDeclaredColumnsKeepTheirIDsAndRenamedOnesGetNewOnes(t *testing.T) {
	decl := &schemas.Table{Columns: []schemas.Column{{Name: "id", Path: "id", Type: "VARCHAR"}, {Name: "tags", Path: "tags", Type: "VARCHAR[]"}}}
	run1, _ := NewSchema("x_y", []string{"id"}, decl, nil, nil)
	run1.Observe(recs(t, `{"id":"a","Note":"n","note":"m"}`))
	before := checkUnique(t, run1.Arrow())

	// schemas/ now declares note at another path: the declared note keeps the name's id.
	decl.Columns = append(decl.Columns, schemas.Column{Name: "note", Path: "memo.note", Type: "VARCHAR"})
	run2, err := NewSchema("x_y", []string{"id"}, decl, persist(t, run1), nil)
	if err != nil {
		t.Fatal(err)
	}
	after := checkUnique(t, run2.Arrow())
	for _, name := range []string{"id", "tags", "tags.item", "note", RunIDColumn} {
		if after[name] != before[name] {
			t.Errorf("%s: field id %d, was %d", name, after[name], before[name])
		}
	}
	var renamed string
	for name := range after {
		if strings.HasPrefix(name, "note_") && before[name] != after[name] {
			renamed = name
		}
	}
	if renamed == "" || after[renamed] <= run1.LastID {
		t.Errorf("the inferred column that lost its name has ids %v (run 1's last id %d)", after, run1.LastID)
	}
}

// A persisted schema is read from disk: a negative id is refused, naming the table and column; two
// columns claiming one id (an edited file) keep it for the first, and the second gets a new one.
func TestPersistedFieldIDsAreNotTrusted(t *testing.T) {
	var bad Schema
	_ = json.Unmarshal([]byte(`{"table":"x_y","columns":[{"name":"a","path":["a"],"type":"BIGINT","id":-3}]}`), &bad)
	if _, err := NewSchema("x_y", nil, nil, &bad, nil); err == nil || !strings.Contains(err.Error(), "x_y") || !strings.Contains(err.Error(), "column a") {
		t.Errorf("negative id: %v", err)
	}
	var dup Schema
	_ = json.Unmarshal([]byte(`{"table":"x_y","last_id":2,"columns":[
		{"name":"a","path":["a"],"type":"BIGINT","id":2},{"name":"b","path":["b"],"type":"BIGINT","id":2}],
		"lineage_ids":{"_run_id":2}}`), &dup)
	s, err := NewSchema("x_y", nil, nil, &dup, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := checkUnique(t, s.Arrow())
	if ids["a"] != 2 || ids["b"] <= 2 {
		t.Errorf("duplicate persisted ids became %v", ids)
	}
}
