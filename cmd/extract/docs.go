package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/site"
	"github.com/ledgerlake/ledgerlake/schemas"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

func docsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("docs", "docs [--db FILE] [--config FILE] [--out FILE] | docs --html DIR [--config FILE | --db FILE [--lake DIR|URL]] [--runs 30]",
		"Write Markdown documentation of every table: the declared schemas (columns, types, descriptions), the SQL\n"+
			"models and data tests, and, with --db, every column actually in the warehouse (inferred ones included). The\n"+
			"tenant-defined fields the models read show where each is read from: in the pipeline given by --config, else\n"+
			"where the warehouse's models last read it, else the defaults.\n\n"+
			"With --html DIR, write DIR/index.html instead: one self-contained page to open from disk (nothing is fetched\n"+
			"when it is viewed) with every table and column (type, description, key, row count, last change, sample rows),\n"+
			"the lineage graph, the run history with charts, the data tests' last results, schema changes and, given the\n"+
			"lake, each run's manifest with sha256 and the last extract verify. extract serve shows the same page live.", stderr)
	db := fs.String("db", "", "warehouse to document as loaded (optional for Markdown)")
	out := fs.String("out", "", "write Markdown to this file instead of stdout")
	html := fs.String("html", "", "write the HTML site into this directory (index.html)")
	src := siteFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *html != "" {
		src.db = cmp.Or(*db, src.db)
		return writeSite(ctx, src, *html, stdout, stderr)
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(stderr, "extract docs:", err)
			return exitFailed
		}
		defer f.Close()
		w = f
	}
	fields, err := docFields(ctx, src.config, *db)
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	if err := writeDocs(ctx, w, *db, fields); err != nil {
		fmt.Fprintln(stderr, "extract docs:", err)
		return exitFailed
	}
	return exitOK
}

// siteSource says where the site's warehouse and lake are.
type siteSource struct {
	db, lake, spool, config string
	runs                    int // the newest runs in the history
}

// siteFlags adds the flags that name the warehouse and lake of the site (--db is the caller's).
func siteFlags(fs *flag.FlagSet) *siteSource {
	src := &siteSource{}
	fs.StringVar(&src.config, "config", "", "pipeline file whose warehouse and lake (output_dir) to show")
	fs.StringVar(&src.lake, "lake", "", "lake (output directory or object-store URL) whose manifests and last verify to show")
	fs.IntVar(&src.runs, "runs", 30, "runs in the history: the newest N")
	return src
}

// resolve fills db, lake and spool from --config where given and checks them: -1 to go on, or the exit
// code after a message on stderr (no warehouse named or there, no such lake, --runs below 1).
func (src *siteSource) resolve(cmdName string, stderr io.Writer) int {
	if src.config != "" {
		cfg, err := config.LoadForReading(src.config)
		if err != nil {
			return exitCodeFor(err, stderr)
		}
		src.db, src.lake, src.spool = cmp.Or(src.db, cfg.Warehouse), cmp.Or(src.lake, cfg.OutputDir), pipeline.SpoolDir(cfg)
	}
	if src.db == "" {
		fmt.Fprintf(stderr, "extract %s: give --config FILE, or --db FILE (and --lake DIR|URL for the manifests)\n", cmdName)
		return exitUsage
	}
	if _, err := os.Stat(src.db); err != nil {
		fmt.Fprintf(stderr, "extract %s: warehouse %v\n", cmdName, err)
		return exitFailed
	}
	if src.lake != "" && !lake.IsURL(src.lake) {
		if _, err := os.Stat(src.lake); err != nil {
			fmt.Fprintf(stderr, "extract %s: lake %v\n", cmdName, err)
			return exitFailed
		}
	}
	if src.runs < 1 {
		fmt.Fprintf(stderr, "extract %s: --runs must be at least 1\n", cmdName)
		return exitUsage
	}
	return -1
}

// prepare resolves src and opens its lake, if one is named (the caller closes it): -1 to go on, or
// the exit code after a message on stderr.
func (src *siteSource) prepare(ctx context.Context, cmdName string, stderr io.Writer) (lake.Store, int) {
	if code := src.resolve(cmdName, stderr); code >= 0 {
		return nil, code
	}
	if src.lake == "" {
		return nil, -1
	}
	st, err := lake.OpenStore(ctx, src.lake, src.spool)
	if err != nil {
		fmt.Fprintf(stderr, "extract %s: %v\n", cmdName, err)
		return nil, exitFailed
	}
	return st, -1
}

// collect reads the site from the warehouse, opened read-only for the call, and st (may be nil).
func (src *siteSource) collect(ctx context.Context, st lake.Store) (*site.Site, error) {
	wh, err := duckdb.OpenReadOnly(src.db)
	if err != nil {
		return nil, err
	}
	defer wh.Close()
	return site.Collect(ctx, wh.DB, site.Options{Runs: src.runs, Lake: st, Warehouse: src.db, LakeName: src.lake})
}

