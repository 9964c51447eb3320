package typing

import (
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ledgerlake/ledgerlake/schemas"
)

// FieldIDKey is the Arrow field metadata key pqarrow writes as a Parquet column's field_id: the id an
// Iceberg reader resolves the column by (Iceberg spec, "Column Projection": ids, not names).
const FieldIDKey = "PARQUET:field_id"

// lineageOrder is the order lineage columns are given ids in, so a schema persisted before ids existed
// numbers them the same way on every load.
var lineageOrder = []string{RunIDColumn, ExtractedAtColumn, EvidenceColumn, WindowStartColumn, WindowEndColumn}

// startIDs carries the field ids of the schema persisted by earlier runs (nil: none): its last
// assigned id and its lineage columns' ids. A persisted id is trusted only as far as it is positive;
// a duplicate is given a new one when its column is added (see add).
func (s *Schema) startIDs(persisted *Schema) error {
	s.used = map[int]bool{}
	s.LineageIDs = map[string]int{}
	if persisted == nil {
		return nil
	}
	if persisted.LastID < 0 {
		return fmt.Errorf("persisted schema of %s: last_id %d is negative", s.Table, persisted.LastID)
	}
	s.LastID = persisted.LastID
	for _, c := range persisted.Columns {
		for _, id := range c.ids() {
			if id < 0 {
				return fmt.Errorf("persisted schema of %s: column %s has the negative field id %d", s.Table, c.Name, id)
			}
			s.LastID = max(s.LastID, id) // an id above last_id must still never be handed out again
		}
	}
	for name, id := range persisted.LineageIDs {
		if id < 0 || !isLineageColumn(name) {
			return fmt.Errorf("persisted schema of %s: lineage id %s=%d is not a lineage column's positive id", s.Table, name, id)
		}
		s.LastID = max(s.LastID, id)
	}
	return nil
}

// persistedIDs copies the ids a persisted column of the same name had onto a declared column: an id
// follows the column's name, which is what the files written so far and the name mapping hold.
func persistedIDs(c *Column, persisted *Schema) {
	if persisted == nil {
		return
	}
	for _, p := range persisted.Columns {
		if p.Name == c.Name {
			c.ID, c.ElementID, c.KeyID, c.ValueID = p.ID, p.ElementID, p.KeyID, p.ValueID
			return
		}
	}
}

// ids are the column's field ids that are set, the column's own first.
func (c *Column) ids() []int {
	var out []int
	for _, id := range []int{c.ID, c.ElementID, c.KeyID, c.ValueID} {
		if id != 0 {
			out = append(out, id)
		}
	}
	return out
}

// claim marks c's ids taken; an id another column holds already (a persisted schema edited or renamed
// onto a declared column's name) is dropped, and assign gives a new one.
func (s *Schema) claim(c *Column) {
	for _, id := range []*int{&c.ID, &c.ElementID, &c.KeyID, &c.ValueID} {
		if *id == 0 {
			continue
		}
		if s.used[*id] {
			*id = 0
			continue
		}
		s.used[*id] = true
	}
	s.assign(c)
}

// assign gives c the ids its type needs and it lacks: its own, a list's element's, a map's key's and
// value's. Ids are never reused, so a file written earlier never means another column by its ids.
func (s *Schema) assign(c *Column) {
	if c.ID == 0 {
		c.ID = s.nextID()
	}
	if c.Type == nullType {
		return
	}
	switch c.typ.Kind {
	case schemas.List:
		if c.ElementID == 0 {
			c.ElementID = s.nextID()
		}
	case schemas.Map:
		if c.KeyID == 0 {
			c.KeyID = s.nextID()
		}
		if c.ValueID == 0 {
			c.ValueID = s.nextID()
		}
	}
}

func (s *Schema) nextID() int {
	s.LastID++
	s.used[s.LastID] = true
	return s.LastID
}

// assignLineage gives every lineage column an id (whether the table carries it or not), after the
// columns, so ids of a schema persisted without them come out the same on every load.
func (s *Schema) assignLineage(persisted *Schema) {
	for _, name := range lineageOrder {
		id := 0
		if persisted != nil {
			id = persisted.LineageIDs[name]
		}
		if id == 0 || s.used[id] {
			id = s.nextID()
		}
		s.used[id] = true
		s.LineageIDs[name] = id
	}
}

// idField is an Arrow field carrying a field id.
func idField(name string, t arrow.DataType, nullable bool, id int) arrow.Field {
	return arrow.Field{Name: name, Type: t, Nullable: nullable, Metadata: arrow.NewMetadata([]string{FieldIDKey}, []string{strconv.Itoa(id)})}
}

// arrowField is c's Arrow field with its field ids, a list's element and a map's key and value too.
// The nested fields keep the names and nullability ArrowType gives them, so the schema fingerprint
// (names and types) is what it was before ids.
func (c *Column) arrowField() arrow.Field {
	t := ArrowType(c.typ)
	switch c.typ.Kind {
	case schemas.List:
		t = arrow.ListOfField(idField("item", ArrowType(*c.typ.Elem), true, c.ElementID))
	case schemas.Map:
		t = arrow.MapOfFields(idField("key", arrow.BinaryTypes.String, false, c.KeyID), idField("value", arrow.BinaryTypes.String, true, c.ValueID))
	}
	return idField(c.Name, t, true, c.ID)
}

// lineageField is a lineage column's Arrow field with its field id.
func (s *Schema) lineageField(name string, t arrow.DataType, nullable bool) arrow.Field {
	return idField(name, t, nullable, s.LineageIDs[name])
}
