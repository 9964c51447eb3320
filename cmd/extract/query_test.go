package main

import (
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
)

var update = flag.Bool("update", false, "rewrite the golden files of the CLI's output")

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/extract -run %s -update writes it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// typesWarehouse is a warehouse with one table holding a value of every type query must write, and
// a NULL row, and the empty string beside NULL.
func typesWarehouse(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "types.duckdb")
	wh, err := duckdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	if _, err := wh.DB.Exec(`CREATE TABLE types AS
		SELECT 1 AS id, 'Ålesund & Bokføring, "AS"' AS name, '' AS empty, 12.50::DECIMAL(18,2) AS amount,
			12345678901234567890.1234::DECIMAL(38,4) AS big, 170141183460469231731687303715884105727::HUGEINT AS huge,
			1176083::DOUBLE AS bytes, 0.1::DOUBLE AS tenth, true AS settled, DATE '2024-01-02' AS day,
			TIMESTAMP '2024-01-02 03:04:05.123456' AS at, TIMESTAMPTZ '2024-01-02 03:04:05.120+00' AS at_tz, TIME '23:59:59.5' AS t,
			'8d2f4d4e-1111-4222-8333-944455556666'::UUID AS uuid, INTERVAL 3 DAY AS span, '\xAA\x41'::BLOB AS raw,
			{'b': 1, 'a': 12.50::DECIMAL(18,2), 'd': DATE '2024-01-02'} AS struct, MAP {'k': 'v', 'a': 'b'} AS map,
			['x', NULL] AS list, '{"z": 1, "a": [true]}'::JSON AS json, 'line one' || chr(10) || 'line two' AS lines
		UNION ALL
		SELECT 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL`); err != nil {
		t.Fatal(err)
	}
	return path
}

// query writes every DuckDB type as it is, in every format, compared with golden files; what a
// format's reader reads back is checked too: CSV by encoding/csv (NULL an empty field, ” quoted),
// JSON by encoding/json (keys in the columns' order, decimals exact, dates as dates, no \u0026).
func TestQueryWritesEveryTypeFaithfully(t *testing.T) {
	t.Parallel()
	db := typesWarehouse(t)
	const sel = "SELECT * FROM types ORDER BY id"
	for _, format := range []string{"table", "csv", "json", "jsonl", "markdown"} {
		code, out, stderr := cli(t, "query", "--db", db, "--format", format, sel)
		if code != 0 {
			t.Fatalf("%s: exit %d %s", format, code, stderr)
		}
		golden(t, "query/types."+format, out)
		for _, bad := range []string{"map[", "OrderedMap", `\u0026`, "e+06", "T00:00:00Z"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s holds %q:\n%s", format, bad, out)
			}
		}
	}
	_, out, _ := cli(t, "query", "--db", db, "--format", "csv", sel)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("csv: %v, %d records", err, len(recs))
	}
	if recs[1][2] != "" || recs[2][2] != "" || !strings.Contains(out, `,"",`) || recs[1][16] != `{"b":1,"a":12.50,"d":"2024-01-02"}` && recs[1][16] != `{"b":1,"a":12.5,"d":"2024-01-02"}` {
		t.Errorf("csv empty string vs NULL, struct: %q", recs[1])
	}
	_, out, _ = cli(t, "query", "--db", db, "--format", "json", sel)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var rows []map[string]any
	if err := dec.Decode(&rows); err != nil || len(rows) != 2 {
		t.Fatalf("json: %v\n%s", err, out)
	}
	r := rows[0]
	if r["amount"] != json.Number("12.50") || r["big"] != json.Number("12345678901234567890.1234") || r["huge"] != json.Number("170141183460469231731687303715884105727") ||
		r["day"] != "2024-01-02" || r["at_tz"] != "2024-01-02T03:04:05.12Z" || r["settled"] != true || r["empty"] != "" || rows[1]["empty"] != nil {
		t.Errorf("json values %v", r)
	}
	if i, j := strings.Index(out, `"id"`), strings.Index(out, `"lines"`); i < 0 || j < i {
		t.Error("json keys are not in the columns' order")
	}
}

// Several statements run in order on one connection, each answer written; a flag may follow the
// SQL; --max-rows says what it left out; SQL comes from a file or standard input as well.
func TestQueryStatementsFilesAndLimits(t *testing.T) {
	t.Parallel()
	db := typesWarehouse(t)
	code, out, stderr := cli(t, "query", "--db", db, "CREATE TEMP VIEW v AS SELECT id FROM types; SELECT count(*) AS n FROM v; SELECT 'it''s; fine' AS s -- done", "--format", "csv")
	if code != 0 || out != "n\n2\n\ns\nit's; fine\n" {
		t.Errorf("statements: exit %d %q %s", code, out, stderr)
	}
	code, out, _ = cli(t, "query", "--db", db, "SELECT * FROM range(250) t(i)")
	if code != 0 {
		t.Errorf("250 rows: exit %d", code)
	}
	golden(t, "query/max-rows.table", out)
	code, out, stderr = cli(t, "query", "--db", db, "--format", "jsonl", "--max-rows", "2", "SELECT * FROM range(5) t(i)")
	if code != 0 || out != "{\"i\":0}\n{\"i\":1}\n" || stderr != "3 more rows not written (--max-rows; 0 writes all)\n" {
		t.Errorf("jsonl --max-rows 2: %d %q %q", code, out, stderr)
	}
	sqlFile := filepath.Join(t.TempDir(), "q.sql")
	_ = os.WriteFile(sqlFile, []byte("-- a report\nSELECT name FROM types WHERE id = 1;\n"), 0o644)
	if code, out, _ = cli(t, "query", "--db", db, "--format", "csv", "--file", sqlFile); out != "name\n\"Ålesund & Bokføring, \"\"AS\"\"\"\n" {
		t.Errorf("--file: %d %q", code, out)
	}
	stdin = strings.NewReader("SELECT 42 AS answer")
	defer func() { stdin = os.Stdin }()
	if code, out, _ = cli(t, "query", "--db", db, "--format", "csv", "-"); out != "answer\n42\n" {
		t.Errorf("stdin: %d %q", code, out)
	}
	pq := filepath.Join(t.TempDir(), "types.parquet")
	if code, _, stderr = cli(t, "query", "--db", db, "--format", "parquet", "--out", pq, "SET threads = 1; "+"SELECT * FROM types"); code != 0 {
		t.Fatalf("parquet: %d %s", code, stderr)
	}
	_, out, _ = cli(t, "query", "--db", db, "--format", "csv", "SELECT typeof(struct) AS s, typeof(amount) AS a, count(*) AS n FROM read_parquet('"+pq+"') GROUP BY ALL")
	if out != "s,a,n\n\"STRUCT(b INTEGER, a DECIMAL(18,2), d DATE)\",\"DECIMAL(18,2)\",2\n" {
		t.Errorf("parquet types: %q", out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"SELECT 1", "SELECT 2"}, "give the SQL as one argument"},
		{[]string{"--format", "xml", "SELECT 1"}, "--format must be table, csv, json, jsonl, markdown, parquet"},
		{[]string{"--format", "parquet", "SELECT 1"}, "--format parquet needs --out"},
	} {
		if code, _, stderr := cli(t, append([]string{"query", "--db", db}, c.args...)...); code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d %s", c.args, code, stderr)
		}
	}
	if code, _, stderr := cli(t, "query", "--db", db, "--format", "parquet", "--out", pq, "SELECT 1; SELECT 2"); code != exitFailed || !strings.Contains(stderr, "one statement that returns rows") {
		t.Errorf("parquet of two answers: %d %s", code, stderr)
	}
}
