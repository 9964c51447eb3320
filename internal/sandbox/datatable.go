package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// datatableRequest is the documented body of POST /datatable/list.
type datatableRequest struct {
	Filters []struct {
		Column string `json:"column"`
		Filter []struct {
			Operator string `json:"operator"`
			Value    any    `json:"value"`
		} `json:"filter"`
	} `json:"filters"`
	Sortorder []string `json:"sortorder"`
}

type datatable struct {
	n   int
	row func(i int) obj
}

func (s *Sandbox) datatable(name string) (datatable, bool) {
	switch strings.ToLower(name) {
	case "ctransactiondata":
		return datatable{s.data.GSTransactions, s.data.gsTransaction}, true
	case "eventdataimport":
		return datatable{s.data.GSEvents, s.data.gsEvent}, true
	case "servicenowservers":
		ex := exampleObjects("gsapi_datatable_servicenowservers")
		return datatable{len(ex), func(i int) obj {
			var o orderedJSON
			_ = json.Unmarshal(ex[i], &o)
			out := make(obj, len(o))
			for k, f := range o {
				var v any
				_ = json.Unmarshal(f.v, &v)
				out[k] = field{f.k, v}
			}
			return out
		}}, true
	}
	return datatable{}, false
}

type rowFilter struct {
	column, op string
	value      string
}

// match applies one documented operator: eq, neq, greater, lower, contains, isnull, isnotnull.
// Numbers compare as numbers, everything else as text (timestamps in the tables sort as text).
func (f rowFilter) match(v any) bool {
	switch f.op {
	case "isnull":
		return v == nil
	case "isnotnull":
		return v != nil
	}
	if v == nil {
		return false
	}
	s := scalarText(v)
	var cmp int
	a, errA := strconv.ParseFloat(s, 64)
	b, errB := strconv.ParseFloat(f.value, 64)
	if errA == nil && errB == nil {
		switch {
		case a < b:
			cmp = -1
		case a > b:
			cmp = 1
		}
	} else {
		cmp = strings.Compare(s, f.value)
	}
	switch f.op {
	case "eq":
		return cmp == 0
	case "neq":
		return cmp != 0
	case "greater":
		return cmp > 0
	case "lower":
		return cmp < 0
	case "contains":
		return strings.Contains(strings.ToLower(s), strings.ToLower(f.value))
	}
	return false
}

func scalarText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case money, milli:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

// gsDatatable serves POST /datatable/list with filters, sortorder and page/pagesize, the total in
// X-GSAPI-QueryTotalCount, and the documented quirk: without sortorder every page is the first page.
func (s *Sandbox) gsDatatable(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tbl, ok := s.datatable(q.Get("tablename"))
	if !ok {
		gsError(w, http.StatusBadRequest, fmt.Sprintf("Invalid tablename %q", q.Get("tablename")))
		return
	}
	page, pagesize := 1, 10000
	for name, dst := range map[string]*int{"page": &page, "pagesize": &pagesize} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				gsError(w, http.StatusBadRequest, name+" must be a positive integer")
				return
			}
			*dst = n
		}
	}
	var req datatableRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil && err.Error() != "EOF" {
		gsError(w, http.StatusBadRequest, "Invalid JSON body: "+err.Error())
		return
	}
	var filters []rowFilter
	for _, f := range req.Filters {
		for _, c := range f.Filter {
			op := strings.ToLower(c.Operator)
			switch op {
			case "eq", "neq", "greater", "lower", "contains", "isnull", "isnotnull":
			default:
				gsError(w, http.StatusBadRequest, fmt.Sprintf("Invalid operator %q", c.Operator))
				return
			}
			val := ""
			if c.Value != nil {
				val = scalarText(c.Value)
			}
			filters = append(filters, rowFilter{f.Column, op, val})
		}
	}
	sorted := len(req.Sortorder) > 0 && !s.opts.IgnoreSortorder
	if !sorted {
		page = 1 // the quirk: no error, just the first page again
	}
	order, err := s.datatableOrder(tbl, req.Sortorder, filters)
	if err != nil {
		gsError(w, http.StatusBadRequest, "Invalid "+err.Error()) // GSAPI's wording: "Invalid sortorder …"
		return
	}
	w.Header().Set("X-GSAPI-QueryTotalCount", strconv.Itoa(order.total))
	aw := newArrayWriter(w)
	skip := (page - 1) * pagesize
	for i, n := 0, 0; n < pagesize; i++ {
		idx, ok := order.at(i)
		if !ok {
			break
		}
		if i < skip {
			continue
		}
		if !aw.add(tbl.row(idx)) {
			return
		}
		n++
	}
	aw.end()
}

