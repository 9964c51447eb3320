// Package iceberg registers the lake's snapshot files as Apache Iceberg tables (through
// github.com/apache/iceberg-go and its SQL catalog), so engines other than ledgerlake's DuckDB —
// Trino, Spark, Snowflake, Athena, DuckDB's own iceberg extension — read the same record.
//
// No data is copied: each committed run's Parquet files are added to the stream's table as they are,
// one Iceberg snapshot per run and table, its summary naming the run (ledgerlake.run_id) and commit
// number (ledgerlake.commit). A snapshot stream's run replaces the table's files (the table is that
// run's snapshot); an incremental stream's run appends to them (the table is the history, as
// X_S_history in the warehouse). Time travel to a run is time travel to its Iceberg snapshot.
// Registration catches up: a run not yet registered (a registration that failed, a lake that existed
// before the catalog) is registered at the next start, in commit order.
package iceberg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	icebergio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // s3:// data and metadata files
	"github.com/apache/iceberg-go/table"
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx": a Postgres catalog
	_ "modernc.org/sqlite"             // the catalog's default database: a SQLite file, pure Go

	"github.com/ledgerlake/ledgerlake/internal/lake"
)

// Snapshot summary properties that tie an Iceberg snapshot to its ledgerlake run.
const (
	RunIDProperty  = "ledgerlake.run_id"
	CommitProperty = "ledgerlake.commit"
)

// Catalog is the SQL catalog holding one Iceberg table per stream table, in one namespace.
type Catalog struct {
	cat       *sqlcat.Catalog
	db        *sql.DB
	name      string // the catalog, as messages name it (a URL's password redacted)
	namespace table.Identifier
	location  string // where the lake is, as Iceberg names files: an absolute path or s3://bucket/prefix
	props     iceberggo.Properties
	fsys      icebergio.IO             // opened once: on s3, each opening builds an SDK client
	schemas   map[string]*arrow.Schema // file location: its Arrow schema (files never change)
}

// fs is the lake's file IO for Iceberg.
func (c *Catalog) fs(ctx context.Context) (icebergio.IO, error) {
	if c.fsys == nil {
		fsys, err := icebergio.LoadFS(ctx, c.props, c.location)
		if err != nil {
			return nil, err
		}
		c.fsys = fsys
	}
	return c.fsys, nil
}

// fileSchema reads the Arrow schema of the file at loc from its footer, once.
func (c *Catalog) fileSchema(ctx context.Context, loc string) (*arrow.Schema, error) {
	if sc, ok := c.schemas[loc]; ok {
		return sc, nil
	}
	fsys, err := c.fs(ctx)
	if err != nil {
		return nil, err
	}
	sc, err := fileSchema(fsys, loc)
	if err != nil {
		return nil, err
	}
	if c.schemas == nil {
		c.schemas = map[string]*arrow.Schema{}
	}
	c.schemas[loc] = sc
	return sc, nil
}

// Open opens (creating if needed) the catalog at uri — a SQLite file path, or a postgres:// URL
// (its password best left to PGPASSWORD or ~/.pgpass) — with tables for the lake at outputDir (a
// directory or an s3:// URL) in namespace.
func Open(ctx context.Context, uri, namespace, outputDir string) (*Catalog, error) {
	location, props, err := lakeLocation(outputDir)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(location, "s3://") {
		shareS3IO()
	}
	var (
		db      *sql.DB
		dialect sqlcat.SupportedDialect
	)
	switch {
	case strings.HasPrefix(uri, "postgres://") || strings.HasPrefix(uri, "postgresql://"):
		if db, err = sql.Open("pgx", uri); err != nil {
			return nil, fmt.Errorf("iceberg catalog %s: %w", Redact(uri), err)
		}
		dialect = sqlcat.Postgres
	case strings.Contains(uri, "://"):
		return nil, fmt.Errorf("iceberg.catalog %q: give the path of a SQLite file or a postgres:// URL", Redact(uri))
	default:
		if dir := filepath.Dir(uri); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
		// One connection, waiting on a busy file rather than failing: SQLite serialises writers anyway.
		if db, err = sql.Open("sqlite", uri+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"); err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		dialect = sqlcat.SQLite
	}
	cat, err := sqlcat.NewCatalog("ledgerlake", db, dialect, props)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("iceberg catalog %s: %w", Redact(uri), err)
	}
	ns := table.Identifier{namespace}
	if ok, err := cat.CheckNamespaceExists(ctx, ns); err != nil {
		db.Close()
		return nil, err
	} else if !ok {
		if err := cat.CreateNamespace(ctx, ns, nil); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
			db.Close()
			return nil, err
		}
	}
	return &Catalog{cat: cat, db: db, name: Redact(uri), namespace: ns, location: location, props: props}, nil
}

