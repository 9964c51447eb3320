package sqltext

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2/mapping"
)

// duckdbCount is how many statements DuckDB's own parser finds in text (-1 if it cannot parse it).
func duckdbCount(t testing.TB, conn mapping.Connection, text string) int {
	var stmts mapping.ExtractedStatements
	n := mapping.ExtractStatements(conn, text, &stmts)
	defer mapping.DestroyExtracted(&stmts)
	if n == 0 && mapping.ExtractStatementsError(stmts) != "" {
		return -1
	}
	return int(n)
}

func duckdbConn(t testing.TB) mapping.Connection {
	var db mapping.Database
	if mapping.Open(":memory:", &db) == mapping.StateError {
		t.Fatal("open")
	}
	var conn mapping.Connection
	if mapping.Connect(db, &conn) == mapping.StateError {
		t.Fatal("connect")
	}
	t.Cleanup(func() { mapping.Disconnect(&conn); mapping.Close(&db) })
	return conn
}

// The statements are where DuckDB's parser finds them: as many, and each one whole.
func checkSplit(t testing.TB, conn mapping.Connection, text string) {
	if !utf8.ValidString(text) || strings.Contains(text, "\x00") {
		return // DuckDB reads neither: it says so when the text runs
	}
	want := duckdbCount(t, conn, text)
	if want < 0 {
		return // DuckDB refuses the text: it says why when it runs
	}
	var got []string
	for _, s := range Split(text) {
		switch n := duckdbCount(t, conn, s); n {
		case 0: // nothing to DuckDB either (a lone combining mark): running it is an empty query
		case 1:
			got = append(got, s)
		default:
			t.Fatalf("%q: piece %q holds %d statements for DuckDB", text, s, n)
		}
	}
	if len(got) != want {
		t.Fatalf("%q: split into %d %q, DuckDB finds %d", text, len(got), got, want)
	}
}

func TestSplitStatementsAsDuckDB(t *testing.T) {
	conn := duckdbConn(t)
	for _, text := range []string{
		"SELECT 1", "SELECT 1;", "SELECT 1; SELECT 2", " ; ;SELECT 1;; ", "-- only a comment", "SELECT 1; -- trailing\n",
		"SELECT 'a;b'; SELECT 'it''s;'", `SELECT "semi;colon" FROM (SELECT 1 AS "semi;colon")`, "SELECT E'\\';'; SELECT 2",
		"SELECT $$a;b$$; SELECT $x$ $$ ; $x$", "SELECT 1 /* a; /* nested; */ still; */; SELECT 2", "SELECT 1 -- a; b\n; SELECT 2",
		"SELECT e'x' || 'y;'", "SELECT 'unterminated; SELECT 2", "SELECT 1;\n/* c */;\nSELECT 2 ;",
		"PREPARE p AS SELECT $1; EXECUTE p(1)", "SELECT ab$c$d; SELECT 2", "SELECT '\\'; SELECT 2",
	} {
		checkSplit(t, conn, text)
	}
	if got := Split("SET threads = 1;\n-- then\nSELECT 2 ;"); len(got) != 2 || got[0] != "SET threads = 1" || got[1] != "-- then\nSELECT 2" {
		t.Errorf("pieces %q", got)
	}
}

func FuzzSplitStatements(f *testing.F) {
	for _, s := range []string{"SELECT 1; SELECT 2", "SELECT 'a;''b'; /* x; */ SELECT $$;$$", "SELECT E'\\'';' -- ;\n; SELECT \"a;\""} {
		f.Add(s)
	}
	conn := duckdbConn(f)
	f.Fuzz(func(t *testing.T, text string) {
		checkSplit(t, conn, text)
	})
}
