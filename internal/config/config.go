// Package config reads pipeline YAML files: ${ENV_VAR} in any value (secrets come from the environment,
// never from the file), unknown keys refused so typos cannot pass silently, and validation that names
// the offending key.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ledgerlake/ledgerlake/schemas"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// DefaultWarehouseMemoryLimit is DuckDB's memory_limit while loading unless the config sets one: the
// load's peak RSS follows the limit while its time does not, down to a limit where the widest table
// runs out of memory, hence the retry (figures: bench/README.md, "Figures behind tuned constants").
const DefaultWarehouseMemoryLimit = "96MB"

// RetryWarehouseMemoryLimit is the limit a load that ran out of the default one is tried again with.
const RetryWarehouseMemoryLimit = "768MB"

var memorySize = regexp.MustCompile(`^(?i)\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$`)

// Config is one pipeline file. Every key documents itself: `extract config` (and docs/config.md) is
// generated from these types — each field's doc comment says what it does, its `example` tag shows a
// value, and its default is what validate fills in (or its `default` tag where that depends on
// something else). A field without a doc comment or an example fails the config tests.
type Config struct {
	// OutputDir is the lake: Parquet snapshots, manifests, evidence, watermarks and checkpoints. A
	// directory, or an object-store URL (s3://bucket/prefix; the credentials come from the provider's
	// usual chain, never from this file).
	OutputDir string `yaml:"output_dir" example:"s3://acme-lake/ledgerlake?region=eu-north-1"`
	// Warehouse is the DuckDB file the runs load and the SQL models are built in; derived from the
	// lake, so a lost one is rebuilt by the next run.
	Warehouse string `yaml:"warehouse" example:"/data/warehouse.duckdb"`
	// Sources are the APIs to extract; a source left out is not run.
	Sources Sources `yaml:"sources"`
	// Concurrency is how many streams run at once. The per-host limits bound the requests; more
	// streams at once keep the small ones from queueing behind the long ones.
	Concurrency int `yaml:"concurrency" example:"4"`
	// PerHostConcurrency is the ceiling of requests in flight to one API host: within it the limit is
	// found per host, growing while the host keeps up and falling back on 429, 503 or slowness.
	PerHostConcurrency int `yaml:"per_host_concurrency" example:"16"`
	// PerHostRate caps the requests per second to one API host (default unlimited): set it to what
	// your contract states; it is a hard cap, and 429 answers slow the host down anyway.
	PerHostRate float64 `yaml:"per_host_rate" example:"10"`
	// WarehouseMemoryLimit is DuckDB's memory_limit while loading (a load that runs out of the default
	// is tried again once at 768MB; DuckDB spills to disk beyond the limit). A limit set here is kept
	// to: it bounds the run's peak memory.
	WarehouseMemoryLimit string `yaml:"warehouse_memory_limit" example:"512MB"`
	// Iceberg registers the lake's snapshots as Apache Iceberg tables, for other engines.
	Iceberg Iceberg `yaml:"iceberg"`
	// DocsHTML, when set, is a directory where each run leaves the docs site (index.html, as extract docs
	// --html writes it): the page of tables, lineage, runs, data tests and manifests, kept current.
	DocsHTML string `yaml:"docs_html" example:"data/site"`
	// Limits bound the waits, sizes, pages and shrinks a server can cause (top-level keys).
	Limits `yaml:",inline"`

	fields fieldmap.Mapping
	vars   []string // the environment variables the file's values named, resolved
}

// Iceberg configures the Iceberg tables that mirror the lake for other engines.
type Iceberg struct {
	// Enabled turns the registration off with false.
	Enabled *bool `yaml:"enabled" default:"true" example:"false"`
	// Catalog is the SQL catalog: a SQLite file, or a postgres:// URL shared by every engine (the
	// password in PGPASSWORD or ~/.pgpass, never here).
	Catalog string `yaml:"catalog" default:"<warehouse name>.iceberg.db beside the warehouse" example:"postgres://ledgerlake@db.internal/lake"`
	// Namespace holds the tables.
	Namespace string `yaml:"namespace" example:"finance"`
}

// Variables are the environment variables the file's values named and that were resolved (names
// only: their values may be secrets).
func (c *Config) Variables() []string { return slices.Clone(c.vars) }