// ErrOtherLake means a table of the catalog's namespace holds another lake's files: two pipelines
// pointed at one catalog and namespace would otherwise mix their rows in one table.
var ErrOtherLake = errors.New("the Iceberg table belongs to another lake")

// owned fails with ErrOtherLake, naming both lakes, unless tbl lives in this lake (its location under
// the lake's _iceberg/, as create puts it).
func (c *Catalog) owned(tbl *table.Table, name string) error {
	if strings.HasPrefix(tbl.Location(), c.FileLocation("_iceberg/")) {
		return nil
	}
	return fmt.Errorf("%w: %s.%s in the catalog %s is located at %s, not in this lake (%s); give this pipeline its own iceberg.catalog or iceberg.namespace",
		ErrOtherLake, strings.Join(c.namespace, "."), name, c.name, tbl.Location(), c.location)
}

// Owns reports whether the SQLite catalog file at path holds tables of namespace and every one of
// them lives in the lake at outputDir: such a catalog (the default before catalogs were named for
// their warehouse) is this lake's to keep using. A missing file owns nothing.
func Owns(ctx context.Context, path, namespace, outputDir string) (bool, error) {
	if _, err := os.Stat(path); err != nil {
		return false, nil
	}
	location, props, err := lakeLocation(outputDir)
	if err != nil {
		return false, err
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return false, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	cat, err := sqlcat.NewCatalog("ledgerlake", db, sqlcat.SQLite, props)
	if err != nil {
		return false, fmt.Errorf("iceberg catalog %s: %w", path, err)
	}
	c := &Catalog{cat: cat, namespace: table.Identifier{namespace}, location: location}
	n := 0
	for ident, err := range cat.ListTables(ctx, c.namespace) {
		if errors.Is(err, catalog.ErrNoSuchNamespace) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		tbl, err := cat.LoadTable(ctx, ident)
		if err != nil {
			return false, err
		}
		if c.owned(tbl, ident[len(ident)-1]) != nil {
			return false, nil
		}
		n++
	}
	return n > 0, nil
}

// Redact is a catalog's name for messages: a URL's password replaced by xxxxx.
func Redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" {
		return uri
	}
	return u.Redacted()
}

// Close closes the catalog's database.
func (c *Catalog) Close() error { return c.db.Close() }

// lakeLocation is the lake's location as Iceberg's file IO names it, and the IO properties reaching
// it: an absolute path for a directory; for s3, the bucket and prefix, with the endpoint, region and
// addressing of the output_dir URL (credentials come from the AWS SDK's usual chain, as the lake's).
func lakeLocation(outputDir string) (string, iceberggo.Properties, error) {
	if !lake.IsURL(outputDir) {
		abs, err := filepath.Abs(outputDir)
		return abs, iceberggo.Properties{}, err
	}
	u, err := url.Parse(outputDir)
	if err != nil {
		return "", nil, err
	}
	if u.Scheme == "file" {
		return u.Path, iceberggo.Properties{}, nil
	}
	if u.Scheme != "s3" {
		return "", nil, fmt.Errorf("iceberg tables for a %s:// lake are not built in yet (s3:// and directories are); set iceberg.enabled: false", u.Scheme)
	}
	q := u.Query()
	props := iceberggo.Properties{}
	if e := q.Get("endpoint"); e != "" {
		props[icebergio.S3EndpointURL] = e
	}
	if r := q.Get("region"); r != "" {
		props[icebergio.S3Region] = r
	}
	if q.Get("use_path_style") == "true" {
		props[icebergio.S3ForceVirtualAddressing] = "false"
	}
	return "s3://" + u.Host + "/" + strings.Trim(u.Path, "/"), props, nil
}

