package site

import (
	"context"
	"database/sql"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// TenantField is a tenant-defined field the models read (sql/fieldmap/fields.yaml), and where they last read
// it from: a column, an expression, the parent record's field or a constant.
type TenantField struct {
	Name    string // the models' name: net_amount
	Table   string // the tenant's table: gsapi_datasync_invoices
	Key     string // the config key that maps it
	From    string // the entry, as a pipeline file writes it
	Default bool
}

// collectFields lists, on each staging model, the fields it reads, and on each tenant table, the fields
// read from it, with where the last build read them from (nothing when the models were never built).
func (s *Site) collectFields(ctx context.Context, db *sql.DB) error {
	built, err := models.BuiltFields(ctx, db)
	if err != nil || built == nil {
		return err
	}
	byName := map[string]*Table{}
	for _, t := range s.Tables {
		byName[t.Name] = t
	}
	field := func(r fieldmap.Ref) TenantField {
		return TenantField{Name: r.Field, Table: r.Table, Key: fieldmap.ConfigKey(r.Table, r.Field), From: built[r].Entry, Default: built[r].Default}
	}
	for _, m := range s.sqlModels {
		if t := byName[m.Name]; t != nil {
			for _, f := range m.Fields() {
				table, name, _ := strings.Cut(f, ".")
				t.Fields = append(t.Fields, field(fieldmap.Ref{Table: table, Field: name}))
			}
		}
	}
	for _, r := range fieldmap.Order {
		if t := byName[r.Table]; t != nil {
			t.Fields = append(t.Fields, field(r))
		}
	}
	return nil
}
