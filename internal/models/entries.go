package models

import (
	"context"
	dbsql "database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// FieldsTable holds the mapping the models were last built with: where each tenant-defined field
// came from, for `extract docs` and the site.
const FieldsTable = "_ledgerlake_fields"

// checkEntries binds every entry that is not a plain column against the warehouse, before the models'
// transaction (a statement that fails aborts a DuckDB transaction), and says per field why one cannot
// be read: the model's message then names the entry, the columns that exist and the key to set.
// Columns are checked as models bind, where the message lists every missing one of a table at once.
func checkEntries(ctx context.Context, db *dbsql.DB, fields fieldmap.Mapping, exists map[string]bool) (map[binding]string, error) {
	problems := map[binding]string{}
	cols := map[string][]string{}
	columns := func(table string) ([]string, error) {
		if c, ok := cols[table]; ok {
			return c, nil
		}
		c, err := columnList(ctx, db, table)
		cols[table] = c
		return c, err
	}
	for _, table := range slices.Sorted(maps.Keys(fields)) {
		if !exists[table] {
			continue
		}
		for _, field := range slices.Sorted(maps.Keys(fields[table])) {
			e, key := fields[table][field], fieldmap.ConfigKey(table, field)
			var why string
			var err error
			switch e.Kind() {
			case fieldmap.KindSQL:
				why, err = checkSQL(ctx, db, table, key, e, columns)
			case fieldmap.KindFrom:
				why, err = checkFrom(table, key, e, exists, columns)
			}
			if err != nil {
				return nil, err
			}
			if why != "" {
				problems[binding{table, field}] = why
			}
		}
	}
	return problems, nil
}

// checkSQL binds an expression over table: it must be one value per row of its columns.
func checkSQL(ctx context.Context, db *dbsql.DB, table, key string, e fieldmap.Entry, columns func(string) ([]string, error)) (string, error) {
	cols, err := columns(table)
	if err != nil || len(cols) == 0 {
		return "", err
	}
	if err := fieldmap.CheckExpression(e.SQL); err != nil {
		return fmt.Sprintf("%s: sql %q %v", key, e.SQL, err), nil
	}
	// A column beside it makes an aggregate fail to bind: a field holds one value per row.
	q := "SELECT (" + e.SQL + ") AS v, " + duckdb.Quote(cols[0]) + " FROM " + duckdb.Quote(table) + " LIMIT 0"
	if _, err := db.ExecContext(ctx, q); err != nil {
		// DuckDB's first line says what is wrong; the rest quotes our wrapper query.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		if strings.Contains(msg, "GROUP BY") {
			msg = "it is an aggregate; a field holds one value per row"
		}
		return fmt.Sprintf("%s: %s does not bind over %s: %s; its columns are %s; set %s to an expression over them",
			key, e, table, msg, strings.Join(cols, ", "), key), nil
	}
	return "", nil
}

// checkFrom checks that the parent table a from entry reads is loaded and has the field and the
// link's column, and that table has its side of the link.
func checkFrom(table, key string, e fieldmap.Entry, exists map[string]bool, columns func(string) ([]string, error)) (string, error) {
	source, _, _ := strings.Cut(table, "_")
	l, ok := e.Link(source)
	if !ok {
		return fmt.Sprintf("%s: %s is not {from: <stream>.<column>, via: <column>}", key, e), nil
	}
	if !exists[l.Parent] {
		return fmt.Sprintf("%s: %s reads %s, which is not in the warehouse (is the stream loaded?)", key, e, l.Parent), nil
	}
	for _, need := range []struct{ table, column, role string }{{l.Parent, l.Column, "the field"}, {l.Parent, l.ParentKey, "the link"}, {table, l.Own, "the link"}} {
		cols, err := columns(need.table)
		if err != nil {
			return "", err
		}
		if !slices.Contains(cols, need.column) {
			return fmt.Sprintf("%s: %s reads %s, but %s has no column %q; its columns are %s; set %s to the columns that hold them",
				key, e, need.role, need.table, need.column, strings.Join(cols, ", "), key), nil
		}
	}
	return "", nil
}

// BuiltFields reads where each field came from when the models were last built (FieldsTable); nil
// when they never were.
func BuiltFields(ctx context.Context, db *dbsql.DB) (map[fieldmap.Ref]fieldmap.Source, error) {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", FieldsTable).Scan(&n); err != nil || n == 0 {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT table_name, field, source, is_default FROM "+FieldsTable)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[fieldmap.Ref]fieldmap.Source{}
	for rows.Next() {
		var r fieldmap.Ref
		var s fieldmap.Source
		if err := rows.Scan(&r.Table, &r.Field, &s.Entry, &s.Default); err != nil {
			return nil, err
		}
		out[r] = s
	}
	return out, rows.Err()
}

// recordFields keeps the mapping in FieldsTable, replacing the last one.
func recordFields(ctx context.Context, db *dbsql.DB, fields fieldmap.Mapping) error {
	if _, err := db.ExecContext(ctx, "CREATE OR REPLACE TABLE "+FieldsTable+
		" (table_name VARCHAR, field VARCHAR, source VARCHAR, kind VARCHAR, is_default BOOLEAN, config_key VARCHAR, description VARCHAR)"); err != nil {
		return err
	}
	for _, table := range slices.Sorted(maps.Keys(fields)) {
		for _, field := range slices.Sorted(maps.Keys(fields[table])) {
			e := fields[table][field]
			if _, err := db.ExecContext(ctx, "INSERT INTO "+FieldsTable+" VALUES (?, ?, ?, ?, ?, ?, ?)", table, field, e.String(), e.Kind(),
				fields.IsDefault(table, field), fieldmap.ConfigKey(table, field), fieldmap.Fields[table][field].Description); err != nil {
				return err
			}
		}
	}
	return nil
}