// FileLocation is where Iceberg finds a lake file (a manifest's relative path).
func (c *Catalog) FileLocation(rel string) string {
	return strings.TrimSuffix(c.location, "/") + "/" + rel
}

// RelPath is the lake-relative path of an Iceberg data file location ("" if outside the lake).
func (c *Catalog) RelPath(location string) string {
	prefix := strings.TrimSuffix(c.location, "/") + "/"
	if !strings.HasPrefix(location, prefix) {
		return ""
	}
	return strings.TrimPrefix(location, prefix)
}

// Table loads the Iceberg table of a stream table (catalog.ErrNoSuchTable if it was never registered).
func (c *Catalog) Table(ctx context.Context, name string) (*table.Table, error) {
	return c.cat.LoadTable(ctx, append(c.namespace[:len(c.namespace):len(c.namespace)], name))
}

// Registered is what Register did.
type Registered struct {
	Snapshots int // Iceberg snapshots committed (one per run and table)
	Files     int
	// Reregistered names the tables whose catalog entry named metadata the lake no longer holds: each
	// was registered again from every run.
	Reregistered []string
}

// Register adds every run's files that the catalog does not hold yet, oldest commit first. A table
// whose registration fails (a type change Iceberg cannot promote, say) is named in the error and the
// others go on; the lake and the warehouse have every row either way.
func (c *Catalog) Register(ctx context.Context, ms []*lake.Manifest) (Registered, error) {
	ctx = withSharedIO(ctx)
	ms = append([]*lake.Manifest(nil), ms...)
	sort.SliceStable(ms, func(i, j int) bool {
		if ms[i].Commit != ms[j].Commit {
			return ms[i].Commit < ms[j].Commit
		}
		return ms[i].RunID < ms[j].RunID
	})
	var names []string
	info := map[string]lake.TableInfo{}
	for _, m := range ms {
		for _, s := range m.Streams {
			if s.Status != "ok" {
				continue
			}
			for _, t := range s.Tables {
				if _, ok := info[t.Name]; !ok {
					names = append(names, t.Name)
				}
				info[t.Name] = t
			}
		}
	}
	sort.Strings(names)
	var out Registered
	var errs []error
	for _, name := range names {
		if err := c.registerTable(ctx, name, info[name], ms, &out); err != nil {
			errs = append(errs, fmt.Errorf("iceberg table %s: %w", name, err))
		}
	}
	return out, errors.Join(errs...)
}