// IcebergCatalog is the catalog's SQLite file: iceberg.catalog, else one named for the warehouse,
// beside it (warehouse.duckdb: warehouse.iceberg.db), so pipelines whose warehouses share a folder
// never share a catalog.
func (c *Config) IcebergCatalog() string {
	if c.Iceberg.Catalog != "" {
		return c.Iceberg.Catalog
	}
	base := strings.TrimSuffix(filepath.Base(c.Warehouse), filepath.Ext(c.Warehouse))
	return filepath.Join(filepath.Dir(c.Warehouse), base+".iceberg.db")
}

// LegacyIcebergCatalog is the default catalog before IcebergCatalog's, iceberg.db beside the
// warehouse, shared by every warehouse in the folder ("" when iceberg.catalog is set).
func (c *Config) LegacyIcebergCatalog() string {
	if c.Iceberg.Catalog != "" {
		return ""
	}
	return filepath.Join(filepath.Dir(c.Warehouse), "iceberg.db")
}

// IcebergNamespace is iceberg.namespace, else ledgerlake.
func (c *Config) IcebergNamespace() string {
	if c.Iceberg.Namespace != "" {
		return c.Iceberg.Namespace
	}
	return "ledgerlake"
}

// On reports whether the Iceberg tables are kept.
func (i Iceberg) On() bool { return i.Enabled == nil || *i.Enabled }

// Fields is where each SQL model field comes from: sql/fieldmap/fields.yaml's defaults with the pipeline's
// sources.gsapi.fields laid over them (the only source with tenant-defined fields), as validated.
func (c *Config) Fields() fieldmap.Mapping {
	if c.fields == nil { // a config built by hand, or without a gsapi source: the defaults
		c.fields, _ = fieldmap.NewMapping("gsapi", nil)
	}
	return c.fields
}

// Sources are the configured APIs; a nil source is not run.
type Sources struct {
	// Signicat is the Signicat Account Management API: organisations, accounts, contacts, invoices.
	Signicat *Signicat `yaml:"signicat"`
	// GSAPI is the Good Sign GSAPI: datasync exports, datatables, invoice journals and lists.
	GSAPI *GSAPI `yaml:"gsapi"`
}

// Signicat configures the Account Management API source.
type Signicat struct {
	// BaseURL is the API's address (https; plain http only for loopback hosts such as the sandbox).
	BaseURL string `yaml:"base_url" required:"true" example:"https://api.signicat.com/account-management"`
	// TokenURL is the OAuth 2.0 token endpoint of the client-credentials flow.
	TokenURL string `yaml:"token_url" required:"true" example:"https://api.signicat.com/auth/open/connect/token"`
	// ClientID is an organisation-level API client (its id starts with org-).
	ClientID string `yaml:"client_id" required:"true" secret:"true" example:"${SIGNICAT_CLIENT_ID}"`
	// ClientSecret is that client's secret.
	ClientSecret Secret `yaml:"client_secret" required:"true" secret:"true" example:"${SIGNICAT_CLIENT_SECRET}"`
	// OrganizationID is your organisation (starts with o-), sent as Signicat-OrganizationId on the
	// invoice endpoints.
	OrganizationID string `yaml:"organization_id" example:"${SIGNICAT_ORGANIZATION_ID}"`
	// Since is the first invoice date to extract.
	Since Date `yaml:"since" example:"2019-01-01"`
	// Streams are the streams to run (organizations, accounts, contacts, invoices, invoice_lines,
	// invoice_pdfs); all when left out.
	Streams []string `yaml:"streams" default:"all" example:"[accounts, invoices, invoice_lines]"`
	// PageLimit is the items per page of the {data, next} lists (1 to 1000).
	PageLimit int `yaml:"page_limit" example:"500"`
	// LookbackDays re-fetches invoices this far behind the last run's watermark, because invoice fields
	// such as settled change after issue.
	LookbackDays int `yaml:"lookback_days" example:"90"`
	// AccountDetailDays bounds how old an account's products may be: they come from one detail call per
	// account, which later runs repeat only for accounts that are new or whose list entry changed, and
	// otherwise once every this many days, spread evenly (0 reads every account every run).
	AccountDetailDays *int `yaml:"account_detail_days" example:"1"`
	// PDFs adds the invoice_pdfs stream: each invoice's PDF (GET /invoices/{n}/pdf) is downloaded into
	// the lake once, for auditors. Off by default: it is one request per invoice on the first run.
	PDFs bool `yaml:"pdfs" example:"true"`
	// Keys puts a key in force for a stream (stream → warehouse columns), replacing its own: its rows are
	// checked to be unique per key after each load.
	Keys map[string][]string `yaml:"keys" example:"{contacts: [id]}"`
}

