package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/durable"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
)

// stdin is where query reads SQL given as "-" or piped in (tests replace it).
var stdin io.Reader = os.Stdin

func queryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("query", "query [--db FILE | --config FILE] [--format F] [--max-rows N] [--out FILE] [SQL | --file FILE | -]",
		"Run SQL read-only against the warehouse. Tables: one per stream (signicat_accounts, gsapi_organizations …),\n"+
			"their history (…_history), the SQL models (fct_invoice …) and the runs (_ledgerlake_runs).\n\n"+
			"The SQL is the argument, a file (--file), or standard input (\"-\", or piped in). Several statements run in\n"+
			"order, on one connection (SET and temporary views carry over), and each answer is written.\n"+
			"Every type is written as it is: decimals exact, dates as dates, NULL apart from '' (NULL in a table, an\n"+
			"empty field in CSV where '' is \"\"), STRUCT, MAP, LIST and JSON values as JSON text; JSON keeps the\n"+
			"columns' order and each value's type.\n\n"+
			"Examples:\n"+
			"  extract query \"SELECT * FROM _ledgerlake_runs\" --format csv\n"+
			"  extract query --file report.sql --format parquet --out report.parquet\n"+
			"  echo \"SELECT count(*) FROM fct_invoice\" | extract query", stderr)
	db := fs.String("db", "data/warehouse.duckdb", "warehouse file")
	cfgPath := fs.String("config", "", "pipeline file whose warehouse to query (instead of --db)")
	format := fs.String("format", "table", "output: "+strings.Join(outputFormats, ", ")+" (jsonl: one object per line)")
	maxRows := fs.Int("max-rows", -1, "rows written per statement, the rest counted and said (0: all; default 100 in table and markdown, else all)")
	file := fs.String("file", "", "read the SQL from this file (- for standard input)")
	out := fs.String("out", "", "write to this file instead of standard output (required for parquet)")
	pos, code := parseArgs(fs, args)
	if code >= 0 {
		return code
	}
	usage := func(msg string, a ...any) int {
		fmt.Fprintf(stderr, "extract query: "+msg+"\n", a...)
		return exitUsage
	}
	if !slices.Contains(outputFormats, *format) {
		return usage("--format must be %s, not %q", strings.Join(outputFormats, ", "), *format)
	}
	if *format == "parquet" && *out == "" {
		return usage("--format parquet needs --out FILE")
	}
	text, err := sqlText(pos, *file)
	if err != nil {
		return usage("%v", err)
	}
	if *cfgPath != "" {
		cfg, err := config.LoadForReading(*cfgPath)
		if err != nil {
			return exitCodeFor(err, stderr)
		}
		*db = cfg.Warehouse
	}
	if *maxRows < 0 {
		*maxRows = 0
		if *format == "table" || *format == "markdown" {
			*maxRows = 100
		}
	}
	wh, err := duckdb.OpenReadOnly(*db)
	if err != nil {
		switch {
		case errors.Is(err, duckdb.ErrLocked):
			fmt.Fprintf(stderr, "extract query: %v; try again when it has finished\n", err)
		case duckdb.IsDamaged(err):
			fmt.Fprintf(stderr, "extract query: %v\nThe warehouse is derived from the lake: the next extract run sets this file aside and rebuilds it.\n", err)
		default:
			fmt.Fprintf(stderr, "extract query: %v\n", err)
		}
		return exitFailed
	}
	defer wh.Close()
	if *format == "parquet" {
		err = writeParquet(ctx, wh.DB, text, *out)
	} else {
		err = toFile(*out, stdout, func(w io.Writer) error { return writeResults(ctx, wh.DB, text, *format, *maxRows, w, stderr) })
	}
	if err != nil {
		fmt.Fprintf(stderr, "extract query: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// sqlText is the SQL to run: the one argument, the --file, or standard input ("-", or piped in).
func sqlText(args []string, file string) (string, error) {
	switch {
	case len(args) > 1:
		return "", fmt.Errorf("give the SQL as one argument (quote it: extract query \"SELECT …\"), or --file FILE; got %d arguments", len(args))
	case len(args) == 1 && file != "":
		return "", errors.New("give the SQL as an argument or --file, not both")
	case len(args) == 1 && args[0] != "-":
		return args[0], nil
	case len(args) == 1 || file == "-":
		return readSQL(stdin)
	case file != "":
		b, err := os.ReadFile(file)
		return string(b), err
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return "", errors.New(`give the SQL: extract query "SELECT …", --file FILE, or pipe it in`)
		}
	}
	return readSQL(stdin)
}

func readSQL(r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("reading the SQL from standard input: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", errors.New("no SQL on standard input")
	}
	return string(b), nil
}

// toFile runs write on stdout, or on a new file at path that appears whole only once write succeeds.
func toFile(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "" {
		return write(stdout)
	}
	f, err := durable.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := write(f); err != nil {
		return err
	}
	return f.Commit()
}

// writeParquet runs text's statements in order and writes the one that answers rows to a Parquet
// file at path, by DuckDB (every type native, nested ones included); the file appears whole or not
// at all.
func writeParquet(ctx context.Context, db *sql.DB, text, path string) error {
	s, err := openSession(ctx, db)
	if err != nil {
		return err
	}
	defer s.Close()
	var answer *statement
	for _, t := range splitSQL(text) {
		st, err := s.prepare(ctx, t)
		if errors.Is(err, errEmpty) {
			continue
		}
		if err != nil {
			return cleanSQLError(err)
		}
		if !st.rows {
			if _, err := s.conn.ExecContext(ctx, st.text); err != nil {
				return cleanSQLError(err)
			}
			continue
		}
		if answer != nil || !st.query {
			return errors.New("--format parquet writes the answer of one query: give one statement that returns rows (others may SET)")
		}
		answer = st
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		tmp := filepath.Join(filepath.Dir(abs), durable.TempPrefix+filepath.Base(abs))
		if _, err := s.conn.ExecContext(ctx, fmt.Sprintf("COPY (\n%s\n) TO '%s' (FORMAT parquet, COMPRESSION zstd)", st.text, strings.ReplaceAll(tmp, "'", "''"))); err != nil {
			os.Remove(tmp)
			return cleanSQLError(err)
		}
		if err := os.Rename(tmp, abs); err != nil {
			return err
		}
	}
	if answer == nil {
		return errors.New("--format parquet: no statement returns rows")
	}
	return nil
}