// writeSite writes the HTML site of src into dir.
func writeSite(ctx context.Context, src *siteSource, dir string, stdout, stderr io.Writer) int {
	st, code := src.prepare(ctx, "docs", stderr)
	if code >= 0 {
		return code
	}
	if st != nil {
		defer st.Close()
	}
	s, p, err := src.write(ctx, st, dir)
	if err != nil {
		fmt.Fprintln(stderr, "extract docs:", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "wrote %s: %d tables, %d runs, %d data tests (%d failing)\nopen %s\n", p, len(s.Tables), len(s.Runs), len(s.Tests), len(s.Failing()), fileURL(p))
	return exitOK
}

// write collects the site of src and st and writes it into dir, returning it and its page's path.
func (src *siteSource) write(ctx context.Context, st lake.Store, dir string) (*site.Site, string, error) {
	s, err := src.collect(ctx, st)
	if err != nil {
		return nil, "", err
	}
	p, err := s.Write(dir)
	return s, p, err
}

// publishSite writes the docs site of cfg's warehouse and lake (the newest 30 runs) into dir and
// returns its page's path.
func publishSite(ctx context.Context, cfg *config.Config, dir string) (string, error) {
	src := &siteSource{db: cfg.Warehouse, lake: cfg.OutputDir, spool: pipeline.SpoolDir(cfg), runs: 30}
	st, err := lake.OpenStore(ctx, src.lake, src.spool)
	if err != nil {
		return "", err
	}
	defer st.Close()
	_, p, err := src.write(ctx, st, dir)
	return p, err
}

// fileURL is the file:// address a browser opens p at.
func fileURL(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		abs = p
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }

// docFields is where the documented fields come from: the pipeline's mapping (cfgPath), else the one
// the warehouse's models were last built with (dbPath), else the defaults.
func docFields(ctx context.Context, cfgPath, dbPath string) (map[fieldmap.Ref]fieldmap.Source, error) {
	if cfgPath != "" {
		cfg, err := config.LoadForReading(cfgPath)
		if err != nil {
			return nil, err
		}
		return cfg.Fields().Sources(), nil
	}
	if dbPath != "" {
		wh, err := duckdb.OpenReadOnly(dbPath)
		if err != nil {
			return nil, err
		}
		defer wh.Close()
		if built, err := models.BuiltFields(ctx, wh.DB); err != nil || built != nil {
			return built, err
		}
	}
	return fieldmap.Defaults().Sources(), nil
}

// writeDocs renders the documentation, with fields as the tenant-defined fields' sources; dbPath may
// be empty.
func writeDocs(ctx context.Context, w io.Writer, dbPath string, fields map[fieldmap.Ref]fieldmap.Source) error {
	tables, err := schemas.All()
	if err != nil {
		return err
	}
	ms, tests, err := models.Load()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "# ledgerlake warehouse tables\n\nEvery stream is a current-state table `<source>_<stream>` with its history in `<table>_history`: a\n"+
		"snapshot's newest run, a windowed stream's newest fetch of every date window, or the newest fetch of every\n"+
		"key where a key is in force (no row is ever collapsed; rows sharing a key are reported). Every row carries\n"+
		"`_run_id` and `_extracted_at` (TIMESTAMPTZ); rows of windowed streams carry `_window_start` and `_window_end`\n"+
		"(the window as sent), and rows of the invoice streams `_evidence_sha256`, naming the stored response body\n"+
		"they came from (`extract evidence SHA256` prints it).")
	fmt.Fprintln(w, "\n## Declared streams")
	for _, t := range tables {
		ident := "Key: " + strings.Join(t.Key, ", ")
		if len(t.Key) == 0 {
			ident = "Identified by " + strings.Join(t.Ident, ", ") + " (an assumption: no key is in force, no row is collapsed by it)"
		}
		fmt.Fprintf(w, "\n### %s\n\n%s\n\n%s\n\n| column | type | description |\n|---|---|---|\n", t.Name(), t.Description, ident)
		for _, c := range t.Columns {
			fmt.Fprintf(w, "| %s | %s | %s |\n", c.Name, schemas.MustType(c.Type), cell(c.Description))
		}
	}
	fmt.Fprintln(w, "\n## Tenant-defined fields the models read\n\nGSAPI's datasync exports and journals name their fields per tenant. The models read these through\n"+
		"the names below, each from a column, an expression over the table's columns, the parent record's field or a\n"+
		"constant, as `sources.gsapi.fields.<stream>` says (`extract fields --suggest` proposes them from the data).\n\n"+
		"| table | model's name | read from | config key | what it holds |\n|---|---|---|---|---|")
	for _, r := range fieldmap.Order {
		from := "`" + cell(fields[r].Entry) + "`"
		if fields[r].Default {
			from += " (default)"
		}
		fmt.Fprintf(w, "| %s | %s | %s | `%s` | %s |\n", r.Table, r.Field, from, fieldmap.ConfigKey(r.Table, r.Field), cell(fieldmap.Fields[r.Table][r.Field].Description))
	}
	fmt.Fprintln(w, "\n## SQL models (sql/)")
	for _, m := range append(ms, tests...) {
		fmt.Fprintf(w, "\n### %s (%s)\n\n%s\n", m.Name, m.Kind, m.Description)
		if len(m.Deps)+len(m.Sources) > 0 {
			fmt.Fprintf(w, "\nReads: %s\n", strings.Join(append(append([]string{}, m.Deps...), m.Sources...), ", "))
		}
	}
	if dbPath == "" {
		return nil
	}
	wh, err := duckdb.OpenReadOnly(dbPath)
	if err != nil {
		return err
	}
	defer wh.Close()
	rows, err := wh.DB.QueryContext(ctx, `SELECT table_name, column_name, data_type FROM duckdb_columns()
		WHERE NOT internal AND table_name NOT LIKE '%\_history' ESCAPE '\' ORDER BY table_name, column_index`)
	if err != nil {
		return err
	}
	defer rows.Close()
	fmt.Fprintf(w, "\n## As loaded in %s\n", dbPath)
	last := ""
	for rows.Next() {
		var t, c, ty string
		if err := rows.Scan(&t, &c, &ty); err != nil {
			return err
		}
		if t != last {
			fmt.Fprintf(w, "\n### %s\n\n| column | type |\n|---|---|\n", t)
			last = t
		}
		fmt.Fprintf(w, "| %s | %s |\n", c, ty)
	}
	return rows.Err()
}