// GSAPI configures the Good Sign GSAPI source.
type GSAPI struct {
	// BaseURL is the API's address (https; plain http only for loopback hosts such as the sandbox).
	BaseURL string `yaml:"base_url" required:"true" example:"https://api.goodsign.cloud/api/interface/gsapi"`
	// Username signs in with Basic auth on /welcome for a VompApiToken (with password; or set jwt).
	Username string `yaml:"username" secret:"true" example:"${GSAPI_USERNAME}"`
	// Password is that user's password.
	Password Secret `yaml:"password" secret:"true" example:"${GSAPI_PASSWORD}"`
	// JWT is a bearer token for JWT-only environments, instead of username and password.
	JWT Secret `yaml:"jwt" secret:"true" example:"${GSAPI_JWT}"`
	// OrgID is the organisation whose data is read (0: the root, every organisation).
	OrgID *int `yaml:"org_id" example:"1202"`
	// Organization names the organisation by its path instead of org_id.
	Organization string `yaml:"organization" example:"Root/Nordics"`
	// Since is the first window of the datasync exports and the journals.
	Since Date `yaml:"since" example:"2021-01-01"`
	// Datatables are the tables read through POST /datatable/list, one stream datatable_<table> each.
	Datatables []Datatable `yaml:"datatables"`
	// Streams are the streams to run (datasync_invoices, invoice_journal_summary, organizations, …);
	// all when left out.
	Streams []string `yaml:"streams" default:"all" example:"[datasync_invoices, datasync_invoice_lines]"`
	// LookbackDays re-fetches windowed exports (datasync invoices, lines, charges; journals) this far
	// behind the last run's watermark, as invoices change after issue.
	LookbackDays int `yaml:"lookback_days" example:"90"`
	// Keys puts a key in force for a stream (stream → warehouse columns): its rows are then checked to
	// be unique per key, and an incremental stream keeps each key's newest fetch. Without one, no key is
	// assumed where the spec names none (the tenant defines those fields).
	Keys map[string][]string `yaml:"keys" example:"{invoice_journal_accounting: [iheader_id, account, cost_centre]}"`
	// Fields says where the tenant keeps each field the SQL models read (stream → the model's name →
	// a column, {sql: …}, {from: <stream>.<column>, via: …} or {value: …}); unnamed ones keep their
	// defaults (sql/fieldmap/fields.yaml, `extract docs`). `extract fields --suggest` proposes them from the data.
	Fields map[string]map[string]fieldmap.Entry `yaml:"fields" example:"{datasync_invoices: {net_amount: total_net, invoice_number: {sql: \"cast(invoice_no AS VARCHAR)\"}}}"`
}

// InvoiceIDColumn is the column of datasync_invoices that holds each invoice's id, which
// invoicecharges/list takes (sources.gsapi.fields.datasync_invoices.invoice_id, iheader_id by
// default), or "" where that entry is not a column; entry is the entry as written, for a message.
func (g *GSAPI) InvoiceIDColumn() (column, entry string) {
	m, _ := fieldmap.NewMapping("gsapi", g.Fields) // validated when the config was loaded
	e := m["gsapi_datasync_invoices"]["invoice_id"]
	return e.Column, e.String()
}

// Datatable is one table read through POST /datatable/list.
type Datatable struct {
	// Table is the datatable's name.
	Table string `yaml:"table" required:"true" example:"ctransactiondata"`
	// Sortorder orders the rows; required — without it datatable/list returns its first page for every
	// page.
	Sortorder []string `yaml:"sortorder" required:"true" example:"[raw_id asc]"`
	// Key is the column that identifies a row (required): a key read twice in one read fails it, and
	// it is checked unique after each load. Every run reads the whole table, which replaces the last.
	Key string `yaml:"key" required:"true" example:"raw_id"`
	// PageSize is the rows per request.
	PageSize int `yaml:"pagesize" example:"5000"`
	// AppendOnly declares, as the user's assumption (the spec promises no such thing), that rows are
	// only ever added, never changed or deleted, and that each new row's key is greater than every
	// earlier one: later runs then ask only for rows with a greater key, and fail when the table's
	// total is not the rows held plus the rows read.
	AppendOnly bool `yaml:"append_only" example:"true"`
}

