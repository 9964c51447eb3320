package typing

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/ledgerlake/ledgerlake/schemas"
)

// TryAppend converts rec into the current batch when the schema already holds it — no field without a
// column, no value Observe would widen a column or add a child table for — and reports whether it did.
// It reads each value once, where Observe and then Append read it twice: once a stream's schema has
// settled, almost every record fits. On false the batch holds part of a row and its rejects may be
// incomplete: the caller drops the converter, runs Observe and converts the batch with Append.
func (c *Converter) TryAppend(rec Record) bool {
	c.row++
	c.rowRejects = c.rowRejects[:0]
	if !c.fit(rec, rec, nil) {
		return false
	}
	for f, i := range c.cols {
		if c.stamp[i] != c.row {
			c.b.Field(f).AppendNull()
		}
	}
	if len(c.rowRejects) > 0 {
		// Append reports a row's rejects in column order; fields come in map order.
		sort.Slice(c.rowRejects, func(a, b int) bool { return c.rowRejects[a].col < c.rowRejects[b].col })
		for _, r := range c.rowRejects {
			c.Rejects = append(c.Rejects, r.Reject)
		}
	}
	c.appendLineage()
	return true
}

type columnReject struct {
	col int
	Reject
}

// fit mirrors Schema.walk over r (the object at parent, nil for rec itself) and appends every field
// to its column; it returns false where walk would change the schema, and where Append would do
// something other than convert the field's own value (a field also read as a nested object).
func (c *Converter) fit(rec, r Record, parent *subPath) bool {
	s := c.sch
	for k, v := range r {
		key, dotted := k, k
		var sp *subPath
		if parent != nil {
			sp = s.sub(parent, k)
			key, dotted = sp.key, sp.dotted
		}
		i, found := s.byPath[key]
		if found && i >= len(c.field) {
			return false // added by an Observe after this converter was made
		}
		var col *Column
		if found {
			col = &s.Columns[i]
		}
		written := found && col.Type != nullType
		x, isMap := v.(map[string]any)
		switch {
		case found && col.Declared:
			if isMap && col.typ.Kind != schemas.Map {
				return false // walk reads the object's fields as columns of their own
			}
			if !c.appendDeclared(rec, i, v) {
				return false
			}
			continue
		case isMap:
			if s.maps[dotted] {
				if !written || col.typ.Kind != schemas.Map {
					return false
				}
				c.appendDeclared(rec, i, v) // a MAP never fails to convert
				continue
			}
			if sp == nil {
				sp = s.sub(nil, k)
			}
			if written || !c.fit(rec, x, sp) {
				return false
			}
			continue
		}
		if arr, isArr := v.([]any); isArr && isObjectArray(arr) {
			if !s.children[dotted] || written {
				return false
			}
			continue
		}
		if len(s.children) > 0 && s.children[dotted] {
			if written {
				return false
			}
			continue
		}
		if !found {
			return false
		}
		if !written {
			if inferType(v) != nullType {
				return false
			}
			continue
		}
		if !appendFit(c.b.Field(c.field[i]), col.typ, v) {
			return false
		}
		c.stamp[i] = c.row
	}
	return true
}

// appendDeclared appends v to the declared (or MAP) column i, or NULL and a reject when it does not fit;
// false (nothing appended) when Observe would widen the column's DECIMAL to hold v.
func (c *Converter) appendDeclared(rec Record, i int, v any) bool {
	col := &c.sch.Columns[i]
	c.stamp[i] = c.row
	b := c.b.Field(c.field[i])
	if err := appendValue(b, col.typ, v); err != nil {
		if widensFor(col.typ, v) {
			return false
		}
		c.rowRejects = append(c.rowRejects, columnReject{i, Reject{Stream: c.sch.Table, Key: c.keyOf(rec), Column: col.Name, Raw: strings.Clone(text(v)), Reason: err.Error()}})
		b.AppendNull()
	}
	return true
}

// appendFit appends v to an inferred column of type t when inference would keep t for it, converting
// it as convert does; false (nothing appended) when the column would widen or the value needs Append.
func appendFit(b array.Builder, t schemas.Type, v any) bool {
	if v == nil {
		b.AppendNull()
		return true
	}
	if s, ok := v.(string); ok && s == "" && t.Kind != schemas.Varchar {
		b.AppendNull()
		return true
	}
	switch t.Kind {
	case schemas.Varchar:
		b.(*array.StringBuilder).Append(text(v))
		return true
	case schemas.Boolean:
		x, ok := v.(bool)
		if ok {
			b.(*array.BooleanBuilder).Append(x)
		}
		return ok
	case schemas.BigInt:
		lit, ok := v.(json.Number)
		if !ok {
			return false
		}
		n, isInt, _, ok := numberKind(string(lit))
		if !ok || !isInt {
			return false
		}
		b.(*array.Int64Builder).Append(n)
		return true
	case schemas.Decimal:
		lit, ok := v.(json.Number)
		if !ok {
			return false
		}
		var d decimal128.Num
		if mant, frac, plain := plainNumber(string(lit)); plain && t.Precision >= 38 && t.Scale <= 18 {
			// At most 18 digits at a scale of at most 18: within DECIMAL(38,·), no rounding.
			if frac > t.Scale || (frac > 0 && t.Scale < 2) {
				return false // inference would widen the scale
			}
			d = decimal128.FromI64(mant).Mul(decimal128.GetScaleMultiplier(t.Scale - max(frac, 0)))
		} else {
			_, isInt, scale, ok := numberKind(string(lit))
			if !ok || (!isInt && scale > t.Scale) {
				return false
			}
			var err error
			if d, err = ParseDecimal(string(lit), t.Precision, t.Scale); err != nil {
				return false // Append rejects it
			}
		}
		b.(*array.Decimal128Builder).Append(d)
		return true
	case schemas.Date, schemas.Timestamp, schemas.TimestampTZ:
		s, ok := v.(string)
		if !ok {
			return false
		}
		ts, k, ok := timestampKind(s)
		switch {
		case !ok:
			return false
		case t.Kind == schemas.Date && k == schemas.Date:
			b.(*array.Date32Builder).Append(arrow.Date32FromTime(ts))
		case t.Kind == schemas.Timestamp && (k == schemas.Timestamp || k == schemas.Date),
			t.Kind == schemas.TimestampTZ && k == schemas.TimestampTZ:
			b.(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
		default:
			return false
		}
		return true
	case schemas.List:
		if _, ok := v.([]any); !ok || widen(t.String(), inferType(v)) != t.String() {
			return false
		}
		return appendValue(b, t, v) == nil
	}
	return false // MAP is handled with the object fields; DOUBLE is never inferred
}