// rowOrder lists the matching rows in the requested order.
type rowOrder struct {
	total int
	at    func(i int) (int, bool)
}

// datatableOrder computes the matching rows; its error names the sortorder entry it cannot read. Ordering by raw_id (the tables' natural order) streams
// without holding the table; any other order sorts the matching indexes in memory.
func (s *Sandbox) datatableOrder(tbl datatable, sortorder []string, filters []rowFilter) (rowOrder, error) {
	matches := func(i int) bool {
		if len(filters) == 0 {
			return true
		}
		row := tbl.row(i)
		for _, f := range filters {
			if !f.match(row.get(f.column)) {
				return false
			}
		}
		return true
	}
	var idx []int
	if lo, hi, ok := rawIDRange(tbl.n, filters); ok {
		for i := lo; i < hi; i++ {
			idx = append(idx, i)
		}
	} else {
		for i := 0; i < tbl.n; i++ {
			if matches(i) {
				idx = append(idx, i)
			}
		}
	}
	if len(sortorder) > 0 {
		type key struct {
			col  string
			desc bool
		}
		var keys []key
		for _, so := range sortorder {
			parts := strings.Fields(so)
			if len(parts) == 0 || len(parts) > 2 {
				return rowOrder{}, fmt.Errorf("sortorder %q", so)
			}
			k := key{col: parts[0]}
			if len(parts) == 2 {
				switch strings.ToLower(parts[1]) {
				case "asc":
				case "desc":
					k.desc = true
				default:
					return rowOrder{}, fmt.Errorf("sortorder %q", so)
				}
			}
			keys = append(keys, k)
		}
		if keys[0].col == "raw_id" {
			if keys[0].desc {
				for a, b := 0, len(idx)-1; a < b; a, b = a+1, b-1 {
					idx[a], idx[b] = idx[b], idx[a]
				}
			}
		} else {
			rows := make(map[int]obj, len(idx))
			for _, i := range idx {
				rows[i] = tbl.row(i)
			}
			sort.SliceStable(idx, func(a, b int) bool {
				for _, k := range keys {
					fa := rowFilter{op: "lower", value: scalarText(rows[idx[b]].get(k.col))}
					fb := rowFilter{op: "lower", value: scalarText(rows[idx[a]].get(k.col))}
					lt, gt := fa.match(rows[idx[a]].get(k.col)), fb.match(rows[idx[b]].get(k.col))
					if k.desc {
						lt, gt = gt, lt
					}
					if lt {
						return true
					}
					if gt {
						return false
					}
				}
				return false
			})
		}
	}
	return rowOrder{total: len(idx), at: func(i int) (int, bool) {
		if i >= len(idx) {
			return 0, false
		}
		return idx[i], true
	}}, nil
}

// rawIDRange turns filters that touch only raw_id (row i has raw_id i+1) into an index range, so
// incremental reads ("raw_id greater N") of a large table cost nothing per skipped row.
func rawIDRange(n int, filters []rowFilter) (lo, hi int, ok bool) {
	lo, hi = 0, n
	for _, f := range filters {
		if f.column != "raw_id" {
			return 0, 0, false
		}
		v, err := strconv.Atoi(f.value)
		if err != nil {
			return 0, 0, false
		}
		switch f.op {
		case "greater":
			lo = max(lo, v) // raw_id > v  ⇔  index ≥ v
		case "lower":
			hi = min(hi, v-1) // raw_id < v  ⇔  index < v-1
		case "eq":
			lo, hi = max(lo, v-1), min(hi, v)
		default:
			return 0, 0, false
		}
	}
	if hi < lo {
		hi = lo
	}
	return min(lo, n), min(hi, n), true
}