// Secret is a credential; it prints as REDACTED so it cannot leak through logs or error messages.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// GoString hides the value from %#v as well.
func (s Secret) GoString() string { return s.String() }

// Value is the secret itself, for the code that sends it.
func (s Secret) Value() string { return string(s) }

// Date is a calendar date in a config (2019-01-01).
type Date struct{ time.Time }

// UnmarshalYAML reads YYYY-MM-DD.
func (d *Date) UnmarshalYAML(n *yaml.Node) error {
	t, err := time.Parse("2006-01-02", n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a date (YYYY-MM-DD)", n.Line, n.Value)
	}
	d.Time = t
	return nil
}

// Error is a configuration problem; the CLI exits 2 on it.
type Error struct {
	File string
	Msg  string
}

func (e *Error) Error() string {
	if e.File == "" {
		return "config: " + e.Msg
	}
	return fmt.Sprintf("config %s: %s", e.File, e.Msg)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Load reads, expands and validates a pipeline file for a command that calls the APIs (run, check):
// every ${VAR} must be set, and each source's credentials are required. Relative output paths are
// kept relative to the working directory, as a scheduler's job definition expects.
func Load(path string) (*Config, error) { return load(path, Parse) }

// LoadForReading reads a pipeline file for a command that only reads what runs left (query, invoices,
// verify, status, docs, serve, build): the credentials are never resolved — client_id, client_secret,
// username, password and jwt stay empty even when their variables are set — and a ${VAR} under
// sources that is not set leaves its value empty, so an auditor needs none of the API's secrets.
// Everything else is checked as Load checks it.
func LoadForReading(path string) (*Config, error) { return load(path, ParseForReading) }

func load(path string, parse func([]byte, func(string) (string, bool)) (*Config, error)) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{path, err.Error()}
	}
	cfg, err := parse(raw, os.LookupEnv)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.File = path
			return nil, ce
		}
		return nil, &Error{path, err.Error()}
	}
	return cfg, nil
}

// Parse reads a pipeline from YAML, expanding ${VAR} with lookup, for a command that calls the APIs.
func Parse(raw []byte, lookup func(string) (string, bool)) (*Config, error) {
	return parse(raw, lookup, false)
}

// ParseForReading reads a pipeline as LoadForReading does.
func ParseForReading(raw []byte, lookup func(string) (string, bool)) (*Config, error) {
	return parse(raw, lookup, true)
}

func parse(raw []byte, lookup func(string) (string, bool), reading bool) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, &Error{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	// Keys first, then the variables, then each value's kind: the node tree keeps the file's lines.
	doc := &root
	if len(root.Content) > 0 {
		doc = root.Content[0]
	}
	if err := checkNode(doc, reflect.TypeFor[Config](), nil, false, nil); err != nil {
		return nil, err
	}
	// Expand in the parsed values, not the text, so a secret containing YAML syntax stays a plain string.
	x := &expander{lookup: lookup, reading: reading, from: map[*yaml.Node]string{}}
	if err := x.expand(&root, nil); err != nil {
		return nil, err
	}
	if err := checkNode(doc, reflect.TypeFor[Config](), nil, true, x.from); err != nil {
		return nil, err
	}
	expanded, err := yaml.Marshal(&root)
	if err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeError(err)
	}
	cfg.applyDefaults()
	if err := cfg.validate(reading); err != nil {
		return nil, err
	}
	cfg.vars = x.vars
	return &cfg, nil
}

// expander replaces ${VAR} in a config's values.
type expander struct {
	lookup  func(string) (string, bool)
	reading bool                  // for a command that only reads: credentials stay empty, unset variables under sources too
	from    map[*yaml.Node]string // each expanded value's (first) variable, for messages
	vars    []string              // every variable resolved, in the file's order
}