// registerTable registers name's files of each run that its Iceberg table lacks. A run whose types
// Iceberg cannot promote the table to (a number become text: Iceberg allows only int to long, float
// to double and wider decimals), or whose files number a column otherwise than the table (a table
// made before the lake's files carried field ids), rebuilds it: the old table is kept, renamed
// <name>__until_<commit>, for time travel to the runs it held, and a new one is made with the widest
// types of every run and the files' field ids.
func (c *Catalog) registerTable(ctx context.Context, name string, ti lake.TableInfo, ms []*lake.Manifest, out *Registered) error {
	tbl, err := c.Table(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		// The entry names metadata the lake no longer holds (a lake restored from a copy without its
		// catalog, or its _iceberg/ removed). The lake is what a table is made from: the entry goes
		// and the table is registered again from every run, rather than every run failing from now on.
		if err := c.cat.DropTable(ctx, c.ident(name)); err != nil {
			return fmt.Errorf("dropping the entry of a table whose metadata is gone: %w", err)
		}
		out.Reregistered = append(out.Reregistered, name)
		tbl, err = nil, nil
	}
	if err != nil && !errors.Is(err, catalog.ErrNoSuchTable) {
		return err
	}
	done := map[string]bool{}
	if tbl != nil {
		if err := c.owned(tbl, name); err != nil {
			return err
		}
		for _, s := range tbl.Metadata().Snapshots() {
			if s.Summary != nil {
				done[s.Summary.Properties[RunIDProperty]] = true
			}
		}
	}
	for i, m := range ms {
		if done[m.RunID] {
			continue
		}
		err := c.addRun(ctx, &tbl, m, name, ti, out)
		if errors.Is(err, errCannotPromote) || errors.Is(err, errIDsDiffer) {
			if tbl, err = c.rebuild(ctx, name, ms[:i+1], m, err); err != nil {
				return fmt.Errorf("run %s: %w", m.RunID, err)
			}
			for _, r := range ms[:i+1] {
				if err = c.addRun(ctx, &tbl, r, name, ti, out); err != nil {
					break
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// runFiles are the locations of m's files of table name (none when its stream failed).
func (c *Catalog) runFiles(m *lake.Manifest, name string) []string {
	if !streamOK(m, name) {
		return nil
	}
	var files []string
	for _, f := range m.Files {
		if f.Table == name {
			files = append(files, c.FileLocation(f.Path))
		}
	}
	return files
}

// create makes the table with schema (format version 2), located under the lake's _iceberg/, numbered
// with the files' field ids when they carry them (CreateTable numbers afresh: the files' ids are
// committed over them before any file is added).
func (c *Catalog) create(ctx context.Context, name string, schema *arrow.Schema) (*table.Table, error) {
	sc, ids, err := icebergSchema(schema)
	if err != nil {
		return nil, err
	}
	tbl, err := c.cat.CreateTable(ctx, c.ident(name), sc,
		catalog.WithLocation(c.FileLocation("_iceberg/"+name)),
		catalog.WithProperties(iceberggo.Properties{"format-version": "2", "ledgerlake.table": name}))
	if err != nil {
		return nil, fmt.Errorf("creating the table: %w", err)
	}
	if ids {
		return c.setSchema(ctx, tbl, name, sc)
	}
	return tbl, nil
}

func (c *Catalog) ident(name string) table.Identifier {
	return append(c.namespace[:len(c.namespace):len(c.namespace)], name)
}

// rebuild renames old aside and creates name anew with the widest schema of the runs in ms; why is
// what made the table unable to take m's files.
func (c *Catalog) rebuild(ctx context.Context, name string, ms []*lake.Manifest, m *lake.Manifest, why error) (*table.Table, error) {
	var all []string
	for _, r := range ms {
		all = append(all, c.runFiles(r, name)...)
	}
	schema, err := c.unionSchema(ctx, all)
	if err != nil {
		return nil, err
	}
	aside := fmt.Sprintf("%s__until_%d", name, m.Commit-1)
	if _, err := c.cat.RenameTable(ctx, c.ident(name), c.ident(aside)); err != nil {
		return nil, fmt.Errorf("rebuilding (%v); keeping the old table as %s: %w", why, aside, err)
	}
	return c.create(ctx, name, schema)
}

// addRun commits m's files of the table as one snapshot (creating the table, *tbl nil, with their
// schema): replacing the table's files for a snapshot stream, appended for an incremental one. A type
// the table cannot be promoted to fails with errCannotPromote, nothing committed. Files whose schema is not the table's (older types, or
// columns added later) are registered through conformed copies (see conform).
func (c *Catalog) addRun(ctx context.Context, tbl **table.Table, m *lake.Manifest, name string, ti lake.TableInfo, out *Registered) error {
	files := c.runFiles(m, name)
	if len(files) == 0 {
		return nil
	}
	schema, err := c.unionSchema(ctx, files)
	if err != nil {
		return fmt.Errorf("run %s: %w", m.RunID, err)
	}
	if *tbl == nil {
		if *tbl, err = c.create(ctx, name, schema); err != nil {
			return fmt.Errorf("run %s: %w", m.RunID, err)
		}
	}
	sc, ids, err := icebergSchema(schema)
	if err != nil {
		return fmt.Errorf("run %s: %w", m.RunID, err)
	}
	if ids {
		*tbl, err = c.evolveByID(ctx, *tbl, name, sc)
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", m.RunID, err)
	}
	t := *tbl
	tx := t.NewTransaction()
	if !ids {
		err = evolve(t, tx, schema)
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", m.RunID, err)
	}
	staged, err := tx.StagedTable()
	if err != nil {
		return err
	}
	if files, err = c.conform(ctx, name, files, staged.Schema()); err != nil {
		return fmt.Errorf("run %s: %w", m.RunID, err)
	}
	props := iceberggo.Properties{RunIDProperty: m.RunID, CommitProperty: strconv.Itoa(m.Commit)}
	var old []string
	if !ti.Incremental && t.CurrentSnapshot() != nil {
		if old, err = dataFiles(ctx, t); err != nil {
			return err
		}
	}
	if len(old) > 0 {
		err = tx.ReplaceDataFiles(ctx, old, files, props)
	} else {
		err = tx.AddFiles(ctx, files, props, false)
	}
	if err != nil {
		return fmt.Errorf("run %s: adding %d files: %w", m.RunID, len(files), err)
	}
	if *tbl, err = tx.Commit(ctx); err != nil {
		return fmt.Errorf("run %s: commit: %w", m.RunID, err)
	}
	out.Snapshots++
	out.Files += len(files)
	return nil
}

// streamOK reports whether m's stream that wrote table succeeded (a failed stream's files are not
// listed, but a failed stream means its table keeps its previous state).
func streamOK(m *lake.Manifest, name string) bool {
	for _, s := range m.Streams {
		for _, t := range s.Tables {
			if t.Name == name {
				return s.Status == "ok"
			}
		}
	}
	return false
}

// errCannotPromote means a run's type for a column is wider than the table's in a way Iceberg's
// schema evolution forbids (only int to long, float to double and wider decimals are allowed).
var errCannotPromote = errors.New("a type change Iceberg cannot promote")

// evolve brings the table's schema to hold a run's files without field ids (written before the lake
// numbered its columns): columns the table lacks are added, types
// Iceberg may promote are promoted, and types narrower than the table's stay the table's (the files
// are conformed to them). The name mapping is kept in step, so files without field ids keep
// resolving by name. A column wider than Iceberg can promote to fails with errCannotPromote.
func evolve(tbl *table.Table, tx *table.Transaction, schema *arrow.Schema) error {
	run, err := table.ArrowSchemaToIcebergWithFreshIDs(schema, false)
	if err != nil {
		return err
	}
	current := tbl.Schema()
	var fields []iceberggo.NestedField
	for _, f := range run.Fields() {
		have, ok := current.FindFieldByName(f.Name)
		switch {
		case !ok || sameType(have.Type, f.Type) || promotable(have.Type, f.Type):
		case castable(f.Type, have.Type):
			f.Type = have.Type
		default:
			return fmt.Errorf("%w: column %s is %s in the table, %s in the run", errCannotPromote, f.Name, have.Type, f.Type)
		}
		fields = append(fields, f)
	}
	var opts []table.UpdateSchemaOption
	if nm := tbl.NameMapping(); nm != nil {
		opts = append(opts, table.WithNameMapping(nm))
	}
	return tx.UpdateSchema(true, false, opts...).UnionByNameWith(iceberggo.NewSchema(0, fields...)).Commit()
}

// promotable reports whether Iceberg allows a column of type from to become type to.
func promotable(from, to iceberggo.Type) bool {
	switch f := from.(type) {
	case iceberggo.Int32Type:
		return to.Equals(iceberggo.PrimitiveTypes.Int64)
	case iceberggo.Float32Type:
		return to.Equals(iceberggo.PrimitiveTypes.Float64)
	case iceberggo.DecimalType:
		t, ok := to.(iceberggo.DecimalType)
		return ok && t.Scale() == f.Scale() && t.Precision() >= f.Precision()
	}
	return false
}

// castable reports whether values of type narrow convert to type wide exactly, as the warehouse
// widens them (a number to a decimal or text, a date to a timestamp, anything to text).
func castable(narrow, wide iceberggo.Type) bool {
	if narrow.Equals(wide) || promotable(narrow, wide) {
		return true
	}
	switch wide.(type) {
	case iceberggo.StringType:
		_, nested := narrow.(iceberggo.NestedType)
		return !nested
	case iceberggo.DecimalType:
		switch n := narrow.(type) {
		case iceberggo.Int32Type, iceberggo.Int64Type:
			return true
		case iceberggo.DecimalType:
			// Every value fits only with as many fractional and integer digits: a declared DECIMAL
			// widened to a finer scale is not held by the table's coarser one.
			w := wide.(iceberggo.DecimalType)
			return w.Scale() >= n.Scale() && w.Precision()-w.Scale() >= n.Precision()-n.Scale()
		}
	case iceberggo.Float64Type:
		switch narrow.(type) {
		case iceberggo.Int32Type, iceberggo.Int64Type, iceberggo.Float32Type:
			return true
		}
	case iceberggo.TimestampType, iceberggo.TimestampTzType:
		_, ok := narrow.(iceberggo.DateType)
		return ok
	}
	return false
}

// dataFiles lists the data files of the table's current snapshot.
func dataFiles(ctx context.Context, tbl *table.Table) ([]string, error) {
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.File.FilePath()
	}
	return out, nil
}

// conform returns files with every file whose schema differs from target replaced by a copy that
// has target's columns, types and field ids (a reader that ignores name mapping resolves them): values
// cast exactly as the warehouse casts them (BIGINT to DECIMAL or VARCHAR), absent columns null. The copies live under _iceberg/<table>/data/, named after the
// file they conform; Iceberg reads them, the lake's manifests keep listing the originals.
func (c *Catalog) conform(ctx context.Context, name string, files []string, want *iceberggo.Schema) ([]string, error) {
	fsys, err := c.fs(ctx)
	if err != nil {
		return nil, err
	}
	target, err := table.SchemaToArrowSchema(want, nil, true, false)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(files))
	for i, loc := range files {
		sc, err := c.fileSchema(ctx, loc)
		if err != nil {
			return nil, err
		}
		if same, err := sameColumns(sc, want); err != nil {
			return nil, err
		} else if same {
			out[i] = loc
			continue
		}
		dst := c.FileLocation("_iceberg/" + name + "/data/conformed-" + strings.ReplaceAll(c.RelPath(loc), "/", "__"))
		if err := rewrite(ctx, fsys, loc, dst, target); err != nil {
			return nil, fmt.Errorf("conforming %s to the table's types: %w", c.RelPath(loc), err)
		}
		out[i] = dst
	}
	return out, nil
}

// sameColumns reports whether a file's columns are the table's, with the same Iceberg types (order
// aside, and the names Arrow gives list elements and map entries: the table resolves by name).
func sameColumns(sc *arrow.Schema, want *iceberggo.Schema) (bool, error) {
	got, err := table.ArrowSchemaToIcebergWithFreshIDs(sc, false)
	if err != nil {
		return false, err
	}
	if len(got.Fields()) != len(want.Fields()) {
		return false, nil
	}
	for _, f := range want.Fields() {
		g, ok := got.FindFieldByName(f.Name)
		if !ok || !sameType(g.Type, f.Type) {
			return false, nil
		}
	}
	return true, nil
}

// sameType compares Iceberg types by shape, not by the field ids fresh conversions number apart.
func sameType(a, b iceberggo.Type) bool {
	switch x := a.(type) {
	case *iceberggo.ListType:
		y, ok := b.(*iceberggo.ListType)
		return ok && sameType(x.Element, y.Element)
	case *iceberggo.MapType:
		y, ok := b.(*iceberggo.MapType)
		return ok && sameType(x.KeyType, y.KeyType) && sameType(x.ValueType, y.ValueType)
	case *iceberggo.StructType:
		y, ok := b.(*iceberggo.StructType)
		if !ok || len(x.FieldList) != len(y.FieldList) {
			return false
		}
		for i := range x.FieldList {
			if x.FieldList[i].Name != y.FieldList[i].Name || !sameType(x.FieldList[i].Type, y.FieldList[i].Type) {
				return false
			}
		}
		return true
	}
	return a.Equals(b)
}

// rewrite writes src's rows to dst with target's columns, cast or null.
func rewrite(ctx context.Context, fsys icebergio.IO, src, dst string, target *arrow.Schema) error {
	wfs, ok := fsys.(icebergio.WriteFileIO)
	if !ok {
		return fmt.Errorf("the lake's file IO cannot write")
	}
	f, err := fsys.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		return err
	}
	defer pr.Close()
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return err
	}
	in, err := fr.ReadTable(ctx)
	if err != nil {
		return err
	}
	defer in.Release()
	rows := int(in.NumRows())
	cols := make([]arrow.Column, target.NumFields())
	for i, fld := range target.Fields() {
		var arr arrow.Array
		if idx := in.Schema().FieldIndices(fld.Name); len(idx) == 1 {
			whole, err := array.Concatenate(in.Column(idx[0]).Data().Chunks(), memory.DefaultAllocator)
			if err != nil {
				return err
			}
			if arrow.TypeEqual(whole.DataType(), fld.Type) {
				arr = whole
			} else {
				arr, err = castTo(ctx, whole, fld.Type)
				whole.Release()
				if err != nil {
					return fmt.Errorf("column %s: %w", fld.Name, err)
				}
			}
		} else {
			arr = array.MakeArrayOfNull(memory.DefaultAllocator, fld.Type, rows)
		}
		chunked := arrow.NewChunked(fld.Type, []arrow.Array{arr})
		arr.Release()
		cols[i] = *arrow.NewColumn(fld, chunked)
		chunked.Release()
	}
	tbl := array.NewTable(target, cols, int64(rows))
	defer tbl.Release()
	w, err := wfs.Create(dst)
	if err != nil {
		return err
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCreatedBy("ledgerlake"))
	// WriteTable closes w once the footer is written: for a bucket, that completes the upload.
	if err := pqarrow.WriteTable(tbl, w, 32*1024, props, pqarrow.DefaultWriterProps()); err != nil {
		w.Close()
		return err
	}
	return nil
}

// castTo casts as the warehouse does: arrow's kernels, and decimals to text by hand, as DuckDB prints
// them ("12.50"), which arrow-go has no kernel for.
func castTo(ctx context.Context, a arrow.Array, to arrow.DataType) (arrow.Array, error) {
	d, ok := a.(*array.Decimal128)
	if !ok || to.ID() != arrow.STRING {
		return compute.CastToType(ctx, a, to)
	}
	scale := d.DataType().(*arrow.Decimal128Type).Scale
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	for i := range d.Len() {
		if d.IsNull(i) {
			b.AppendNull()
			continue
		}
		b.Append(d.Value(i).ToString(scale))
	}
	return b.NewArray(), nil
}

// unionSchema reads the Arrow schema of each file (files of one run may differ: a type widened
// mid-run) and merges them, later files' types winning, new columns appended.
func (c *Catalog) unionSchema(ctx context.Context, files []string) (*arrow.Schema, error) {
	var fields []arrow.Field
	at := map[string]int{}
	for _, loc := range files {
		sc, err := c.fileSchema(ctx, loc)
		if err != nil {
			return nil, err
		}
		for _, f := range sc.Fields() {
			if i, ok := at[f.Name]; ok {
				fields[i] = f
				continue
			}
			at[f.Name] = len(fields)
			fields = append(fields, f)
		}
	}
	return arrow.NewSchema(fields, nil), nil
}

func fileSchema(fsys icebergio.IO, loc string) (*arrow.Schema, error) {
	f, err := fsys.Open(loc)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rdr, err := file.NewParquetReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	defer rdr.Close()
	return pqarrow.FromParquet(rdr.MetaData().Schema, nil, rdr.MetaData().KeyValueMetadata())
}