// expand replaces the variables in n, at path.
func (x *expander) expand(n *yaml.Node, path []string) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if x.reading && len(path) > 0 && path[0] == "sources" && secretPaths[joinPath(path)] {
			n.Value, n.Tag = "", "!!null"
			return nil
		}
		had := envRef.FindStringSubmatch(n.Value)
		var missing string
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			name := ref[2 : len(ref)-1]
			v, ok := x.lookup(name)
			if !ok && missing == "" {
				missing = name
			}
			if ok && !slices.Contains(x.vars, name) {
				x.vars = append(x.vars, name)
			}
			return v
		})
		if missing != "" {
			if x.reading && len(path) > 0 && path[0] == "sources" {
				// Only the API calls read it; this command makes none.
				n.Value, n.Tag = "", "!!null"
				return nil
			}
			return &Error{Msg: fmt.Sprintf("%s: environment variable %s is not set", joinPath(path), missing)}
		}
		if had != nil {
			x.from[n] = had[1]
			// A substituted value is text ("true", "null", "a: b" in a secret stay strings), except a plain
			// number, so that org_id: ${GSAPI_ORG_ID} still fills an integer.
			n.Tag = "!!str"
			if _, err := strconv.ParseFloat(n.Value, 64); err == nil {
				n.Tag = "!!int"
				if strings.ContainsAny(n.Value, ".eE") {
					n.Tag = "!!float"
				}
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := x.expand(n.Content[i+1], append(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	default:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = append(path, fmt.Sprintf("[%d]", i))
			}
			if err := x.expand(c, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyDefaults fills in every key the file left out: the one place a default is decided (docs/config.md
// shows them, as extract config --markdown writes it). It checks nothing; validate does, afterwards.
func (c *Config) applyDefaults() {
	c.OutputDir = cmp.Or(c.OutputDir, filepath.Join("data", "lake"))
	c.Warehouse = cmp.Or(c.Warehouse, filepath.Join("data", "warehouse.duckdb"))
	c.Concurrency = cmp.Or(c.Concurrency, 8)
	c.Iceberg.Namespace = cmp.Or(c.Iceberg.Namespace, "ledgerlake")
	c.WarehouseMemoryLimit = cmp.Or(c.WarehouseMemoryLimit, DefaultWarehouseMemoryLimit)
	c.PerHostConcurrency = cmp.Or(c.PerHostConcurrency, 32)
	c.Limits = c.Limits.OrDefaults()
	if s := c.Sources.Signicat; s != nil {
		if s.Since.IsZero() {
			s.Since = Date{time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)}
		}
		s.PageLimit = cmp.Or(s.PageLimit, 100)
		s.LookbackDays = cmp.Or(s.LookbackDays, 60)
		if s.AccountDetailDays == nil {
			week := 7
			s.AccountDetailDays = &week
		}
	}
	if g := c.Sources.GSAPI; g != nil {
		if g.OrgID == nil && g.Organization == "" {
			zero := 0
			g.OrgID = &zero
		}
		if g.Since.IsZero() {
			g.Since = Date{time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)}
		}
		g.LookbackDays = cmp.Or(g.LookbackDays, 60)
		for i := range g.Datatables {
			g.Datatables[i].PageSize = cmp.Or(g.Datatables[i].PageSize, 10000)
		}
	}
}

// validate checks a config whose defaults are applied, and prepares the GSAPI field mapping. For a
// command that only reads, the sources' credentials and addresses may be absent (see LoadForReading).
func (c *Config) validate(reading bool) error {
	if !memorySize.MatchString(c.WarehouseMemoryLimit) {
		return &Error{Msg: fmt.Sprintf("warehouse_memory_limit: %q is not a size such as 256MB or 2GB", c.WarehouseMemoryLimit)}
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if c.Concurrency < 0 || c.PerHostConcurrency < 0 || c.PerHostRate < 0 {
		return &Error{Msg: "concurrency, per_host_concurrency and per_host_rate must not be negative"}
	}
	if c.Sources.Signicat == nil && c.Sources.GSAPI == nil {
		return &Error{Msg: "sources: configure signicat, gsapi or both"}
	}
	if s := c.Sources.Signicat; s != nil {
		if err := s.validate(reading); err != nil {
			return err
		}
	}
	if g := c.Sources.GSAPI; g != nil {
		if err := g.validate(reading); err != nil {
			return err
		}
		m, err := fieldmap.NewMapping("gsapi", g.Fields)
		if err != nil {
			return &Error{Msg: err.Error()}
		}
		c.fields = m
		if err := checkKeys("sources.gsapi.keys", g.Keys); err != nil {
			return err
		}
		return checkDatatables(g.Datatables)
	}
	return nil
}

// validate checks the Signicat source.
func (s *Signicat) validate(reading bool) error {
	for key, v := range map[string]string{"base_url": s.BaseURL, "token_url": s.TokenURL} {
		if reading && v == "" {
			continue
		}
		if err := checkURL("sources.signicat."+key, v); err != nil {
			return err
		}
	}
	switch {
	case !reading && (s.ClientID == "" || s.ClientSecret == ""):
		return &Error{Msg: "sources.signicat: client_id and client_secret are required (use ${SIGNICAT_CLIENT_ID} and ${SIGNICAT_CLIENT_SECRET})"}
	case *s.AccountDetailDays < 0:
		return &Error{Msg: "sources.signicat.account_detail_days must not be negative"}
	case s.LookbackDays < 0:
		return &Error{Msg: "sources.signicat.lookback_days must not be negative"}
	case s.PageLimit < 1 || s.PageLimit > 1000:
		return &Error{Msg: "sources.signicat.page_limit must be from 1 to 1000"}
	}
	return checkKeys("sources.signicat.keys", s.Keys)
}

// validate checks the GSAPI source's address, credentials and lookback (its field mapping, keys and
// datatables are checked by the Config's validate, in that order).
func (g *GSAPI) validate(reading bool) error {
	if !reading || g.BaseURL != "" {
		if err := checkURL("sources.gsapi.base_url", g.BaseURL); err != nil {
			return err
		}
	}
	if !reading && g.JWT == "" && (g.Username == "" || g.Password == "") {
		return &Error{Msg: "sources.gsapi: set username and password (Basic → VompApiToken) or jwt"}
	}
	if g.LookbackDays < 0 {
		return &Error{Msg: "sources.gsapi.lookback_days must not be negative"}
	}
	return nil
}

// checkDatatables refuses a datatable without a table, sortorder or key, with a negative page size, or
// two that would be stored as one table (gsapi_datatable_<the table's name as a column name>: "Foo-Bar"
// and "foo_bar" both), which would share its files and checkpoints.
func checkDatatables(ds []Datatable) error {
	seen := map[string]string{}
	for i, d := range ds {
		where := fmt.Sprintf("sources.gsapi.datatables[%d]", i)
		if d.Table == "" {
			return &Error{Msg: where + ": table is required"}
		}
		where = fmt.Sprintf("sources.gsapi.datatables[%d] (table %s)", i, d.Table)
		name := schemas.ColumnName(d.Table)
		switch {
		case len(d.Sortorder) == 0:
			return &Error{Msg: where + ": sortorder is required — without it datatable/list silently returns the first page for every page"}
		case d.Key == "":
			return &Error{Msg: where + ": key is required"}
		case d.PageSize < 0:
			return &Error{Msg: where + ": pagesize must be positive"}
		case name == "":
			return &Error{Msg: where + ": the name has no letter or digit to name its table by"}
		case seen[name] != "":
			return &Error{Msg: fmt.Sprintf("%s: would be stored as table gsapi_datatable_%s, as table %s is", where, name, seen[name])}
		}
		seen[name] = d.Table
	}
	return nil
}

// checkKeys refuses a key without columns or with an empty column name (the streams named are checked
// when the source lists its streams).
func checkKeys(where string, keys map[string][]string) error {
	for stream, cols := range keys {
		if len(cols) == 0 {
			return &Error{Msg: fmt.Sprintf("%s.%s: list the columns that identify one record, e.g. [iheader_id, account]", where, stream)}
		}
		for _, c := range cols {
			if strings.TrimSpace(c) == "" {
				return &Error{Msg: fmt.Sprintf("%s.%s: an empty column name", where, stream)}
			}
		}
	}
	return nil
}

// checkURL accepts https URLs, and plain http only for loopback hosts (the sandbox, a local proxy).
func checkURL(key, raw string) error {
	if raw == "" {
		return &Error{Msg: key + " is required"}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return &Error{Msg: fmt.Sprintf("%s: %q is not an absolute URL", key, raw)}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); (ip != nil && ip.IsLoopback()) || h == "localhost" {
			return nil
		}
		return &Error{Msg: fmt.Sprintf("%s: plain http:// is accepted only for loopback hosts; use https://%s", key, u.Host)}
	}
	return &Error{Msg: fmt.Sprintf("%s: scheme %q is not https", key, u.Scheme)}
}
